"""The command line: ``python -m fastapi_session_deps`` and the ``fastapi-session-deps`` script."""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from fastapi_session_deps import SQLBackend
from fastapi_session_deps.cli import EXIT_OK, EXIT_STORE, EXIT_USAGE, main

from .conftest import sql_records
from .helpers import Clock
from .redis_servers import free_port

pytestmark = pytest.mark.anyio


async def run(arguments: list[str]) -> int:
    """`main` in a thread: it runs an event loop of its own, as from a shell."""
    return await anyio.to_thread.run_sync(main, arguments)


async def expired_store(path: Path, clock: Clock, table: str = "sessions") -> SQLBackend:
    """A SQLite store with three expired sessions and one live one (on the real clock)."""
    backend = SQLBackend.from_url(f"sqlite:///{path}", table_name=table, clock=clock)
    await backend.create_table()
    for index in range(3):
        await backend.set(f"old{index}", {"a": b"1"}, ttl=1)
    await backend.set("live", {"a": b"1"}, ttl=10**10)
    return backend


async def test_cleanup_deletes_the_expired_sessions_of_a_sql_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = await expired_store(tmp_path / "s.db", Clock(start=1_000_000.0))
    url = f"sqlite:///{tmp_path}/s.db"
    assert await run(["cleanup", "--store", url, "--batch-size", "2"]) == EXIT_OK
    assert capsys.readouterr().out == "Deleted 3 expired sessions.\n"
    assert list(await sql_records(backend)) == ["live"]
    assert await run(["cleanup", "--store", url]) == EXIT_OK
    assert capsys.readouterr().out == "Deleted 0 expired sessions.\n"
    await backend.aclose()


async def test_the_store_url_may_come_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = await expired_store(tmp_path / "s.db", Clock(start=1_000_000.0), table="mine")
    monkeypatch.setenv("SESSION_STORE_URL", f"sqlite+aiosqlite:///{tmp_path}/s.db")
    assert await run(["cleanup", "--table", "mine"]) == EXIT_OK
    assert "Deleted 3" in capsys.readouterr().out
    await backend.aclose()


async def test_a_store_that_expires_sessions_itself_has_nothing_to_delete(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(["cleanup", "--store", redis_url]) == EXIT_OK
    assert (
        capsys.readouterr().out == "RedisBackend expires sessions by itself: nothing to delete.\n"
    )


def test_an_unreachable_store_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/db"  # nothing listens there
    assert main(["cleanup", "--store", url, "--timeout", "5"]) == EXIT_STORE
    assert "the store failed: postgresql failed on delete_expired" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["cleanup", "--store", "ftp://example/x"], "'ftp' is not a store URL"),
        (["cleanup", "--store", "no-scheme"], "'no-scheme' is not a store URL"),
        (["cleanup"], "needs --store URL, or $SESSION_STORE_URL set"),
        (["cleanup", "--store", "sqlite:///x.db", "--batch-size", "0"], "must be positive"),
        (["cleanup", "--store", "sqlite:///x.db", "--timeout", "-1"], "must be positive"),
        (["vacuum"], "invalid choice: 'vacuum'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2(
    arguments: list[str],
    complaint: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SESSION_STORE_URL", raising=False)
    try:
        code = main(arguments)
    except SystemExit as exit_:  # argparse's own refusals
        code = int(exit_.code or 0)
    assert code == EXIT_USAGE
    assert complaint in capsys.readouterr().err


def test_a_store_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "from fastapi_session_deps.cli import main\n"
        f"raise SystemExit(main(['cleanup', '--store', 'sqlite:///{tmp_path}/s.db']))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == EXIT_USAGE
    assert "pip install 'fastapi-session-deps[sql]'" in result.stderr


@pytest.mark.parametrize("command", [[], ["cleanup"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == EXIT_OK
    assert "Exit codes: 0 done, 1 the store failed, 2 a usage error." in capsys.readouterr().out


def test_python_dash_m_runs_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["fastapi_session_deps", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("fastapi_session_deps", run_name="__main__")
    assert exit_.value.code == EXIT_OK
    assert "usage: fastapi-session-deps" in capsys.readouterr().out


def test_the_console_script_is_installed() -> None:
    script = shutil.which("fastapi-session-deps", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run(  # noqa: S603 - the script this package installs
        [script, "cleanup", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == EXIT_OK
    assert "Delete the records of expired sessions" in result.stdout
