#!/bin/sh
# Render deploy/nginx.conf (a template) from the environment: nginx-render.sh TEMPLATE OUT.
# With `--run`, start nginx on the result in the foreground (compose's nginx command).
# Used by compose, `make local` and `make lint`, so all three run the same file.
set -eu
run=""
if [ "${1:-}" = --run ]; then
    run=1
    shift
fi
template=$1 out=$2

: "${QBUY_UPSTREAM:=web:8000}"
: "${NGINX_LISTEN:=8080}"
: "${NGINX_STATUS_LISTEN:=8081}"  # stub_status for the exporter: never publish this port
: "${NGINX_STATIC_ROOT:=/app/staticfiles}"
: "${NGINX_RUN_DIR:=/tmp}"        # pid file, temporary files and the micro-cache
: "${NGINX_RESOLVER:=127.0.0.11}" # Docker's embedded DNS
: "${NGINX_RESOLVER_VALID:=2s}"
: "${NGINX_TRUSTED_PROXIES:=}"    # CIDRs of proxies in front of nginx, comma- or space-separated
: "${NGINX_CODE_RATE:=6r/m}"
: "${NGINX_CODE_BURST:=3}"
: "${NGINX_LOGIN_RATE:=10r/m}"   # code checks (API and page) per address
: "${NGINX_LOGIN_BURST:=5}"
: "${NGINX_ADMIN_ALLOW:=}"        # CIDRs that may reach /admin/, comma- or space-separated; empty: all
: "${NGINX_BUY_RATE:=20r/s}"
: "${NGINX_BUY_BURST:=20}"

# Retry-After: the seconds one request's worth of the rate takes to come back.
retry_after() {
    n=${1%%r/*} unit=${1##*r/}
    case $unit in
        s) echo 1 ;;
        m) echo $(((60 + n - 1) / n)) ;;
        *) echo "rate $1: use Nr/s or Nr/m" >&2 && exit 1 ;;
    esac
}
QBUY_CODE_RETRY_AFTER=$(retry_after "$NGINX_CODE_RATE")
QBUY_BUY_RETRY_AFTER=$(retry_after "$NGINX_BUY_RATE")
QBUY_LOGIN_RETRY_AFTER=$(retry_after "$NGINX_LOGIN_RATE")
# The login page posts count in both zones: tell the longer wait.
QBUY_PAGE_RETRY_AFTER=$((QBUY_CODE_RETRY_AFTER > QBUY_LOGIN_RETRY_AFTER ? QBUY_CODE_RETRY_AFTER : QBUY_LOGIN_RETRY_AFTER))

QBUY_REAL_IP_FROM="" QBUY_PROXY_GEO=""
for cidr in $(echo "$NGINX_TRUSTED_PROXIES" | tr ',' ' '); do
    QBUY_REAL_IP_FROM="$QBUY_REAL_IP_FROM    set_real_ip_from $cidr;
"
    QBUY_PROXY_GEO="$QBUY_PROXY_GEO        $cidr 1;
"
done

QBUY_ADMIN_ALLOW=""
for cidr in $(echo "$NGINX_ADMIN_ALLOW" | tr ',' ' '); do
    QBUY_ADMIN_ALLOW="$QBUY_ADMIN_ALLOW            allow $cidr;
"
done
if [ -n "$QBUY_ADMIN_ALLOW" ]; then
    QBUY_ADMIN_ALLOW="$QBUY_ADMIN_ALLOW            deny all;
"
fi

export QBUY_UPSTREAM NGINX_LISTEN NGINX_STATUS_LISTEN NGINX_STATIC_ROOT NGINX_RUN_DIR \
    NGINX_RESOLVER NGINX_RESOLVER_VALID NGINX_CODE_RATE NGINX_CODE_BURST NGINX_BUY_RATE \
    NGINX_BUY_BURST QBUY_CODE_RETRY_AFTER QBUY_BUY_RETRY_AFTER QBUY_REAL_IP_FROM QBUY_PROXY_GEO NGINX_LOGIN_RATE NGINX_LOGIN_BURST \
    QBUY_LOGIN_RETRY_AFTER QBUY_PAGE_RETRY_AFTER QBUY_ADMIN_ALLOW
# Only our placeholders: nginx's own $variables stay as they are.
envsubst "$(grep -o '\${\(QBUY\|NGINX\)_[A-Z_]*}' "$template" | sort -u | tr '\n' ' ')" \
    <"$template" >"$out"

if [ -n "$run" ]; then
    exec nginx -c "$out" -g "daemon off;"
fi
