#!/bin/sh
# Celery beat entry point. Exactly one beat may run (see README): the schedule file lives in a
# writable folder of its own.
set -eu
cd "$(dirname "$0")/../web"
exec celery -A config.celery_app beat --loglevel "${LOG_LEVEL:-INFO}" \
    --schedule "${CELERY_BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}"
