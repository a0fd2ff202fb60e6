# Two commands set everything up on a fresh machine (Python 3.11 + git): `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: install demo test test-fast data bench lint clean mlflow-ui prefect-ui serve

install: $(STAMP)

# The torch/torchvision pair installs from the machine's local wheel store (see BRIEF section 6);
# constraints.txt pins every other package so installs are reproducible.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

data: install
	@if [ -d data ]; then echo "data/ exists: keeping it"; else \
	  $(BIN)/landcover synth --out data && $(BIN)/dvc add data; fi

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m flows.demo

# two pytest-xdist workers: the long end-to-end tests (started first) run beside the short ones
TEST_WORKERS ?= 2
test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

test-fast: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/run_all.py

# ruff, and the layers of docs/architecture.md (import-linter's contracts in pyproject.toml)
lint: install
	$(BIN)/ruff check src flows tests benchmarks
	PYTHONPATH=src:. $(BIN)/lint-imports --no-cache

# UIs bind to 127.0.0.1 only; set HOST=0.0.0.0 to expose them deliberately.
HOST ?= 127.0.0.1
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlruns --host $(HOST) --port 5000

prefect-ui: install
	$(BIN)/prefect server start --host $(HOST) --port 4200

# A local Prefect server, the process work pool, the deployments of prefect.yaml and a worker.
serve: install
	PATH="$(CURDIR)/$(BIN):$$PATH" LANDCOVER_REPO="$(CURDIR)" HOST=$(HOST) bash scripts/serve.sh

clean:
	rm -rf reports outputs models splits metrics plots mlruns mlflow.db .prefect gx
