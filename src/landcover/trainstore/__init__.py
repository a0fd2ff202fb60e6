"""The packed training store: its layout (written by `landcover pack`) and the window reader training uses."""
