#!/bin/sh
# make test-stack: the container suite. Starts an engine where none runs (as root), brings the
# stack up with `make up` under its own project name, ports and settings file (so a developer's
# own `make up` stack is left alone), runs deploy/stack_tests against the published loopback ports,
# and always ends with `make down` with its volumes. test-stack.sh PYTHON [PYTEST ARGS...]
set -eu
cd "$(dirname "$0")/.."
python=$1
shift

rc=0
./scripts/docker-engine.sh || rc=$?
if [ "$rc" -eq 3 ]; then
    echo "make test-stack: SKIPPED, no Docker engine could be started (see above)."
    exit 0
fi
[ "$rc" -eq 0 ] || exit "$rc"

work=.stack
mkdir -p "$work"
./scripts/make-env.sh "$work/env" >/dev/null
# Every test client reaches the published ports from one address (the bridge gateway), so
# the per-address limits are raised, as settings: the same knobs every load test turns.
"$python" -m loadtests.limits >>"$work/env"
cat >>"$work/env" <<'SETTINGS'
SMS_BACKEND=file
SMS_FILE_PATH=/tmp/qbuy-sms.jsonl
SMS_ALLOW_INSECURE_BACKEND=true
RECONCILE_INTERVAL=1
ORDER_REQUEUE_AFTER=3
BROKER_VISIBILITY_TIMEOUT=10
SETTINGS

free_port() { "$python" -c 'from port_for import get_port; print(get_port(None))'; }
export COMPOSE_PROJECT_NAME=qbuy-stacktest
QBUY_HTTP_PORT=$(free_port)
QBUY_FLOWER_PORT=$(free_port)
QBUY_PROMETHEUS_PORT=$(free_port)
export QBUY_HTTP_PORT QBUY_FLOWER_PORT QBUY_PROMETHEUS_PORT QBUY_PUBLISH_ADDR=127.0.0.1
# Prometheus and the exporters too (make observe): the suite checks what they scrape, and that
# Prometheus counts a storm's accepted buys as its buyers did.
export COMPOSE_PROFILES=observability
env_file=$(pwd)/$work/env
export QBUY_ENV_FILE="$env_file"  # for the suite's own docker compose calls

down() { make --no-print-directory down ENV_FILE="$env_file" DOWN_FLAGS="-v --remove-orphans"; }
trap down EXIT
down >/dev/null 2>&1 || true

started=$(date +%s)
make --no-print-directory up ENV_FILE="$env_file"
echo "make test-stack: stack up in $(($(date +%s) - started)) s"
# -s: the storms print their figures (counts, seconds, the split over replicas).
QBUY_STACK_ENV_FILE=$env_file "$python" -m pytest deploy/stack_tests -p no:cacheprovider -s "$@"
