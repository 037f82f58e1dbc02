#!/usr/bin/env bash
# The whole test suite: lint, strict typing, and pytest with coverage.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_project dev
cd "$ROOT"

# The tests start servers of their own on free loopback ports (redis-server, a Redis
# cluster, PostgreSQL, MariaDB) and drive the demo in headless Chromium; install what the
# machine lacks. The packages may start system services; the tests never use them.
have() { command -v "$1" >/dev/null || compgen -G "$2" >/dev/null; }
missing=()
have redis-server "/nonexistent" || missing+=(redis-server)
have redis-cli "/nonexistent" || missing+=(redis-tools)
have initdb "/usr/lib/postgresql/*/bin/initdb" || missing+=(postgresql)
have mariadbd "/usr/sbin/mariadbd" || missing+=(mariadb-server)
have chromium "/nonexistent" || missing+=(chromium chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || true
    else
        echo "The tests need: ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]})." >&2
        exit 1
    fi
fi

echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy --strict"
"$VENV/bin/mypy"
echo "== mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --quiet --site-dir "$(mktemp -d)"
echo "== pytest"
"$VENV/bin/pytest" --cov=fastapi_session_deps --cov-report=term-missing "$@"
