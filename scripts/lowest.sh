#!/usr/bin/env bash
# The lowest-versions lane: the package as a user pinned to our floors would get it.
#
# Builds the wheel and the sdist (and checks them with twine), installs the wheel with every
# extra into a fresh virtual environment at the lowest version of every dependency that
# pyproject.toml declares (scripts/floors.py), proves those versions are the ones installed,
# runs the command line and the quickstart from that environment, then runs about half of
# the suite from the unpacked sdist against the installed wheel: the typed API (HTTP and
# WebSocket routes), request.session, CSRF and flash, a user's sessions, every store (Redis,
# Redis Cluster, SQLite, PostgreSQL, MariaDB, the service) with its driver at its floor,
# the examples under uvicorn, and Starlette's own session tests of the Starlette that
# FastAPI 0.115 brings. The demo's browser tests stay in the main run (they need Playwright).
#
# Usage: bash scripts/lowest.sh [pytest arguments]   (scripts/test.sh runs it)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_project dev
cd "$ROOT"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fsd-lowest-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LANE="$WORK/venv"
#: Every extra we promise: the lane installs them all, so every floor is tested.
EXTRAS="$("$VENV/bin/python" scripts/floors.py --extras)"

echo "== build: wheel and sdist"
"$VENV/bin/python" -m build --no-isolation --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log"; exit 1; }
"$VENV/bin/twine" check --strict "$WORK"/dist/*
wheel=("$WORK"/dist/fastapi_session_deps-*.whl)
sdist=("$WORK"/dist/fastapi_session_deps-*.tar.gz)

echo "== a fresh environment at the floors"
"$VENV/bin/python" scripts/floors.py >"$WORK/floors.txt"
sed 's/^/   /' "$WORK/floors.txt"
"$PYTHON" -m venv "$LANE"
# The test tools are not promises of ours: pip takes their newest that fits the floors,
# except trio, whose newer releases dropped an argument anyio 4.0 still passes.
"$LANE/bin/python" -m pip install --quiet --disable-pip-version-check -c "$WORK/floors.txt" \
    "${wheel[0]}[$EXTRAS]" \
    pytest pytest-timeout hypothesis opentelemetry-sdk python-multipart "trio<0.23" \
    alembic markupsafe 2>&1 |
    { grep -v "^WARNING: Location" || true; }
"$LANE/bin/python" scripts/floors.py --check

echo "== the command line and the quickstart, from the wheel"
"$LANE/bin/fastapi-session-deps" --help | grep -q "keygen"
key="$("$LANE/bin/fastapi-session-deps" keygen)"
[ "${#key}" -ge 43 ] || { echo "keygen printed '$key'" >&2; exit 1; }
(cd "$WORK" && "$LANE/bin/python" - "$ROOT/examples/quickstart.py") <<'EOF'
import asyncio, runpy, sys

import httpx

app = runpy.run_path(sys.argv[1])["app"]


async def main() -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        assert (await client.get("/me")).status_code == 401
        assert (await client.post("/login")).json() == {"ok": True}
        assert (await client.get("/me")).json() == {"user_id": 1}
        for _ in range(2):
            cart = (await client.post("/cart", params={"item": "apple"})).json()
        assert cart == ["apple", "apple"], cart
        await client.post("/logout")
        assert (await client.get("/me")).status_code == 401


asyncio.run(main())
print("   the quickstart logs in, keeps a cart and logs out")
EOF

echo "== the suite at the floors, from the sdist, against the wheel"
tar -xzf "${sdist[0]}" -C "$WORK"
tree=("$WORK"/fastapi_session_deps-*/)
rm -rf "${tree[0]}fastapi_session_deps"  # so only the installed wheel can be imported
cd "${tree[0]}"
# FastAPI 0.115 imports python-multipart under its old name, which warns.
FSD_EXPECT_INSTALLED=1 "$LANE/bin/python" -m pytest -q -p no:cacheprovider --basetemp "$WORK/tmp" \
    -W "ignore:Please use \`import python_multipart\`:PendingDeprecationWarning" \
    -m "not reliability and not servers" \
    tests/test_packaging.py tests/test_manager.py tests/test_middleware.py \
    tests/test_starlette_compat.py tests/test_starlette_suite.py tests/test_flash.py \
    tests/test_csrf.py tests/test_users.py tests/backends/test_contract.py \
    tests/backends/test_redis.py tests/backends/test_sql.py tests/test_examples.py \
    tests/test_lifetime.py tests/test_lazy_paths.py tests/backends/test_pgbouncer.py \
    "$@"
