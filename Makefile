# Everything a developer runs. Only Python 3.11+ and make are needed: the first target
# that needs the virtualenv creates it and installs the project with its dev extra.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
# axe-core for the browser tests' accessibility checks, pinned by package-lock.json. Only
# where npm exists: without it those checks skip, or fail under REQUIRE_BROWSER=1 (CI).
AXE := node_modules/axe-core/axe.min.js
NODE_DEPS := $(if $(shell command -v npm 2>/dev/null),$(AXE))

# While `make dev` runs, the operator targets talk to its embedded database
# (unless DATABASE_URL is set).
DEV_DATABASE_URL := $(shell cat .devdata/database_url 2>/dev/null)

.DEFAULT_GOAL := help
.PHONY: help install dev test lint format bench screenshot migrate jobs audit clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0] + "; try make PYTHON=python3.12")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# --ignore-scripts: neither package needs one (swagger-ui-dist's dependency @scarf/scarf
# would only report the install to its analytics).
$(AXE): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

install: $(INSTALLED) $(NODE_DEPS) ## create .venv and install the project (done by the other targets)

dev: $(INSTALLED) ## run Postgres, the mail inbox and the app (http://localhost:8000/register)
	$(BIN)/python -m backend.devstack

# -n auto: pytest-xdist workers, as many as tests/conftest.py says (TEST_WORKERS overrides;
# none with TEST_MAILHOG_URL, whose one inbox the tests share).
test: $(INSTALLED) $(NODE_DEPS) ## run the whole test suite (self-contained: embedded Postgres, built-in inbox)
	$(BIN)/python -m pytest -n auto --dist worksteal $(PYTEST_ARGS)

lint: $(INSTALLED) ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(INSTALLED) ## drain vs raw smtplib, connection reuse, relay frozen/outage, load; see bench/RESULTS.md
	$(BIN)/python -m bench

screenshot: $(INSTALLED) ## retake docs/ops-jobs.png (the operator page; needs /usr/bin/chromium)
	$(BIN)/python -m scripts.screenshot_ops

migrate jobs audit: export DATABASE_URL ?= $(DEV_DATABASE_URL)

migrate: $(INSTALLED) ## alembic upgrade head (DATABASE_URL, or the running dev database)
	$(BIN)/alembic upgrade head

jobs: $(INSTALLED) ## pending, running and failed background jobs
	$(BIN)/python -m backend jobs

audit: $(INSTALLED) ## the latest audit_log rows
	$(BIN)/python -m backend audit

clean: ## remove the virtualenv, caches and the dev data (database included)
	rm -rf $(VENV) node_modules .devdata .pytest_cache .mypy_cache .ruff_cache *.egg-info
