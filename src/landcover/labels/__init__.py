"""`landcover labels`: reference land cover (vectors or rasters) onto every tile's grid."""
