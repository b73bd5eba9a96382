#!/bin/sh
# Celery worker entry point (container and `make local`). gevent pool: order tasks wait on
# Postgres and Redis, not the CPU, so one process serves many of them.
set -eu
cd "$(dirname "$0")/../web"
exec celery -A config.celery_app worker -P gevent \
    --concurrency "${CELERY_WORKER_CONCURRENCY:-50}" --loglevel "${LOG_LEVEL:-INFO}"
