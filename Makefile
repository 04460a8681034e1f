# The two commands a newcomer needs:
#   make demo   set everything up, run both sync directions against the local sandboxes
#   make test   set everything up, run the whole test suite (what CI runs)
# Everything is installed inside the project (.venv, .meltano, .cache); nothing is written to $HOME.

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
DEMO_USERS ?= 200
PYTEST_ARGS ?=

# Keep Meltano, uv and pip inside the project and quiet towards the internet (PyPI only).
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false
export MELTANO_DISABLE_TRACKING := true
export MELTANO_CLI_DISABLE_VERSION_CHECK := true
export MELTANO_VENV_BACKEND := uv
export UV_CACHE_DIR := $(CURDIR)/.cache/uv
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export XDG_CACHE_HOME := $(CURDIR)/.cache/xdg/cache
export XDG_CONFIG_HOME := $(CURDIR)/.cache/xdg/config
export XDG_DATA_HOME := $(CURDIR)/.cache/xdg/data
export XDG_STATE_HOME := $(CURDIR)/.cache/xdg/state
export PATH := $(BIN):$(PATH)

PACKAGE_FILES := requirements-dev.txt $(wildcard */pyproject.toml)

.PHONY: help install demo test lint bench dist hub salesforce-metadata sandbox-start sandbox-stop clean

help:
	@echo "make install - set up .venv and the Meltano plugins (both commands below do it too)"
	@echo "make demo   - install, start the sandboxes, run both sync directions, print what changed"
	@echo "make test   - install and run the whole test suite (unit, sandbox, integration, e2e)"
	@echo "make bench  - benchmarks (BENCH_ARGS='--size 10k,100k'), results in bench/"
	@echo "make dist   - wheels and sdists of every package into dist/ (DIST_DIR=...)"
	@echo "make hub    - rewrite the Meltano Hub plugin definitions in hub/ from the plugins"
	@echo "make salesforce-metadata - custom fields + least-privilege permission set, from the mappings"
	@echo "make lint   - ruff"
	@echo "make sandbox-start / sandbox-stop - the local API emulators, by hand"

$(VENV)/.installed: $(PACKAGE_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt
	touch $@

.meltano/.installed: $(VENV)/.installed meltano.yml
	$(BIN)/meltano install
	touch $@

install: .meltano/.installed

demo: .meltano/.installed
	trap '$(BIN)/sandbox stop' EXIT
	$(BIN)/sandbox start >/dev/null
	$(BIN)/sandbox seed --users $(DEMO_USERS)
	$(BIN)/meltano --log-level=warning run personalization-to-crm
	$(BIN)/meltano --log-level=warning run crm-to-personalization
	$(BIN)/sandbox summary

test: .meltano/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: .meltano/.installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Each wheel is built from its sdist (what an index would serve), so both are proven to build.
# The connector wheels carry the mapping library (see docs/architecture.md, "Packaging").
DIST_DIR ?= dist
DIST_PACKAGES := transforms tap-personalization target-salesforce-crm sandbox
dist: $(VENV)/.installed
	mkdir -p $(DIST_DIR) && rm -f $(DIST_DIR)/*.whl $(DIST_DIR)/*.tar.gz
	for package in $(DIST_PACKAGES); do $(BIN)/uv build --quiet --out-dir $(DIST_DIR) $$package; done
	ls $(DIST_DIR)

hub: $(VENV)/.installed
	$(BIN)/python hub/generate.py

salesforce-metadata: $(VENV)/.installed
	$(BIN)/salesforce-crm-metadata --mapping transforms/personalization-to-crm.yml \
		--reverse-mapping transforms/crm-to-personalization.yml --out salesforce-metadata

lint: $(VENV)/.installed
	$(BIN)/ruff check .

sandbox-start: $(VENV)/.installed
	$(BIN)/sandbox start

sandbox-stop: $(VENV)/.installed
	$(BIN)/sandbox stop

clean:
	-$(BIN)/sandbox stop
	rm -rf .meltano .sandbox output .cache dist $(VENV)
