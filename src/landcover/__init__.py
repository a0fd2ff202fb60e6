"""Pan-European multi-seasonal Sentinel-2 land cover and wildfire fuel mapping."""

import os
from importlib.metadata import PackageNotFoundError, version

# torch's CPU thread pool (OpenMP) busy-waits between operations by default. Batch inference runs
# a reader and a writer thread beside the model, and these machines are shared: spinning threads
# starve both, and a 2-thread forward pass became 2x slower than a 1-thread one (batch inference of
# a 2048 px tile: 50 s with spinning, 13 s without; docs/performance.md). Idle OpenMP threads
# sleep instead. Set before torch is imported (OpenMP reads it once); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("landcover")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
