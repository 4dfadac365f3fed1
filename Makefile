# mlfactor: every target sets up what it needs. `make` (or `make help`) lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
LOCK := requirements/lock.txt
RUNTIME_LOCK := requirements/runtime.txt
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
AIRFLOW_VENV := .venv-airflow
AIRFLOW_LOCK := requirements/airflow.txt
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
SEARCH_REQUIREMENTS := requirements/search.txt
SEARCH_STAMP := $(VENV)/.installed-search
PIPELINE ?= pipelines/train.yaml
SERVICES_PORT ?= 5000
SERVICES_DATABASE_URI ?= postgresql://postgres@127.0.0.1:5432/mlfactor
export MLFLOW_DISABLE_TELEMETRY ?= true
export BENTOML_DO_NOT_TRACK ?= true

.PHONY: airflow
.PHONY: help install run pipeline serve lab ui test lint lock clean services services-stop bench-cli bench-serve bench-batch bench-pipeline bench-monitor install-search search bench-search

help: ## List the targets (coloured only on a terminal, and never with NO_COLOR set)
	@if [ -t 1 ] && [ -z "$$NO_COLOR" ]; then on='\033[36m'; off='\033[0m'; else on=''; off=''; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-16s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

# --compile-bytecode: uv writes no .pyc by default, so the first run on a fresh clone (CI's only run)
# would have every process compile mlflow, scikit-learn and BentoML for itself, at once.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) pip sync --compile-bytecode --python $(BIN)/python $(LOCK)
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies and mlfactor (set-up only)

# Airflow pins packages mlflow's do not allow: the DAG tests import rendered DAGs in a venv of its own.
$(AIRFLOW_STAMP): $(AIRFLOW_LOCK) | $(STAMP)
	$(UV) venv --quiet --allow-existing --python $(BIN)/python $(AIRFLOW_VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(AIRFLOW_VENV)/bin/python $(AIRFLOW_LOCK)
	@touch $(AIRFLOW_STAMP)

airflow: $(AIRFLOW_STAMP) ## Create .venv-airflow (Airflow + its Kubernetes provider) for the rendered-DAG tests
test: $(AIRFLOW_STAMP)  # the DAG tests import rendered DAGs with Airflow's DagBag

# pip, not uv, for the search lock: pip finds torch's CPU build here, uv does not (docs/search.md).
# The core lock's pins (without their hashes) are passed as constraints, so the search lock never
# moves a core pin; a search pin that contradicts one fails here, naming both.
$(SEARCH_STAMP): $(STAMP) $(SEARCH_REQUIREMENTS)
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade >/dev/null
	sed -n 's/^\([A-Za-z0-9][A-Za-z0-9_.-]*==[^ ;]*\).*/\1/p' $(LOCK) > $(VENV)/core-constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint $(VENV)/core-constraints.txt -r $(SEARCH_REQUIREMENTS)
	@touch $(SEARCH_STAMP)

install-search: $(SEARCH_STAMP) ## Add the search lock (torch CPU, sentence-transformers, onnxruntime) to .venv

pipeline: $(STAMP) ## Run the demo training pipeline (PIPELINE=pipelines/train.yaml) on the configured store
	@$(BIN)/mlfactor run $(PIPELINE)

serve: $(STAMP) ## Serve the champion model with bentoml serve on 127.0.0.1:3000 until Ctrl-C
	@$(BIN)/mlfactor serve

run: $(STAMP) ## Set up, run the demo pipeline on the embedded sqlite store, then serve the champion
	@$(BIN)/mlfactor run $(PIPELINE)
	@$(BIN)/mlfactor serve

search: $(SEARCH_STAMP) ## Train, evaluate and register docs-search (pipelines/search.yaml), then serve its champion
	@$(BIN)/mlfactor run pipelines/search.yaml
	@MLFACTOR_MODEL_NAME=docs-search $(BIN)/mlfactor serve

lab: $(STAMP) ## Serve JupyterLab on the project folder with the project's kernel and configuration
	$(BIN)/mlfactor lab

ui: $(STAMP) ## Open the MLflow UI on the configured tracking store (127.0.0.1:5000) until Ctrl-C
	$(BIN)/mlfactor ui

TEST_WORKERS ?= 2
test: $(STAMP) $(SEARCH_STAMP) ## Set up and run the whole test suite (unit, integration, notebooks, search) on TEST_WORKERS (2) processes
	$(BIN)/pytest -n $(TEST_WORKERS)

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

services: $(STAMP) ## Run mlflow server + PostgreSQL in the foreground on 127.0.0.1:SERVICES_PORT (5000); use it with MLFLOW_TRACKING_URI=http://127.0.0.1:5000
	@$(BIN)/mlfactor services up --port $(SERVICES_PORT) --database-uri $(SERVICES_DATABASE_URI)

services-stop: $(STAMP) ## Stop the stack `make services` started (only that process)
	@$(BIN)/mlfactor services down

bench-serve: $(STAMP) ## The service against mlflow models serve and a minimal Bento, then live alias swaps under load (needs wrk; ARGS=--without-torch)
	@command -v wrk >/dev/null || { echo "bench-serve needs wrk: sudo apt-get install -y wrk (Debian/Ubuntu) or brew install wrk"; exit 2; }
	$(BIN)/python benchmarks/bench_serve.py --out benchmarks/results/bench-serve-latest.json $(ARGS)

bench-cli: $(STAMP) ## CPU seconds of everyday commands (--help, config, validate) beside `python -c pass`
	$(BIN)/python benchmarks/bench_cli.py

bench-pipeline: $(STAMP) ## Demo pipeline: mlfactor run vs plain papermill vs a plain script (REPEAT=5), ratios
	$(BIN)/python benchmarks/bench_pipeline.py --repeat $(or $(REPEAT),5)

SIZES_MB ?= 10,40,160
bench-batch: $(STAMP) ## Peak RSS of `mlfactor admin batch-score` as the scored file grows (SIZES_MB=10,40,160)
	$(BIN)/python benchmarks/bench_batch.py --sizes-mb $(SIZES_MB) --out benchmarks/results/bench-batch-latest.json

bench-monitor: $(STAMP) ## Events/s of `monitor drift` and `experiment report`; A/A false positives, power, drift delay
	$(BIN)/python benchmarks/bench_monitor.py --out benchmarks/results/bench-monitor-latest.json

bench-search: $(SEARCH_STAMP) ## docs-search: cold start, p50/p99 and throughput at c=1 and 16 with and without batching, recall@5
	$(BIN)/python benchmarks/bench_search.py --out benchmarks/results/bench-search-latest.json

RELEASE ?= current
K8S_OUT ?= build/k8s
.PHONY: manifests
manifests: $(STAMP) ## Render Kubernetes manifests of RELEASE (current) into K8S_OUT (build/k8s); see docs/deploy.md
	$(BIN)/mlfactor deploy render $(RELEASE) --out $(K8S_OUT)

lock: ## Re-resolve the uv locks: lock.txt (dev, make install), runtime.txt (the Bento), airflow.txt (.venv-airflow)
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"; }
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o $(LOCK)
	$(UV) pip compile pyproject.toml --python-version 3.11 --generate-hashes --constraint $(LOCK) -o $(RUNTIME_LOCK)
	$(UV) pip compile requirements/airflow.in --python-version 3.11 --generate-hashes -o $(AIRFLOW_LOCK)

clean: ## Remove generated files (keeps .venv and the local MLflow store)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info output
