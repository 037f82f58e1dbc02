"""The command line: ``python -m fastapi_session_deps`` (or ``fastapi-session-deps``).

Commands: ``keygen``, ``check``, ``stats``, ``cleanup``, ``revoke``, ``create-tables``;
``--help`` on each.
Store URLs are read by `fastapi_session_deps.store_url.open_store`.

Exit codes: 0 done; 1 a problem (the store could not be reached or refused, or ``check``
found one); 2 a usage error (an unknown command or option, a store URL of no known kind, a
missing extra, an app that cannot be loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._engine import SessionEngine
from ._time import in_words
from .backends.base import Backend, backend_name, ping
from .backends.memory import MemoryBackend
from .exceptions import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    MissingDependencyError,
    SessionError,
    StoreNotSetUp,
)
from .frontends.cookie import CookieFrontend
from .keys import new_encryption_key, new_secret_key
from .manager import SessionManager
from .models import SessionModel
from .signing import MIN_SECRET_KEY_BYTES
from .store_url import open_store

__all__ = ["main"]

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
#: The former name of `EXIT_PROBLEM`: the store failed.
EXIT_STORE = EXIT_PROBLEM
EXIT_CODES = "Exit codes: 0 done, 1 a problem (the store failed, a check failed), 2 a usage error."
#: Where ``--store`` is read from when it is not given (a URL in a command line is visible
#: to every user of the machine in the process list; one in the environment is not).
STORE_VARIABLE = "SESSION_STORE_URL"
#: A store answering a ping slower than this is reported by ``check``.
SLOW_PING = 0.1


class UsageError(Exception):
    """A command line that cannot be run as given."""


# -- keygen ------------------------------------------------------------------------------


async def _keygen(arguments: argparse.Namespace) -> int:
    if arguments.encryption:
        key, variable = new_encryption_key(), "SESSION_ENCRYPTION_KEYS"
    else:
        key, variable = new_secret_key(), "SESSION_SECRET_KEY"
    print(f"{variable}={key}" if arguments.env else key)
    return EXIT_OK


# -- stats, cleanup, revoke ------------------------------------------------------------------


def _store(arguments: argparse.Namespace) -> Backend:
    url = arguments.store
    if not url:
        raise UsageError(
            f"the {arguments.command} command needs --store URL, or ${STORE_VARIABLE} set"
        )
    table = getattr(arguments, "table", None)
    if table:
        url += ("&" if "?" in url else "?") + f"table={table}"
    return open_store(url, timeout=arguments.timeout)


async def _stats(arguments: argparse.Namespace) -> int:
    backend = _store(arguments)
    try:
        counted = await backend.stats(top=arguments.top)
    finally:
        await backend.aclose()
    if counted is None:
        print(f"{backend_name(backend)} cannot count its sessions.", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"Live sessions: {counted.live:,}")
    print(f"Users with a session: {counted.users:,}")
    if counted.top_users:
        print("Most sessions:")
        width = max(len(user) for user, _ in counted.top_users)
        for user, count in counted.top_users:
            print(f"  {user:<{width}}  {count:,}")
    return EXIT_OK


async def _cleanup(arguments: argparse.Namespace) -> int:
    backend = _store(arguments)
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        deleted = await backend.delete_expired(
            batch_size=arguments.batch_size, progress=None if bar is None else bar.show
        )
    finally:
        if bar is not None:
            bar.close()
        await backend.aclose()
    if deleted == 0 and type(backend).delete_expired is Backend.delete_expired:
        print(f"{backend_name(backend)} expires sessions by itself: nothing to delete.")
    else:
        print(f"Deleted {deleted:,} expired sessions.")
    return EXIT_OK


async def _create_tables(arguments: argparse.Namespace) -> int:
    backend = _store(arguments)
    try:
        create = getattr(backend, "create_table", None)
        if create is None:
            print(f"{backend_name(backend)} needs no tables: nothing to create.")
            return EXIT_OK
        await create()
    finally:
        await backend.aclose()
    print(f"The session tables of {backend_name(backend)} exist.")
    return EXIT_OK


async def _revoke(arguments: argparse.Namespace) -> int:
    backend = _store(arguments)
    try:
        # The same code path as the app's own "log out everywhere"; the key signs nothing.
        sessions = SessionManager(
            SessionModel,
            frontend=CookieFrontend(new_secret_key()),
            backend=backend,
            user_index=True,
        )
        ended = await sessions.users.revoke_all(arguments.user)
    finally:
        await backend.aclose()
    print(f"Revoked {ended:,} session{'s' if ended != 1 else ''} of {arguments.user}.")
    return EXIT_OK


class ProgressBar:
    """A one-line progress bar on a terminal, redrawn in place."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream, self.width, self.started = stream, width, time.monotonic()

    def show(self, done: int, expected: int) -> None:
        share = min(done / expected, 1.0) if expected else 1.0
        filled = round(share * self.width)
        rate = done / max(time.monotonic() - self.started, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done:,}/{expected:,} "
            f"({share:.0%}, {rate:,.0f}/s)"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


