#!/bin/sh
# Web entry point (container and `make local`): gunicorn serving config.wsgi.
set -eu
cd "$(dirname "$0")"
exec gunicorn --config gunicorn.conf.py config.wsgi:application
