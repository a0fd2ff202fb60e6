"""`landcover split`: whole cities to train/val/test, stratified by climate zone and class mix.

Whole cities go to one split, never single tiles: neighbouring tiles of a city share landscape,
light and season, so a tile-level split leaks. See docs/split.md.
"""
