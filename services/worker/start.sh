#!/bin/sh
# Celery worker entry point (container and `make local`). gevent pool: order tasks wait on
# Postgres and Redis, not the CPU, so one process serves many of them.
set -eu
cd "$(dirname "$0")/../web"
# One pool of Postgres connections for the process's greenlets (config/settings/base.py).
export DB_POOL_SIZE="${DB_POOL_SIZE:-${WORKER_DB_CONNECTIONS:-10}}"
exec celery -A config.celery_app worker -P gevent \
    --concurrency "${CELERY_WORKER_CONCURRENCY:-50}" --loglevel "${LOG_LEVEL:-INFO}"
