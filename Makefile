# The README's two commands: `make demo` (set up, run the main job) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export EMBEDKIT_DATA ?= $(abspath ../shared/data)

.PHONY: setup demo lint test test-fast bench bench-quick clean

$(BIN)/embedkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/embedkit

setup: $(BIN)/embedkit

demo: setup
	$(BIN)/embedkit study --preset cpu

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not realdata"

bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

bench-quick: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) embedkit-work .pytest_cache
