# Driftwatch: `make demo` runs the main job on embedded defaults; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := ml,reports,grafana,broker,k8s,dev

.PHONY: install services lint typecheck pytest test demo bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull gigabytes of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash tests/services.sh

LINTED := monitor ingest retrain dashboards driftwatch_sdk sdk examples tests bench

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

pytest: install services
	$(BIN)/pytest

test: lint typecheck pytest

demo: install
	$(BIN)/driftwatch demo

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/detect.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
