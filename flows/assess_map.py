"""Entry point of the `assess-map` flow (its deployment in prefect.yaml, and `python flows/assess_map.py`).

The flow itself lives in `landcover.workflows.assess_map`, inside the installed package, so a Dask worker
that runs its tasks can import it: workers have the package, not this folder.
"""

from landcover.workflows.assess_map import assess_map, main

__all__ = ["assess_map"]

if __name__ == "__main__":
    main()
