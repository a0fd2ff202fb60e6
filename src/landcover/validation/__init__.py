"""Tile validation stage: raster metadata, a Great Expectations suite, quarantine and Data Docs.

- `metadata`: per-file and per-tile facts read with rasterio, block by block.
- `suite`: the Great Expectations suite (defined in code) and the checkpoint that runs it.
- `stage`: `inspect_tile` (the per-tile unit of work) and `run_validation` (the whole stage).
- `command`: the `landcover validate` subcommand.
"""
