#!/usr/bin/env bash
# The demo shop, its sessions encrypted in SQLite (data/sessions.db), on http://127.0.0.1:8000.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_project demo
exec "$VENV/bin/python" "$ROOT/examples/demo.py"