# -- check -----------------------------------------------------------------------------------


@dataclass
class Report:
    """What ``check`` found: lines to print, and whether any is a problem."""

    lines: list[str] = field(default_factory=list)
    problems: int = 0
    warnings: int = 0

    def ok(self, text: str) -> None:
        self.lines.append(f"  ok       {text}")

    def warn(self, text: str) -> None:
        self.warnings += 1
        self.lines.append(f"  warning  {text}")

    def problem(self, text: str) -> None:
        self.problems += 1
        self.lines.append(f"  PROBLEM  {text}")


def load_app(spec: str) -> tuple[Any, dict[str, Any]]:
    """The app ``module:attribute`` names (the current directory importable, as uvicorn
    does), and the globals of its module."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--app must be module:attribute (as uvicorn takes it), not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # whatever the module raises while it runs: a usage error
        raise UsageError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    app: Any = module
    for part in attribute.split("."):
        if not hasattr(app, part):
            raise UsageError(f"{module_name!r} has no {attribute!r}")
        app = getattr(app, part)
    return app, vars(module)


@dataclass
class Found:
    """What an app's middleware stack and module hold: the session engines the stack
    serves, the settings its session middleware refused, and the managers beside it that
    no middleware serves (their sessions could never be saved)."""

    engines: list[SessionEngine[Any]] = field(default_factory=list)
    refusals: list[ConfigurationError] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)


def find_sessions(app: Any, namespace: dict[str, Any]) -> Found:
    """The sessions an app uses: those of its middleware stack (``SessionMiddleware``,
    ``sessions.middleware``) and the `SessionManager` objects beside it in its module."""
    found = Found()
    build = getattr(app, "build_middleware_stack", None)
    layer: Any = build() if callable(build) else None
    while layer is not None:
        for holder in (layer, getattr(layer, "standalone", None)):
            engine = getattr(holder, "engine", None)
            if isinstance(engine, SessionEngine) and engine not in found.engines:
                found.engines.append(engine)
            refusal = getattr(holder, "refusal", None)
            if isinstance(refusal, ConfigurationError):
                found.refusals.append(refusal)
        layer = getattr(layer, "app", None)
    for name, value in namespace.items():
        if isinstance(value, SessionManager) and value.engine not in found.engines:
            found.engines.append(value.engine)
            found.unserved.append(name)
    return found


async def check_engine(engine: SessionEngine[Any], report: Report) -> None:
    """Check one engine's configuration and store, adding what was found to ``report``."""
    backend, frontend, policy = engine.backend, engine.frontend, engine.policy
    name = backend_name(backend)
    try:
        took = await ping(backend)
    except StoreNotSetUp as exc:
        report.problem(f"store: {name}: table missing: {exc}")
    except (BackendUnavailable, BackendError) as exc:
        report.problem(f"store: {name} did not answer: {exc}")
    else:
        line = f"store: {name} answered in {took * 1000:.1f} ms"
        (report.warn if took > SLOW_PING else report.ok)(line)
    if isinstance(backend, MemoryBackend):
        report.warn(
            "store: MemoryBackend keeps sessions in one process: lost on restart, not "
            "shared between workers"
        )
    keys = frontend.key_count  # each at least 32 bytes, or it was refused
    report.ok(f"secret key: {keys} key(s), each at least {MIN_SECRET_KEY_BYTES} bytes")
    if isinstance(frontend, CookieFrontend):
        _check_cookie(frontend, report)
    absolute = policy.absolute_timeout
    report.ok(
        f"timeouts: idle {in_words(policy.idle_timeout)}, absolute "
        + ("none" if absolute is None else in_words(absolute))
    )
    if policy.absolute_timeout is None:
        report.warn("timeouts: no absolute timeout: an active session lives for ever")


#: The units a duration is said in, largest first.
def _check_cookie(cookie: CookieFrontend, report: Report) -> None:
    flags = f"cookie {cookie.cookie_name!r}"
    if cookie.secure is False:
        report.warn(f"{flags}: Secure is off: the cookie is sent over plain HTTP")
    if not cookie.httponly:
        report.problem(f"{flags}: HttpOnly is off: scripts on the page can read the token")
    if (cookie.samesite or "").lower() == "none":  # only with Secure: the frontend sees to it
        report.warn(f"{flags}: SameSite=None: sent on cross-site requests (use CSRF)")
    if cookie.httponly and cookie.secure is not False:
        report.ok(f"{flags}: HttpOnly, Secure ({cookie.secure}), SameSite={cookie.samesite}")


