"""The command line: ``python -m fastapi_session_deps`` and the ``fastapi-session-deps`` script."""

from __future__ import annotations

import io
import runpy
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    EncryptedBackend,
    MemoryBackend,
    SessionManager,
    SessionModel,
    SQLBackend,
)
from fastapi_session_deps.cli import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_STORE,
    EXIT_USAGE,
    in_words,
    main,
)
from fastapi_session_deps.service import create_app
from fastapi_session_deps.signing import MIN_SECRET_KEY_BYTES

from .helpers import SECRET, SERVICE_TOKEN, Clock, NoLocksBackend, served_in_thread
from .redis_servers import free_port
from .support import sql_records

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
        (["cleanup", "--store", "ftp://example/x"], "ftp:// is not a store's scheme"),
        (["cleanup", "--store", "app:PASSWORD@db/app"], "a store URL needs a scheme"),
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


@pytest.mark.parametrize(
    ("blocked", "url", "extra"),
    [
        ("sqlalchemy", "sqlite:///{tmp}/s.db", "sql"),
        ("aiosqlite", "sqlite:///{tmp}/s.db", "sql"),
        ("asyncpg", "postgresql://app:secret@127.0.0.1:9/app", "postgres"),
        ("aiomysql", "mysql://app:secret@127.0.0.1:9/app", "mysql"),
        ("aiomysql", "mariadb+aiomysql://app:secret@127.0.0.1:9/app", "mysql"),
    ],
)
def test_a_store_without_its_extra_names_the_extra_in_one_line(
    tmp_path: Path, blocked: str, url: str, extra: str
) -> None:
    # The package installed with the wrong extra: ``[sql]`` and a PostgreSQL URL, say.
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from fastapi_session_deps.cli import main\n"
        f"raise SystemExit(main(['cleanup', '--store', {url.format(tmp=tmp_path)!r}]))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == EXIT_USAGE
    assert f"pip install 'fastapi-session-deps[{extra}]'" in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "secret" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [[], ["keygen"], ["check"], ["stats"], ["cleanup"], ["revoke"], ["create-tables"]],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == EXIT_OK
    out = " ".join(capsys.readouterr().out.split())
    assert "Exit codes: 0 done, 1 a problem (the store failed, a check failed), 2 a usage" in out


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


# -- keygen ------------------------------------------------------------------------------


def test_keygen_prints_a_new_key_each_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == EXIT_OK
    assert main(["keygen"]) == EXIT_OK
    first, second = capsys.readouterr().out.split()
    assert first != second
    assert len(first) == 64  # 48 random bytes
    assert len(first.encode()) >= MIN_SECRET_KEY_BYTES
    CookieFrontend(first)  # a key the library takes


def test_a_short_key_or_service_token_names_keygen_as_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="`fastapi-session-deps keygen`") as short:
        CookieFrontend("short")
    assert "python -c" not in str(short.value)
    with pytest.raises(ConfigurationError, match="`fastapi-session-deps keygen`"):
        create_app(MemoryBackend(), token="short")


def test_keygen_prints_environment_lines_and_encryption_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keygen", "--env"]) == EXIT_OK
    assert main(["keygen", "--env", "--encryption"]) == EXIT_OK
    signing, sealing = capsys.readouterr().out.splitlines()
    assert signing.startswith("SESSION_SECRET_KEY=")
    variable, _, key = sealing.partition("=")
    assert variable == "SESSION_ENCRYPTION_KEYS"
    EncryptedBackend(MemoryBackend(), keys=[key])  # a key the library takes


# -- stats, revoke, cleanup's progress ---------------------------------------------------------


class Visits(SessionModel):
    visits: int = 0


