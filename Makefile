# Two entry points, both safe on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup demo test lint docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/opmetrics demo

test: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15  # two workers, each test file's fixtures on one; the slowest listed

docs: setup
	$(BIN)/opmetrics contract docs docs/data-contract.md
	$(BIN)/opmetrics contract json-schema docs/schemas
	$(BIN)/opmetrics measures-doc docs/measures.md
	$(BIN)/opmetrics definitions-doc docs/definitions.md

clean:
	rm -rf $(VENV) opmetrics-demo .pytest_cache
