"""Entry point of the `validate-tiles` flow (its deployment in prefect.yaml, and `python flows/validate_flow.py`).

The flow itself lives in `landcover.workflows.validate_tiles`, inside the installed package, so a Dask worker
that runs its tasks can import it: workers have the package, not this folder.
"""

from landcover.workflows.validate_tiles import main, validate_tiles

__all__ = ["validate_tiles"]

if __name__ == "__main__":
    main()
