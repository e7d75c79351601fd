# Turnout — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint soak bench screenshots venv clean

venv: $(STAMP)

# Re-install only when pyproject.toml changes (idempotent bootstrap).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/turnout demo $(DEMO_ARGS)

# ruff (lint + format) and mypy --strict over every package; CI runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy controlplane adapters dataplane probes bench tests

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

soak: $(STAMP)
	TURNOUT_SOAK=1 $(BIN)/python -m pytest -n 2 tests/chaos $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench

# The status page rendered by headless Chromium (Debian package chromium) → screenshots/: after a failover
# (statuspage.png) and before, during and after the demo's three faults (statuspage-1-before.png … 5-after.png).
screenshots: $(STAMP)
	TURNOUT_REQUIRE_INTEGRATION=1 TURNOUT_SCREENSHOT_DIR=screenshots $(BIN)/python -m pytest -q -p no:cacheprovider tests/statuspage/test_chromium.py

clean:
	rm -rf $(VENV) .pytest_cache turnout.db*
