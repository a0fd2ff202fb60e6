"""The synthetic stand-in for the seed dataset (docs/synthetic-data.md) and fabricated L2A scenes."""
