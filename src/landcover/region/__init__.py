"""The region job (`landcover map`): an area and a year to one seamless map on the European grid."""
