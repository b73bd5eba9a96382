#!/bin/sh
# Flower entry point: the worker image with its own command. Basic auth is mandatory
# outside local development.
set -eu
cd "$(dirname "$0")/../web"
if [ -z "${FLOWER_BASIC_AUTH:-}" ] && [ "${DJANGO_SETTINGS_MODULE:-}" != "config.settings.local" ]; then
    echo "FLOWER_BASIC_AUTH (user:password) is required" >&2
    exit 1
fi
exec celery -A config.celery_app flower --port="${FLOWER_PORT:-5555}" \
    ${FLOWER_BASIC_AUTH:+--basic-auth="$FLOWER_BASIC_AUTH"}
