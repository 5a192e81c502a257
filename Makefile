# Everything a fresh machine needs: `make demo` and `make test` install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint fmt bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/swr-crawler demo --out out/demo

lint: $(STAMP)
	$(BIN)/ruff check crawler tests bench
	$(BIN)/ruff format --check crawler tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix crawler tests bench
	$(BIN)/ruff format crawler tests bench

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .hypothesis
