"""Pan-European multi-seasonal Sentinel-2 land cover and wildfire fuel mapping."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("landcover")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
