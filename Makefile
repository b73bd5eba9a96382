# The command contract (see README.md). Python packages are pinned in requirements/.
SHELL := /bin/sh
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
MANAGE := cd services/web && ../../$(PYTHON) manage.py
# Playwright (the browser tests) drives Debian's chromium from `make deps`: never a download.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: help deps venv lock test test-stack faults engine lint fmt migrate run up observe down local bench bench-compare loadtest fuzz screenshot clean

help:
	@echo "make test | test-stack | faults | lint | fmt | run | migrate | deps | up | observe | down | local | bench | bench-compare | loadtest | fuzz | screenshot"
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

# STACK=0 leaves out the container suite (a narrowed run while developing). The suite runs on
# every core (at most 4, pytest-xdist): a module stays on one worker, each worker has its own
# throwaway servers; XDIST= runs it in one process.
XDIST ?= -n auto --maxprocesses 4 --dist loadfile
test: deps venv lint
	$(PYTHON) -m pytest $(XDIST) $(PYTEST_ARGS)
	$(if $(filter 0,$(STACK)),@echo "make test: container suite left out (STACK=0)",$(MAKE) test-stack)

lint: venv
	$(PYTHON) -m tools.lint

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# docs/openapi.json: the API's OpenAPI 3.1 document, written from its declaration
# (services/web/config/api.py); services/web/tests/test_openapi.py fails when they differ.
.PHONY: openapi
openapi: venv
	$(MANAGE) export_openapi_schema --api config.api.api --indent 2 --output ../../docs/openapi.json

migrate: venv
	$(MANAGE) migrate

run: venv
	$(MANAGE) runserver 127.0.0.1:8000

local: deps venv
	$(PYTHON) -m tools.local

# The container stack. ENV_FILE holds every setting (made with fresh secrets if missing);
# QBUY_PUBLISH_ADDR=0.0.0.0 publishes beyond loopback. Without buildx, the classic builder.
ENV_FILE ?= .env
export QBUY_ENV_FILE := $(abspath $(ENV_FILE))
COMPOSE := docker compose -f deploy/compose.yml
BUILDER := $(shell docker buildx version >/dev/null 2>&1 || echo DOCKER_BUILDKIT=0 COMPOSE_BAKE=false)

$(ENV_FILE):
	./scripts/make-env.sh $@

# A Docker engine with Compose v2 (installed and started as root where none runs), and the
# base images (stand-ins built from Debian's packages where a registry can't be reached).
engine:
	./scripts/docker-engine.sh
	./scripts/base-images.sh

up: $(ENV_FILE) engine
	$(BUILDER) $(COMPOSE) up --build --detach --wait
	@echo "qbuy: http://localhost:$${QBUY_HTTP_PORT:-8080}/sales/  flower: http://localhost:$${QBUY_FLOWER_PORT:-5555}/ (FLOWER_BASIC_AUTH in $(ENV_FILE))"

# make up with the observability profile: Prometheus (deploy/prometheus) on
# http://localhost:9090 (QBUY_PROMETHEUS_PORT) and the exporters of nginx, Redis and Postgres.
observe: export COMPOSE_PROFILES := observability
observe: up
	@echo "prometheus: http://localhost:$${QBUY_PROMETHEUS_PORT:-9090}/"

# make down DOWN_FLAGS=-v also drops the volumes (Postgres, Redis, static files, Prometheus).
# Every profile's services: without the profile named, down leaves make observe's running.
down:
	$(COMPOSE) --profile '*' down $(DOWN_FLAGS)

# The container suite: make up on its own project, ports and settings, pytest against the
# published ports, make down -v. Skipped, saying why, where no engine can be started.
test-stack: venv
	./scripts/test-stack.sh $(PYTHON)

# The fault suite: a storm per scenario with a fault injected mid-sale (loadtests/faults.py).
faults: deps venv
	$(PYTHON) -m loadtests.faults $(FAULTS_ARGS)

# The API contract run with many more examples than make test's: Schemathesis against the live
# app (services/web/tests/test_schemathesis.py, FUZZ_EXAMPLES per operation and phase) and the
# Hypothesis property tests under the `fuzz` profile. E.g. FUZZ_EXAMPLES=5000 FUZZ_ARGS="-x".
FUZZ_EXAMPLES ?= 1000
FUZZ_TESTS ?= services/web/tests/test_schemathesis.py $(wildcard services/web/tests/test_*properties.py services/web/*/tests/test_*properties.py)
fuzz: deps venv
	QBUY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HYPOTHESIS_PROFILE=fuzz $(PYTHON) -m pytest $(FUZZ_TESTS) $(FUZZ_ARGS)

# The performance harness (loadtests/bench.py): the table, loadtests/results/bench.json and
# bench.png. E.g. BENCH_ARGS="--duration 5 --only storm accepted".
bench: deps venv
	$(PYTHON) -m loadtests.bench $(BENCH_ARGS)

# The buy endpoint of the working tree against REV's, side by side on the same stack
# (loadtests/compare.py): a table, loadtests/results/compare.json. REV defaults to HEAD.
# E.g. make bench-compare REV=8be6a30 COMPARE_ARGS="--rounds 2 --duration 2".
bench-compare: deps venv
	$(PYTHON) -m loadtests.compare $(if $(REV),--rev $(REV)) $(COMPARE_ARGS)

# The flash-sale storm with Locust, then the invariant check (loadtests/loadtest.py);
# LOCUST_UI=1 opens Locust's web UI. E.g. LOADTEST_ARGS="--buyers 500 --stock 100".
# Make takes no --waiting-room: make loadtest LOADTEST_ARGS=--waiting-room, or WAITING_ROOM=1.
loadtest: deps venv
	$(PYTHON) -m loadtests.loadtest $(if $(filter 1,$(WAITING_ROOM)),--waiting-room) $(LOADTEST_ARGS)

# A sale to watch on the stack `make up` started (loadtests/demo.py): it opens a minute later
# and 200 Locust buyers (the locustfile above) go for its 50 items through nginx; web and nginx
# run with the load tests' raised limits meanwhile. E.g. DEMO_ARGS="--buyers 500 --stock 100".
.PHONY: demo
demo: venv
	$(PYTHON) -m loadtests.demo $(DEMO_ARGS)

# The README's screenshots (1280 wide), each from a browser test's run against a fresh stack:
# docs/buy-flow.png, the buy flow's confirmed step (services/web/tests/test_buy_flow_browser.py);
# docs/waiting-room.png, a buyer waiting in a sale's room (services/web/tests/test_room_browser.py).
screenshot: deps venv
	QBUY_README_SCREENSHOT=$(abspath docs/buy-flow.png) $(PYTHON) -m pytest \
		services/web/tests/test_buy_flow_browser.py::test_buy_flow $(PYTEST_ARGS)
	QBUY_ROOM_SCREENSHOT=$(abspath docs/waiting-room.png) $(PYTHON) -m pytest \
		services/web/tests/test_room_browser.py $(PYTEST_ARGS)
	@echo "make screenshot: docs/buy-flow.png, docs/waiting-room.png (every step: artifacts/browser/)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
