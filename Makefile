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

.PHONY: demo test lint bench clean venv mlproject ui audit docs docs-tutorials

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

# Runs land in the experiment galaxy-zoo (MLFLOW_EXPERIMENT_NAME chooses another).
demo: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" MLFLOW_EXPERIMENT_NAME="$${MLFLOW_EXPERIMENT_NAME:-galaxy-zoo}" \
	  $(BIN)/mlflow run . --env-manager local $(DEMO_ARGS)

test: $(VENV)/.installed-dev
	@echo "make test: the whole suite takes about 15-20 minutes on 2 cores; each test is listed as it runs"
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -v -ra --durations=15 $(PYTEST_ARGS)

# The MLproject is generated from the step configs (tests/test_mlproject.py checks it is current).
mlproject: $(VENV)/.installed
	$(BIN)/python -m gz_experiments.mlproject > MLproject

# The MLflow UI on this project's tracking store (./mlflow.db), opened on the galaxy-zoo experiment.
ui: $(VENV)/.installed
	$(BIN)/gz ui

# The documentation site, into site/ (open site/index.html): offline and strict, so a broken link,
# a page left out of the navigation or an unresolved API reference fails (tests/test_docs.py too).
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The same, with the tutorial notebooks executed so that the site shows their tables and pictures.
docs-tutorials: $(VENV)/.installed-dev
	PATH="$(abspath $(BIN)):$$PATH" GZ_DOCS_EXECUTE=true NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check gz_experiments entry_points tests benchmarks tools
	$(BIN)/ruff format --check gz_experiments entry_points tests benchmarks tools

# Known vulnerabilities of the installed packages (pip-audit; AUDIT_SERVICE=osv for osv.dev).
# Exit 2 and "NOT CHECKED" when no vulnerability service could check them: never a false "clean".
audit: $(VENV)/.installed-dev
	$(BIN)/python -m tools.audit

# One after another: each benchmark measures its own ratios side by side and needs the cores alone.
BENCHMARKS := simulate shards train predict mc levers real_gz1 real_gz2 finetune foundation active_learning vs_peer neighbours
bench: $(VENV)/.installed-dev
	set -e; for name in $(BENCHMARKS); do \
	  echo "== benchmarks.bench_$$name"; \
	  PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m benchmarks.bench_$$name; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