async def signed_in(url: str, sessions_of: dict[str | None, int]) -> None:
    """Store sessions through the app's own code path: ``n`` logged in as each user."""
    from fastapi_session_deps.store_url import open_store

    store = open_store(url)
    if isinstance(store, SQLBackend):
        await store.create_table()
    manager = SessionManager(
        Visits, frontend=CookieFrontend(SECRET), backend=store, user_index=True
    )
    app = FastAPI()
    app.add_middleware(manager.middleware)

    @app.post("/login")
    async def login(user: str, session: Visits = Depends(manager.get_session)) -> None:  # noqa: B008
        session.visits += 1
        if user:
            await manager.login(session, user)

    transport = httpx.ASGITransport(app=app)
    for user, count in sessions_of.items():
        for _ in range(count):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.post("/login", params={"user": user or ""})).is_success
    await store.aclose()


async def test_stats_counts_sessions_and_users_and_revoke_ends_a_user_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    await signed_in(url, {"ada": 3, "bob": 1, None: 2})
    assert await run(["stats", "--store", url, "--top", "1"]) == EXIT_OK
    assert capsys.readouterr().out == (
        "Live sessions: 6\nUsers with a session: 2\nMost sessions:\n  ada  3\n"
    )
    assert await run(["revoke", "--store", url, "--user", "ada"]) == EXIT_OK
    assert capsys.readouterr().out == "Revoked 3 sessions of ada.\n"
    assert await run(["revoke", "--store", url, "--user", "ada"]) == EXIT_OK
    assert capsys.readouterr().out == "Revoked 0 sessions of ada.\n"
    assert await run(["stats", "--store", url]) == EXIT_OK
    assert capsys.readouterr().out == (
        "Live sessions: 3\nUsers with a session: 1\nMost sessions:\n  bob  1\n"
    )


async def test_stats_and_revoke_on_redis(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{redis_url}?key_prefix=cli-{uuid.uuid4().hex}:"
    await signed_in(url, {"grace": 2, "alan": 1, None: 1})
    assert await run(["stats", "--store", url]) == EXIT_OK
    assert capsys.readouterr().out == (
        "Live sessions: 4\nUsers with a session: 2\nMost sessions:\n  grace  2\n  alan   1\n"
    )
    assert await run(["revoke", "--store", url, "--user", "grace"]) == EXIT_OK
    assert "Revoked 2 sessions of grace." in capsys.readouterr().out


async def test_revoke_needs_a_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    await signed_in(url, {"ada": 1})
    assert await run(["revoke", "--store", url, "--user", ""]) == EXIT_USAGE
    assert "The user must be a non-empty string" in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_cleanup_draws_a_progress_bar_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = await expired_store(tmp_path / "s.db", Clock(start=1_000_000.0))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    url = f"sqlite:///{tmp_path}/s.db"
    assert await run(["cleanup", "--store", url, "--batch-size", "2"]) == EXIT_OK
    drawn = terminal.getvalue()
    assert drawn.startswith("\r[")
    assert "] 0/3 (0%" in drawn
    assert "] 2/3 (67%" in drawn
    assert drawn.endswith("] 3/3 (100%, " + drawn.rsplit("(100%, ", 1)[1])
    assert drawn.endswith("/s)\n")
    assert capsys.readouterr().out == "Deleted 3 expired sessions.\n"
    await backend.aclose()


# -- check -----------------------------------------------------------------------------------

CHECKED_APP = """
from fastapi import FastAPI
from fastapi_session_deps import CookieFrontend, MemoryBackend, SessionManager, SessionModel
from fastapi_session_deps import SessionMiddleware, SQLBackend

sessions = SessionManager(
    SessionModel,
    frontend=CookieFrontend("{secret}", httponly={httponly}, secure={secure}),
    backend={backend},
    absolute_timeout=3600,
)
app = FastAPI()
app.add_middleware(sessions.middleware)
"""


def module_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """``source`` as a module of a new name in the current directory: its ``app``."""
    name = f"checked_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    return f"{name}:app"


def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: str) -> str:
    settings = {"secret": SECRET, "httponly": "True", "secure": "True", **values}
    settings.setdefault("backend", "MemoryBackend()")
    return module_of(tmp_path, monkeypatch, CHECKED_APP.format(**settings))


