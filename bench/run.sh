#!/usr/bin/env bash
# The side-by-side benchmark, in an environment of its own (bench/.venv) with the peer
# libraries installed. Starts its own redis-server on a free loopback port.
#   bash bench/run.sh [--quick] [--no-load] [--output bench/RESULTS.md]
# and each of our stores side by side (private Redis, PostgreSQL and MariaDB servers):
#   bash bench/run.sh stores [--quick] [--output bench/STORES.md]
# and what each optional feature costs per request (encryption at rest):
#   bash bench/run.sh features [--quick] [--output bench/FEATURES.md]
# and how fast a session's lock passes between requests, per store:
#   bash bench/run.sh locks [--output bench/LOCKS.md]
# and what hiredis buys, by the size of the session read:
#   bash bench/run.sh parsers [--quick] [--output bench/PARSERS.md]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/bench/.venv"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
"$VENV/bin/python" -m pip install --quiet -e "$ROOT[redis,sql,postgres,mysql,encryption,dev]" \
    "starsessions[redis]" fastapi-sessions uvicorn

for tool in redis-server wrk; do
    if ! command -v "$tool" >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null || true
    fi
done
command -v redis-server >/dev/null || { echo "bench needs redis-server on PATH" >&2; exit 1; }
command -v wrk >/dev/null || echo "wrk not found: the load part is skipped" >&2

cd "$ROOT"
case "${1:-}" in
    stores | features | locks | parsers)
        script="bench/$1.py"
        shift
        exec "$VENV/bin/python" "$script" "$@"
        ;;
esac
exec "$VENV/bin/python" bench/compare.py "$@"
