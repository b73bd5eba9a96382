#!/bin/sh
# Prometheus as compose runs it (deploy/prometheus mounted on /etc/prometheus/qbuy). Its config
# cannot read the environment, and Flower's login (FLOWER_BASIC_AUTH, user:password, from the
# env file) is a secret: the user goes into a copy of prometheus.yml, the password into a file
# only Prometheus' user can read. Arguments are passed on to prometheus.
set -eu
conf=/etc/prometheus/qbuy
run=/tmp/qbuy-prometheus
: "${FLOWER_BASIC_AUTH:?Flower's login, user:password, for Prometheus to scrape Flower}"
login=${FLOWER_BASIC_AUTH%%,*} # Flower takes several logins, comma-separated: the first
user=$(printf '%s' "${login%%:*}" | sed 's/[\\|&]/\\&/g')

umask 077
mkdir -p "$run"
printf '%s' "${login#*:}" >"$run/flower-password"
sed "s|@FLOWER_USER@|$user|" "$conf/prometheus.yml" >"$run/prometheus.yml"
# rules/*.yml is relative to the config file: the copy sees the mounted rules under that name.
ln -sfn "$conf/rules" "$run/rules"
exec prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path=/prometheus \
    --storage.tsdb.retention.time=7d "$@"
