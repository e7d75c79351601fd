# Turnout — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint soak bench screenshots venv clean image image-test

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

# The container image (Dockerfile) with podman, and its test (docs/container.md). Where no registry is reachable the
# base is built from Debian packages (image/base.sh); BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm pulls.
# podman keeps its images under IMAGE_WORK; runc, because crun refuses this machine's hybrid cgroups.
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_WORK ?= /var/tmp/turnout-image
BASE_IMAGE ?= localhost/turnout-base:bookworm
PODMAN     ?= podman --root $(IMAGE_WORK)/storage --runroot $(IMAGE_WORK)/run --storage-driver overlay --runtime runc

image:
	image/base.sh "$(PODMAN)" $(BASE_IMAGE) $(IMAGE_WORK)/base
	$(PODMAN) build --isolation chroot --network host --format docker --build-arg PYTHON_IMAGE=$(BASE_IMAGE) \
		-t localhost/turnout:$(VERSION) -t localhost/turnout:latest .

image-test: $(STAMP) image
	TURNOUT_IMAGE=localhost/turnout:$(VERSION) TURNOUT_PODMAN="$(PODMAN)" \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/image/test_image_run.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache turnout.db*
