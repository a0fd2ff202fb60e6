"""Area maps: one seamless map per city (and UTM zone) from batch inference's tiles."""
