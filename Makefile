# The command contract (see README.md). Python packages are pinned in requirements/.
SHELL := /bin/sh
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
MANAGE := cd services/web && ../../$(PYTHON) manage.py

.PHONY: help deps venv lock test lint fmt migrate run up down local bench loadtest clean

help:
	@echo "make test | lint | fmt | run | migrate | deps | up | down | local | bench | loadtest"
	@echo "make lock: recompile requirements/{base,dev}.in into the hashed base.txt and dev.txt"

deps:
	./scripts/install-debs.sh

$(STAMP): requirements/base.txt requirements/dev.txt packages/qbuy-core/pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -e packages/qbuy-core
	touch $@

venv: $(STAMP)

# The locks hold PyPI's files and hashes only, whatever this machine's pip is set up with
# (find-links, extra indexes, constraints): those would not exist in the images or elsewhere.
# Existing pins are kept; to move one: make lock LOCK_ARGS="--upgrade-package django".
LOCK_ENV := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT \
	-u PIP_NO_INDEX PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock"
PIP_COMPILE := $(abspath $(VENV))/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

lock: venv
	cd requirements && $(LOCK_ENV) $(PIP_COMPILE) --output-file base.txt base.in
	cd requirements && $(LOCK_ENV) $(PIP_COMPILE) --output-file dev.txt dev.in

test: deps venv lint
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PYTHON) -m tools.lint

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: venv
	$(MANAGE) migrate

run: venv
	$(MANAGE) runserver 127.0.0.1:8000

local: deps venv
	$(PYTHON) -m tools.local

COMPOSE := docker compose -f deploy/compose.yml

.env:
	cp .env.example .env
	@echo "created .env from .env.example: change its secrets before any real use"

up: .env
	$(COMPOSE) up --build --detach --wait
	@echo "qbuy: http://localhost:8080/sales/  flower: http://localhost:5555/"

down:
	$(COMPOSE) down

bench loadtest:
	@echo "make $@ arrives with a later issue (see README.md)." >&2; exit 2

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
