#!/usr/bin/env bash
# `make run`: the reference server on its embedded defaults (SQLite under ./data, the
# in-process event bus, 127.0.0.1:8080) with the demo station, and an admin login printed.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
cargo="${CARGO:-cargo}"
"$cargo" build --release -p grimnir-server
bin="${CARGO_TARGET_DIR:-target}/release/grimnir"

export GRIMNIR_DATA_DIR="${GRIMNIR_DATA_DIR:-data}"
export GRIMNIR_STATIONS_DIR="${GRIMNIR_STATIONS_DIR:-grimnir-server/examples/stations}"
listen="${GRIMNIR_HTTP_LISTEN:-127.0.0.1:8080}"
email="admin@example.com"
login="$GRIMNIR_DATA_DIR/demo-admin.txt"

mkdir -p "$GRIMNIR_DATA_DIR"
if [ ! -f "$login" ]; then
    # The first start: an admin with a generated password, kept (readable by you only) so that
    # later starts can print it again.
    if created="$("$bin" user create --email "$email" --role admin 2>/dev/null)"; then
        password="$(printf '%s\n' "$created" | sed -n 's/^password: //p')"
        (umask 077 && printf 'email: %s\npassword: %s\n' "$email" "$password" >"$login")
    else
        echo "make run: $email exists in $GRIMNIR_DATA_DIR but $login is gone;" \
             "create another admin with: $bin user create --email you@example.org --role admin" >&2
    fi
fi

cat <<BANNER

  Grimnir Radio on http://$listen  (demo station from $GRIMNIR_STATIONS_DIR)
  API docs:  http://$listen/api/v1/docs/
  Sign in:   $( [ -f "$login" ] && tr '\n' ' ' <"$login" )

  Try:
    TOKEN=\$(curl -s -X POST http://$listen/api/v1/auth/login -H 'content-type: application/json' \\
      -d '{"email":"$email","password":"<the password above>"}' | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')
    curl -s http://$listen/api/v1/stations -H "Authorization: Bearer \$TOKEN"

BANNER
exec "$bin" serve
