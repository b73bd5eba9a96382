#!/bin/sh
# Write a settings file for `make up` from .env.example, with fresh secrets in place of the
# example's published ones (production settings and Flower refuse those): make-env.sh OUT.
set -eu
cd "$(dirname "$0")/.."
out=$1
secret() { python3 -c "import secrets, sys; print(secrets.token_urlsafe(int(sys.argv[1])))" "$1"; }
key=$(secret 50) db=$(secret 18) flower=$(secret 12)
sed -e "s|^SECRET_KEY=.*|SECRET_KEY=$key|" \
    -e "s|^POSTGRES_PASSWORD=.*|POSTGRES_PASSWORD=$db|" \
    -e "s|^\(DATABASE_URL=postgres://qbuy:\)change-me@|\1$db@|" \
    -e "s|^FLOWER_BASIC_AUTH=admin:.*|FLOWER_BASIC_AUTH=admin:$flower|" \
    .env.example >"$out"
chmod 600 "$out"
if grep -v "^#" "$out" | grep -q change-me; then
    echo "make-env.sh: .env.example changed shape; a change-me value is left in $out" >&2
    exit 1
fi
echo "wrote $out with fresh secrets; Flower: user admin, password $flower"
