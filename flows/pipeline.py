"""Entry point of the `training-pipeline` flow (its deployment in prefect.yaml, and `python flows/pipeline.py`).

The flow itself lives in `landcover.workflows.pipeline`, inside the installed package, so a Dask worker
that runs its tasks can import it: workers have the package, not this folder.
"""

from landcover.workflows.pipeline import main, training_pipeline

__all__ = ["training_pipeline"]

if __name__ == "__main__":
    main()
