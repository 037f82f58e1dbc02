# Sourced by the other scripts: make .venv (once) and install the project into it.
# Needs only Python 3.10+; on Debian/Ubuntu as root it installs python3-venv if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "fastapi-session-deps needs Python 3.10 or newer as '$PYTHON' (set PYTHON=...)." >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "Installing the venv module (python3-venv)..." >&2
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            "$PYTHON" -m venv "$VENV"
        else
            echo "Could not create a virtual environment: install your system's python3-venv." >&2
            exit 1
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

# Reinstall only when the requested extras or pyproject.toml changed.
install_project() {
    local extras="$1"
    local stamp="$VENV/.installed-$extras"
    local digest
    digest="$(cat "$ROOT/pyproject.toml" | "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$extras]"
        echo "$digest" > "$stamp"
    fi
}