async def _check(arguments: argparse.Namespace) -> int:
    app, namespace = load_app(arguments.app)
    found = find_sessions(app, namespace)
    if not (found.engines or found.refusals):
        print(f"{arguments.app} uses no fastapi-session-deps sessions.", file=sys.stderr)
        return EXIT_PROBLEM
    report = Report()
    for refusal in found.refusals:
        report.problem(f"settings: the session middleware refuses to start: {refusal}")
    for name in found.unserved:
        report.problem(
            f"middleware: {name} has none in this app, so its sessions are never saved: "
            f"add app.add_middleware({name}.middleware)"
        )
    engines = found.engines
    for number, engine in enumerate(engines, 1):
        report.lines.append(f"Sessions {number} of {len(engines)}:")
        try:
            await check_engine(engine, report)
        finally:
            await engine.backend.aclose()
    print("\n".join(report.lines))
    failed = report.problems or (arguments.strict and report.warnings)
    print(f"{report.problems} problem(s), {report.warnings} warning(s).")
    return EXIT_PROBLEM if failed else EXIT_OK


# -- the parser ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastapi-session-deps",
        description="Keys, checks and operations for fastapi-session-deps and its stores.",
        epilog=EXIT_CODES,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, epilog=EXIT_CODES)

    keygen = command(
        "keygen",
        "print a new secret key",
        "Print a new random key: a signing key for SESSION_SECRET_KEY (64 characters, 48 "
        "random bytes), or with --encryption a key for SESSION_ENCRYPTION_KEYS.",
    )
    keygen.add_argument("--env", action="store_true", help="print it as VARIABLE=key")
    keygen.add_argument(
        "--encryption", action="store_true", help="a key for EncryptedBackend instead"
    )

    check = command(
        "check",
        "check an app's session settings and store",
        "Load an app (as uvicorn does, from the current directory), find its session "
        "managers and middleware, and check each: the store answers (and how fast), the "
        "keys, the cookie's flags, the timeouts. Exits 1 on a problem: for a deploy "
        "pipeline. Does not start the app's lifespan.",
    )
    check.add_argument("--app", required=True, metavar="MODULE:ATTR", help="e.g. main:app")
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")

    stats = command(
        "stats",
        "count a store's live sessions, and by user",
        "Count the live sessions in a store and the users they belong to (sessions bound "
        "by a log-in, with user_index=True), and name the users with the most. Reads the "
        "whole store (a count on SQL, a scan on Redis).",
    )
    stats.add_argument(
        "--top", type=_positive_int, default=10, metavar="N", help="users to name (default 10)"
    )

    cleanup = command(
        "cleanup",
        "delete expired sessions from a store that keeps them (SQL)",
        "Delete the records of expired sessions, in batches, and print how many (with a "
        "progress bar on a terminal). Only SQL stores keep expired records; Redis and "
        "memory expire them by themselves. Run it from cron, every few minutes.",
    )
    cleanup.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1000,
        metavar="ROWS",
        help="rows deleted per statement, each its own transaction (default: 1000)",
    )

    revoke = command(
        "revoke",
        "end every session of a user",
        "End every live session bound to a user (needs sessions bound by a log-in, "
        "user_index=True): their next request, on any process, is anonymous.",
    )
    revoke.add_argument("--user", required=True, help="the user, as the app logged them in")

    create_tables = command(
        "create-tables",
        "create a SQL store's session tables, if missing",
        "Create the session table and its lock table in a SQL store, if they do not exist "
        "(safe to run from several places at once). For a first deploy, or development; "
        "in production, prefer your migrations (docs: choosing a store).",
    )

    for operation in (stats, cleanup, revoke, create_tables):
        operation.add_argument(
            "--store",
            metavar="URL",
            default=os.environ.get(STORE_VARIABLE),
            help=f"the store's URL (default: ${STORE_VARIABLE}), e.g. postgresql://user@host/db",
        )
        operation.add_argument(
            "--table", default=None, help="the SQL session table (default: sessions)"
        )
        operation.add_argument(
            "--timeout",
            type=_positive_float,
            default=30.0,
            metavar="SECONDS",
            help="the most one store call may take (default: 30)",
        )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "keygen": _keygen,
    "check": _check,
    "stats": _stats,
    "cleanup": _cleanup,
    "revoke": _revoke,
    "create-tables": _create_tables,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code."""
    arguments = _parser().parse_args(argv)  # exits with 2 on a usage error, 0 on --help
    try:
        return asyncio.run(COMMANDS[arguments.command](arguments))
    except (BackendUnavailable, BackendError) as exc:  # before SessionError, their base
        print(f"fastapi-session-deps: the store failed: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except (UsageError, MissingDependencyError, ConfigurationError, SessionError) as exc:
        print(f"fastapi-session-deps: {exc}", file=sys.stderr)
        return EXIT_USAGE
