# One Makefile that README and CI both call.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean bench rasa

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/daoban serve

# The Rasa backend runs in its own Python 3.10 virtualenv (scripts/rasa.sh); without
# Python 3.10 its tests skip and say why. DAOBAN_SKIP_RASA=1 skips starting it.
RASA_LEFT := The Rasa server stays running after the tests (about 1.5 GB): scripts/rasa.sh stop stops it
RASA_SKIPPED := Rasa backend not started (see above): the tests marked rasa will skip
# Two test processes (pytest-xdist), each test file kept in one process so that its
# module-level servers start once: the suite takes ~15 min in one process on 2 cores.
PYTEST_ARGS ?= -n 2 --dist loadfile --durations=15
test: $(STAMP)
	@if [ -z "$$DAOBAN_SKIP_RASA" ]; then \
	  if scripts/rasa.sh start; then echo "$(RASA_LEFT)"; else echo "$(RASA_SKIPPED)"; fi; fi
	$(BIN)/daoban kb lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

rasa: $(STAMP)
	scripts/rasa.sh start

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/retrieval.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
