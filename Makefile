# Everything runs from the project's own virtualenv in .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint run emulator bench sync clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pyright

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

run: $(STAMP)
	$(BIN)/chatterbox-bot run

emulator: $(STAMP)
	$(BIN)/chatterbox-bot emulator

sync: $(STAMP)
	$(BIN)/chatterbox-bot sync

bench: $(STAMP)
	$(BIN)/python bench/voice_start.py
	$(BIN)/python bench/cache.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
