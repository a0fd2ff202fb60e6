"""`landcover landscape`: FlamMap / FARSITE landscapes and ELMFIRE layers from fuel maps and a DEM."""
