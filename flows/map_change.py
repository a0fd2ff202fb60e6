"""Entry point of the `map-change` flow (its deployment in prefect.yaml, and `python flows/map_change.py`).

The flow itself lives in `landcover.workflows.map_change`, inside the installed package, so a Dask worker
that runs its tasks can import it: workers have the package, not this folder.
"""

from landcover.workflows.map_change import main, map_change

__all__ = ["map_change"]

if __name__ == "__main__":
    main()
