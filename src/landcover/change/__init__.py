"""Change between two map versions (two years, or two model versions) of the same tiles."""
