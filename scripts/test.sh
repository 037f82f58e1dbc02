#!/usr/bin/env bash
# The whole test suite: lint, strict typing, pytest with coverage, then the lowest-versions
# lane (scripts/lowest.sh), which runs part of the suite at every declared floor.
# Usage: bash scripts/test.sh [pytest arguments]   (with arguments, the lane is left out)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_project dev
cd "$ROOT"

# The tests start servers of their own on free loopback ports (redis-server, a Redis
# cluster, PostgreSQL, PgBouncer in front of it, MariaDB) and drive the demo in headless Chromium; install what the
# machine lacks. The packages may start system services; the tests never use them.
have() { command -v "$1" >/dev/null || compgen -G "$2" >/dev/null; }
missing=()
have redis-server "/nonexistent" || missing+=(redis-server)
have redis-cli "/nonexistent" || missing+=(redis-tools)
have initdb "/usr/lib/postgresql/*/bin/initdb" || missing+=(postgresql)
have mariadbd "/usr/sbin/mariadbd" || missing+=(mariadb-server)
have pgbouncer "/usr/sbin/pgbouncer" || missing+=(pgbouncer)
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

# The lowest-versions lane runs beside the main suite (each starts servers of its own on
# free ports): on two cores the main suite leaves most of one idle, waiting on its servers.
lane=""
if [ "$#" -eq 0 ]; then
    lane_log="$(mktemp)"
    bash "$ROOT/scripts/lowest.sh" >"$lane_log" 2>&1 &
    lane=$!
fi
finish_lane() {
    [ -n "$lane" ] || return 0
    local status=0
    wait "$lane" || status=$?
    echo "== the lowest-versions lane (scripts/lowest.sh)"
    cat "$lane_log"
    rm -f "$lane_log"
    lane=""
    return "$status"
}
trap finish_lane EXIT  # never leave it running: it stops its own servers when it ends

echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
# Every Python the package claims: mypy checks for the oldest and the newest (only one
# of them may be installed here), and tests/test_packaging.py parses every module with
# the oldest one's grammar.
for python in 3.10 3.13; do
    echo "== mypy --strict --python-version $python"
    "$VENV/bin/mypy" --python-version "$python"
done
echo "== mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --quiet --site-dir "$(mktemp -d)"
echo "== pytest"
status=0
"$VENV/bin/pytest" --cov=fastapi_session_deps --cov-report=term-missing "$@" || status=$?
finish_lane || status=$((status ? status : 1))
exit "$status"