def test_check_passes_a_sound_app_and_names_its_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = app_module(tmp_path, monkeypatch)
    assert main(["check", "--app", app]) == EXIT_OK
    out = capsys.readouterr().out
    assert "ok       store: MemoryBackend answered in" in out
    assert "warning  store: MemoryBackend keeps sessions in one process" in out
    assert "ok       secret key: 1 key(s), each at least 32 bytes" in out
    assert "ok       cookie '__Host-session': HttpOnly, Secure (True), SameSite=lax" in out
    assert "ok       timeouts: idle 30 minutes, absolute 1 hour" in out
    assert out.endswith("0 problem(s), 1 warning(s).\n")
    assert main(["check", "--app", app, "--strict"]) == EXIT_PROBLEM


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (1_209_600, "14 days"),
        (86_400, "1 day"),
        (5_400, "90 minutes"),
        (1, "1 second"),
        (0.5, "0.5 seconds"),
        (90_061, "90,061 seconds"),
    ],
)
def test_check_says_durations_in_words(seconds: float, said: str) -> None:
    assert in_words(seconds) == said


def test_check_fails_an_app_whose_store_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"postgresql://nobody@127.0.0.1:{free_port()}/db"
    app = app_module(
        tmp_path,
        monkeypatch,
        httponly="False",
        secure="False",
        backend=f"SQLBackend.from_url({down!r})",
    )
    assert main(["check", "--app", app]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    assert "PROBLEM  store: SQLBackend did not answer" in out
    assert "PROBLEM  cookie 'session': HttpOnly is off" in out
    assert "warning  cookie 'session': Secure is off" in out
    assert "2 problem(s)" in out


def test_check_reads_request_session_middleware_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = module_of(
        tmp_path,
        monkeypatch,
        "from starlette.applications import Starlette\n"
        "from fastapi_session_deps import MemoryBackend, SessionAutoloadMiddleware\n"
        "app = Starlette()\n"
        f"app.add_middleware(SessionAutoloadMiddleware, secret_key={SECRET!r},\n"
        "    backend=MemoryBackend(), same_site='none', https_only=True)\n",
    )
    assert main(["check", "--app", app]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Sessions 1 of 1:" in out
    assert "SameSite=None: sent on cross-site requests" in out
    assert "no absolute timeout" in out


def test_check_of_header_sessions_beside_a_cross_site_cookie(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = module_of(
        tmp_path,
        monkeypatch,
        "from fastapi import FastAPI\n"
        "from fastapi_session_deps import CookieFrontend, HeaderFrontend, MemoryBackend\n"
        "from fastapi_session_deps import SessionManager, SessionModel\n"
        f"api = SessionManager(SessionModel, frontend=HeaderFrontend({SECRET!r}),\n"
        "    backend=MemoryBackend(), absolute_timeout=3600)\n"
        f"web = SessionManager(SessionModel, frontend=CookieFrontend({SECRET!r},\n"
        "    samesite='none'), backend=MemoryBackend(), absolute_timeout=3600)\n"
        "app = FastAPI()\n"
        "app.add_middleware(api.middleware)\n"
        "app.add_middleware(web.middleware)\n",
    )
    assert main(["check", "--app", app]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Sessions 2 of 2:" in out
    assert "SameSite=None: sent on cross-site requests (use CSRF)" in out
    assert out.count("cookie '__Host-session'") == 2  # header sessions have no cookie


async def test_create_tables_makes_a_sql_stores_tables_once_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    for _ in range(2):  # the second run finds them there
        assert await run(["create-tables", "--store", url]) == EXIT_OK
        assert capsys.readouterr().out == "The session tables of SQLBackend exist.\n"
    backend = SQLBackend.from_url(url)
    await backend.set("k", {"a": b"1"}, ttl=10)
    assert await backend.get("k") == {"a": b"1"}
    await backend.aclose()
    assert await run(["create-tables", "--store", redis_url]) == EXIT_OK
    assert capsys.readouterr().out == "RedisBackend needs no tables: nothing to create.\n"


def test_check_names_a_missing_table_and_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"SQLBackend.from_url('sqlite:///{tmp_path}/never-created.db')"
    app = app_module(tmp_path, monkeypatch, backend=store)
    assert main(["check", "--app", app]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    problem = next(line for line in out.splitlines() if "PROBLEM" in line)
    assert "store: SQLBackend: table missing:" in problem
    assert "`fastapi-session-deps create-tables --store URL`" in problem
    assert "did not answer" not in out


def test_check_fails_an_app_that_never_adds_its_managers_middleware(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = CHECKED_APP.format(
        secret=SECRET, httponly="True", secure="True", backend="MemoryBackend()"
    )
    app = module_of(tmp_path, monkeypatch, source.replace("app.add_middleware(", "# "))
    assert main(["check", "--app", app]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    assert (
        "PROBLEM  middleware: sessions has none in this app, so its sessions are never "
        "saved: add app.add_middleware(sessions.middleware)"
    ) in out
    assert "1 problem(s)" in out


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        ("secret_key='short'", "secret_key is 5 bytes long"),
        (
            f"secret_key={SECRET!r}, max_age=3600, absolute_timeout=60",
            "absolute_timeout",
        ),
    ],
)
@pytest.mark.parametrize("middleware", ["SessionMiddleware", "SessionAutoloadMiddleware"])
def test_check_reports_the_drop_ins_refusal_in_its_own_words(
    settings: str,
    refusal: str,
    middleware: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = module_of(
        tmp_path,
        monkeypatch,
        "from fastapi import FastAPI\n"
        f"from fastapi_session_deps import MemoryBackend, {middleware}\n"
        "app = FastAPI()\n"
        f"app.add_middleware({middleware}, backend=MemoryBackend(), {settings})\n",
    )
    assert main(["check", "--app", app]) == EXIT_PROBLEM
    captured = capsys.readouterr()
    assert "uses no fastapi-session-deps sessions" not in captured.err
    problem = next(line for line in captured.out.splitlines() if "PROBLEM" in line)
    assert "settings: the session middleware refuses to start:" in problem
    assert refusal in problem


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("app = (\n", "SyntaxError: "),
        ("import os\nSECRET = os.environ['NO_SUCH_VARIABLE_HERE']\n", "KeyError: 'NO_SUCH_"),
        ("raise RuntimeError('the database is not configured')\n", "RuntimeError: the data"),
    ],
)
def test_check_of_an_app_that_cannot_be_imported_is_one_line_and_exit_2(
    body: str,
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = module_of(tmp_path, monkeypatch, body)
    assert main(["check", "--app", app]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"fastapi-session-deps: cannot import {app.split(':')[0]!r}: {named}")
    assert len(err.splitlines()) == 1, err


async def test_stats_of_an_empty_store_and_of_one_that_cannot_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    await signed_in(url, {})
    assert await run(["stats", "--store", url]) == EXIT_OK
    assert capsys.readouterr().out == "Live sessions: 0\nUsers with a session: 0\n"
    with served_in_thread(create_app(NoLocksBackend(), token=SERVICE_TOKEN)) as base:
        monkeypatch.setenv("SESSION_SERVICE_TOKEN", SERVICE_TOKEN)
        assert await run(["stats", "--store", base]) == EXIT_PROBLEM
    assert "HTTPBackend cannot count its sessions." in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "code", "complaint"),
    [
        ("nothing_here:app", EXIT_USAGE, "cannot import 'nothing_here'"),
        ("json:app", EXIT_USAGE, "'json' has no 'app'"),
        ("json", EXIT_USAGE, "--app must be module:attribute"),
        ("json:loads", EXIT_PROBLEM, "json:loads uses no fastapi-session-deps sessions"),
    ],
)
def test_check_says_what_it_could_not_load(
    spec: str, code: int, complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--app", spec]) == code
    assert complaint in capsys.readouterr().err
