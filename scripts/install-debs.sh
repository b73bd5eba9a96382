#!/bin/sh
# Install the Debian packages the tests and `make local` need, if any is missing.
# As root it runs apt-get; otherwise it names what to install and fails.
set -eu

missing=""
need() { # need PACKAGE CHECK...
    pkg=$1; shift
    "$@" >/dev/null 2>&1 || missing="$missing $pkg"
}
need redis-server command -v redis-server
need memcached test -x /usr/bin/memcached
need nginx-light test -x /usr/sbin/nginx
need postgresql sh -c 'ls /usr/lib/postgresql/*/bin/postgres'
need libmemcached-dev test -f /usr/include/libmemcached/memcached.h
need chromium test -x /usr/bin/chromium
need wrk command -v wrk # make bench: the HTTP load generator
# promtool tests the alert and recording rules; the exporters are scraped by the dashboard's
# query test (tools/test_prometheus_rules.py), the versions compose runs.
need prometheus command -v promtool
need prometheus-redis-exporter command -v prometheus-redis-exporter
need prometheus-postgres-exporter command -v prometheus-postgres-exporter
need prometheus-nginx-exporter command -v prometheus-nginx-exporter

[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
# Debian starts services on install where it can; the tests start their own.
for svc in memcached nginx prometheus prometheus-redis-exporter prometheus-postgres-exporter \
    prometheus-nginx-exporter; do
    command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1 || true
done
