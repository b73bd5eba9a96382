#!/bin/sh
# Provide the base images that the Dockerfiles and deploy/compose.yml name. Each is pulled as
# usual; only where that fails (no registry can be reached) is a stand-in built from Debian's
# packages (deploy/standins/) and tagged with exactly the name asked for. Needs root for
# debootstrap, and only when a stand-in is needed.
set -eu
cd "$(dirname "$0")/.."

STANDINS=deploy/standins
CA_BUNDLE=${QBUY_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Every external image: the FROM lines of our Dockerfiles, the image: lines of the compose file
# (the services of every profile too: the stack suite runs with observability on).
wanted=$(
    {
        sed -n 's/^FROM \([^ ]*\).*/\1/p' services/*/Dockerfile
        sed -n 's/^ *image: *\([^ ]*\) *$/\1/p' deploy/compose.yml
    } | grep -v '^qbuy/' | sort -u
)

missing=""
for image in $wanted; do
    docker image inspect "$image" >/dev/null 2>&1 && continue
    if docker pull --quiet "$image" >/dev/null 2>&1; then
        echo "pulled $image"
        continue
    fi
    missing="$missing $image"
done
[ -z "$missing" ] && exit 0

echo "cannot pull:$missing; building stand-ins from Debian's packages"
if ! docker image inspect qbuy-standin/bookworm >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "building the stand-in base needs root (debootstrap)" >&2
        exit 1
    fi
    command -v debootstrap >/dev/null 2>&1 || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    rootfs=$(mktemp -d /var/tmp/qbuy-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$MIRROR" \
        >/dev/null
    # Behind a TLS-intercepting proxy the image must trust what the host trusts.
    [ -f "$CA_BUNDLE" ] && cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - qbuy-standin/bookworm >/dev/null
    rm -rf "$rootfs"
fi

# A stand-in's file is the image's name without its tag, a / made a - (prom/prometheus:v2.42.0:
# prom-prometheus.Dockerfile).
standin() { echo "${1%%:*}" | tr / -; }

pids=""
for image in $missing; do
    name=$(standin "$image")
    if [ ! -f "$STANDINS/$name.Dockerfile" ]; then
        echo "no stand-in for $image ($STANDINS/$name.Dockerfile)" >&2
        exit 1
    fi
    DOCKER_BUILDKIT=0 docker build --quiet -t "$image" -f "$STANDINS/$name.Dockerfile" \
        "$STANDINS" >"/tmp/qbuy-standin-$name.log" 2>&1 &
    pids="$pids $!:$image"
done
failed=0
for entry in $pids; do
    if wait "${entry%%:*}"; then
        echo "built stand-in ${entry#*:}"
    else
        echo "stand-in ${entry#*:} failed:" >&2
        tail -20 "/tmp/qbuy-standin-$(standin "${entry#*:}").log" >&2
        failed=1
    fi
done
exit "$failed"
