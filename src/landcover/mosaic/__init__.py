"""`landcover mosaic`: seasonal cloud-free Sentinel-2 L2A composites in the tile contract."""
