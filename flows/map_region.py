"""Entry point of the `map-region` flow (its deployment in prefect.yaml, and `python flows/map_region.py`).

The flow itself lives in `landcover.workflows.map_region`, inside the installed package, so a Dask worker
that runs its tasks can import it: workers have the package, not this folder.
"""

from landcover.workflows.map_region import main, map_region

__all__ = ["map_region"]

if __name__ == "__main__":
    main()
