"""A newcomer's first hour, played end to end: an app written from the docs' SQL program,
and each common mistake made on purpose. Every answer must name its fix."""

import asyncio
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from fastapi_session_deps import MissingMiddlewareError, SQLBackend
from fastapi_session_deps.cli import EXIT_PROBLEM, EXIT_USAGE, main

from .test_docs import programs

pytestmark = pytest.mark.anyio

KEY = "newcomer-secret-key-0123456789-abcdefgh"


def the_docs_app() -> str:
    """The docs' SQL program (docs/how-to/choosing-a-store.md), as a newcomer copies it."""
    (code,) = (code for where, code in programs() if where.endswith(":sql_app.py"))
    return code


def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str) -> str:
    """``code`` saved as a module of its own in the current directory: its ``module:app``."""
    name = f"newcomer_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}:app"


def without(code: str, fragment: str) -> str:
    """``code`` without its one line that holds ``fragment``."""
    lines = code.splitlines(keepends=True)
    kept = [line for line in lines if fragment not in line]
    assert len(kept) == len(lines) - 1, fragment
    return "".join(kept)


async def test_the_newcomers_path_every_mistake_names_its_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    monkeypatch.setenv("SESSION_STORE_URL", f"sqlite:///{tmp_path}/sessions.db")
    code = the_docs_app()

    # 1. The table never created (the lifespan's create_table() left out): 503s, one ERROR
    #    naming the three fixes, and `check` says the table is missing.
    forgot = without(code, "await backend.create_table()")
    spec = written(tmp_path, monkeypatch, forgot)
    app = __import__(spec.split(":")[0]).app
    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.ERROR, logger="fastapi_session_deps"):
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        ):
            answers = [(await client.post("/cart", params={"item": "tea"})) for _ in range(3)]
    assert {answer.status_code for answer in answers} == {503}
    told = [
        r.getMessage() for r in caplog.records if r.__dict__.get("event") == "store_table_missing"
    ]
    assert len(told) == 1
    assert "fastapi-session-deps create-tables --store URL" in told[0]
    assert "await backend.create_table()" in told[0]
    assert await asyncio.to_thread(main, ["check", "--app", spec]) == EXIT_PROBLEM
    assert "table missing" in capsys.readouterr().out

    # ... and the fix it names works: the command, run twice as two deploy steps might.
    for _ in range(2):
        assert await asyncio.to_thread(main, ["create-tables"]) == 0
    assert "exist" in capsys.readouterr().out

    # 2. Two workers creating the tables at once: both start (the docs' program itself).
    raced = [SQLBackend.from_url(f"sqlite:///{tmp_path}/raced.db") for _ in range(2)]
    await asyncio.gather(*(backend.create_table() for backend in raced))
    for backend in raced:
        await backend.aclose()

    # 3. The wrong extra for PostgreSQL: one line naming [postgres], exit 2.
    wrong = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['asyncpg'] = None\n"
            "from fastapi_session_deps.cli import main\n"
            "raise SystemExit(main(['stats', '--store', 'postgresql://app@127.0.0.1:9/app']))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == EXIT_USAGE
    assert wrong.stderr.strip().endswith("pip install 'fastapi-session-deps[postgres]'")

    # 4. The middleware never added: `check` says so with the line to add, and the app
    #    refuses to start rather than answer 500 on every session route.
    spec = written(
        tmp_path, monkeypatch, without(code, "app.add_middleware(sessions.middleware)\n")
    )
    assert await asyncio.to_thread(main, ["check", "--app", spec]) == EXIT_PROBLEM
    assert "add app.add_middleware(sessions.middleware)" in capsys.readouterr().out
    app = __import__(spec.split(":")[0]).app
    with pytest.raises(
        MissingMiddlewareError, match=r"app\.add_middleware\(sessions\.middleware\)"
    ):
        async with app.router.lifespan_context(app):
            pass

    # 5. The drop-in with a key too short: `check` reports the refusal, naming keygen.
    spec = written(
        tmp_path,
        monkeypatch,
        "from fastapi import FastAPI\n"
        "from fastapi_session_deps import SessionMiddleware\n"
        "app = FastAPI()\n"
        "app.add_middleware(SessionMiddleware, secret_key='change-me')\n",
    )
    assert await asyncio.to_thread(main, ["check", "--app", spec]) == EXIT_PROBLEM
    assert "`fastapi-session-deps keygen`" in capsys.readouterr().out

    # 6. An app that cannot be imported (its settings read a variable that is not set): one
    #    line naming the error, exit 2.
    spec = written(tmp_path, monkeypatch, "import os\nURL = os.environ['DATABASE_URL']\n" + code)
    assert await asyncio.to_thread(main, ["check", "--app", spec]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "KeyError: 'DATABASE_URL'" in err
