# Two commands for a newcomer: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Quiet TensorFlow's start-up chatter. (glibc malloc tuning, which sped up a PyTorch peer, made no
# measurable difference to TensorFlow here: see benchmarks/bench_train.py.)
export TF_CPP_MIN_LOG_LEVEL ?= 2
export MLFLOW_DISABLE_TELEMETRY ?= true
# A dead tracking server: MLflow retries each request for minutes before any project code runs
# (`mlflow run` creates its run first). Two quick retries, then a clear failure.
export MLFLOW_HTTP_REQUEST_MAX_RETRIES ?= 2
export MLFLOW_HTTP_REQUEST_TIMEOUT ?= 30

.PHONY: demo test lint bench clean venv mlproject ui docs docs-tutorials

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/mlflow run . --env-manager local $(DEMO_ARGS)

test: $(VENV)/.installed-dev
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# The MLproject is generated from the step configs (tests/test_mlproject.py checks it is current).
mlproject: $(VENV)/.installed
	$(BIN)/python -m gz_experiments.mlproject > MLproject

# The MLflow UI on this project's tracking store (./mlflow.db), without activating the venv.
ui: $(VENV)/.installed
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port $${PORT:-5000}

# The documentation site, into site/ (open site/index.html): offline and strict, so a broken link,
# a page left out of the navigation or an unresolved API reference fails (tests/test_docs.py too).
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The same, with the tutorial notebooks executed so that the site shows their tables and pictures.
docs-tutorials: $(VENV)/.installed-dev
	PATH="$(abspath $(BIN)):$$PATH" GZ_DOCS_EXECUTE=true NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check gz_experiments entry_points tests benchmarks
	$(BIN)/ruff format --check gz_experiments entry_points tests benchmarks

# One after another: each benchmark measures its own ratios side by side and needs the cores alone.
BENCHMARKS := simulate shards train predict mc levers real_gz1 real_gz2 finetune active_learning vs_peer neighbours
bench: $(VENV)/.installed-dev
	set -e; for name in $(BENCHMARKS); do \
	  echo "== benchmarks.bench_$$name"; \
	  PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m benchmarks.bench_$$name; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
