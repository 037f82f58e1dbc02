#!/usr/bin/env bash
# The whole test suite: lint, strict typing, and pytest with coverage.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_project dev
cd "$ROOT"

# The tests start their own redis-server processes (a single server and a 3-node cluster)
# on free loopback ports; install the binaries when the machine lacks them.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing redis-server"
        apt-get update -qq
        # The package may try to start a system service; the tests never use it.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null || true
    fi
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        echo "The tests need redis-server and redis-cli on PATH (Debian/Ubuntu: apt-get install redis-server)." >&2
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
