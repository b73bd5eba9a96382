#!/bin/sh
# Flower entry point: the worker image with its own command. Basic auth is mandatory outside
# local development. Flower reads every FLOWER_* variable itself (FLOWER_BASIC_AUTH,
# FLOWER_PORT, FLOWER_ADDRESS): nothing goes on the command line, where `ps` would show the
# password to every user of the machine.
set -eu
cd "$(dirname "$0")/../web"
# Flower applies every FLOWER_* variable, empty ones too: an empty FLOWER_BASIC_AUTH would be
# a login nobody can give, an empty FLOWER_PORT a crash. Empty means unset here.
[ -n "${FLOWER_BASIC_AUTH:-}" ] || unset FLOWER_BASIC_AUTH
[ -n "${FLOWER_PORT:-}" ] || unset FLOWER_PORT
local_dev=false
[ "${DJANGO_SETTINGS_MODULE:-}" = "config.settings.local" ] && local_dev=true
if [ -z "${FLOWER_BASIC_AUTH:-}" ] && ! $local_dev; then
    echo "FLOWER_BASIC_AUTH (user:password) is required" >&2
    exit 1
fi
# Flower splits the value on commas, one user:password each. Without a colon no login can
# ever match; the example's change-me is published, so it is no password.
set -f
old_ifs=$IFS
IFS=,
for credential in ${FLOWER_BASIC_AUTH:-}; do
    case $credential in
    ?*:?*) ;;
    *)
        echo "FLOWER_BASIC_AUTH must be user:password (comma-separated for several users)" >&2
        exit 1
        ;;
    esac
    if [ "${credential#*:}" = "change-me" ] && ! $local_dev; then
        echo "FLOWER_BASIC_AUTH has the example's password change-me: set your own" >&2
        exit 1
    fi
done
IFS=$old_ifs
set +f
# Flower with /metrics behind its login too (config/flower.py).
exec python -m config.flower
