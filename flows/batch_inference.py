"""Entry point of the `batch-inference` flow (its deployment in prefect.yaml, and `python flows/batch_inference.py`).

The flow itself lives in `landcover.workflows.batch_inference`, inside the installed package, so a Dask worker
that runs its tasks can import it: workers have the package, not this folder.
"""

from landcover.workflows.batch_inference import batch_inference, main

__all__ = ["batch_inference"]

if __name__ == "__main__":
    main()
