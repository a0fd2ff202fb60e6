"""The Prefect flows: thin orchestration over the stages (their entry scripts are in `flows/`)."""
