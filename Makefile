# Two commands set everything up on a fresh machine (Python 3.11 + git): `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: install demo test test-fast data bench lint clean ui

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
	$(BIN)/python -m landcover.demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/run_all.py

lint: install
	$(BIN)/ruff check src flows tests benchmarks

clean:
	rm -rf reports outputs models splits metrics plots mlruns mlflow.db .prefect gx
