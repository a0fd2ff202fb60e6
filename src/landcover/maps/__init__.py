"""Map writing shared by the stages that make maps: COGs, styles, the GDAL cache budget, area assembly."""
