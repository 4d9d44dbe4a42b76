# One command each: `make run` (the example server, flag on, its database migrated first) and
# `make test`. The install takes the test extra and the bench extra (the benchmark's peers), so
# the benchmark's smoke tests run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test bench

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

run: install
	$(BIN)/python manage.py migrate --no-input
	VOZ_FEATURE_VOICE_FLOW_A=1 $(BIN)/python -m example_project -b $(HOST) -p $(PORT)

test: install
	$(BIN)/python -m compileall -q voiceflow_channels example_project tests manage.py
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	VOZ_FEATURE_VOICE_FLOW_A=0 $(BIN)/python manage.py voiceflow_selftest
	VOZ_FEATURE_VOICE_FLOW_A=1 $(BIN)/python manage.py voiceflow_selftest

bench: install
	$(BIN)/python -m benchmarks.stream --layers
