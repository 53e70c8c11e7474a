# Everything a developer runs. Only Python 3.11+ and make are needed: the first target
# that needs the virtualenv creates it and installs the dev lock file into it.

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
.PHONY: help install lock lock-check dev test lint format bench screenshot migrate jobs audit clean

# The lock files, both made by `make lock` from pyproject.toml: requirements.lock holds the
# runtime dependencies (what the Docker image installs), requirements-dev.lock those plus
# the dev extra (what `make install` and CI install). Universal (`--universal`): one file
# for every platform and every Python the project supports, with environment markers where
# they differ. Hashes: pip installs them with --require-hashes, so a file that differs
# from the one locked is refused.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# --no-config: a developer's own uv.toml cannot point the lock at another index.
UV_COMPILE = $(abspath $(BIN))/uv --no-config pip compile pyproject.toml --quiet --universal \
	--python-version 3.11 --generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS)
# Extra arguments for `make lock`: LOCK_ARGS=--upgrade (everything to the newest allowed),
# LOCK_ARGS="--upgrade-package fastapi". Without them the pins already there are kept.
LOCK_ARGS ?=

# Both lock files, in directory $(1). The dev lock first, then the runtime one constrained
# by it, so that a package in both has the same version in both: the image runs exactly
# the versions the tests ran.
compile-locks = (cd $(1) && $(UV_COMPILE) --extra dev -o $(DEV_LOCK) \
	&& $(UV_COMPILE) --constraint $(DEV_LOCK) -o $(LOCK))

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The pinned, hashed dependencies first; then the project itself, editable and without
# dependencies (it has none of its own to add: they are all in the lock).
$(INSTALLED): pyproject.toml $(DEV_LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0] + "; try make PYTHON=python3.12")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

# --ignore-scripts: neither package needs one (swagger-ui-dist's dependency @scarf/scarf
# would only report the install to its analytics).
$(AXE): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

install: $(INSTALLED) $(NODE_DEPS) ## create .venv and install the dev lock file (done by the other targets)

lock: $(INSTALLED) ## re-resolve both lock files after editing pyproject.toml (LOCK_ARGS=--upgrade)
	$(call compile-locks,.)

# Hashes are left out of the comparison: PyPI may add a wheel to a release after it was
# locked, which changes the hash list but not what the lock says to install.
lock-check: $(INSTALLED) ## fail if the lock files are not what `make lock` writes from pyproject.toml
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT \
	&& cp pyproject.toml $(LOCK) $(DEV_LOCK) "$$tmp"/ \
	&& $(call compile-locks,"$$tmp") \
	&& status=0 && for file in $(LOCK) $(DEV_LOCK); do \
		grep -v -- '--hash=' "$$file" > "$$tmp/$$file.committed"; \
		grep -v -- '--hash=' "$$tmp/$$file" > "$$tmp/$$file.resolved"; \
		diff -u "$$tmp/$$file.committed" "$$tmp/$$file.resolved" || status=1; \
	done \
	&& if [ $$status != 0 ]; then echo "The lock files are out of date: run make lock and commit them."; exit 1; fi

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

bench: $(INSTALLED) ## drain vs raw smtplib, connection reuse, relay frozen/outage, load, wake-ups, claims; see bench/RESULTS.md
	$(BIN)/python -m bench

screenshot: $(INSTALLED) ## retake docs/ops-jobs.png and docs/account.png (needs /usr/bin/chromium)
	$(BIN)/python -m scripts.screenshot_ops
	$(BIN)/python -m scripts.screenshot_account

migrate jobs audit: export DATABASE_URL ?= $(DEV_DATABASE_URL)

migrate: $(INSTALLED) ## alembic upgrade head (DATABASE_URL, or the running dev database)
	$(BIN)/alembic upgrade head

jobs: $(INSTALLED) ## pending, running and failed background jobs
	$(BIN)/python -m backend jobs

audit: $(INSTALLED) ## the latest audit_log rows
	$(BIN)/python -m backend audit

clean: ## remove the virtualenv, caches and the dev data (database included)
	rm -rf $(VENV) node_modules .devdata .pytest_cache .mypy_cache .ruff_cache *.egg-info
