#!/usr/bin/env bash
# The whole test suite: lint, strict typing, and pytest with coverage.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_project dev
cd "$ROOT"

echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy --strict"
"$VENV/bin/mypy"
echo "== pytest"
"$VENV/bin/pytest" --cov=fastapi_session_deps --cov-report=term-missing "$@"
