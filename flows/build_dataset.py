"""Entry point of the `build-dataset` flow (its deployment in prefect.yaml, and `python flows/build_dataset.py`).

The flow itself lives in `landcover.workflows.build_dataset`, inside the installed package, so a Dask worker
that runs its tasks can import it: workers have the package, not this folder.
"""

from landcover.workflows.build_dataset import build_dataset, main

__all__ = ["build_dataset"]

if __name__ == "__main__":
    main()
