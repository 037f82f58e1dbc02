"""The command line: ``python -m fastapi_session_deps`` (or ``fastapi-session-deps``).

Exit codes: 0 done; 1 the store could not be reached (or refused); 2 a usage error (an
unknown command or option, a store URL of no known kind, a missing extra).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from .backends.base import Backend
from .exceptions import BackendError, BackendUnavailable, MissingDependencyError

__all__ = ["main", "open_store"]

EXIT_OK, EXIT_STORE, EXIT_USAGE = 0, 1, 2
#: Where ``--store`` is read from when it is not given (a URL in a command line is visible
#: to every user of the machine in the process list; one in the environment is not).
STORE_VARIABLE = "SESSION_STORE_URL"

_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb")


class UsageError(Exception):
    """A command line that cannot be run as given."""


def open_store(url: str, *, table: str = "sessions", timeout: float = 30.0) -> Backend:
    """The store a URL names, owning its connections.

    - ``redis://`` and ``rediss://``: `RedisBackend`;
    - ``sqlite://``, ``postgresql://``, ``mysql://``, ``mariadb://`` (with or without an
      asyncio driver, ``postgresql+asyncpg://``): `SQLBackend` on ``table``.

    Raises:
        UsageError: a URL of no known kind.
        MissingDependencyError: the store's extra is not installed.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("redis", "rediss"):
        from .backends.redis import RedisBackend

        return RedisBackend.from_url(url, timeout=timeout)
    if scheme.split("+", 1)[0] in _SQL_SCHEMES:
        from .backends.sql import SQLBackend

        return SQLBackend.from_url(url, table_name=table, timeout=timeout)
    raise UsageError(
        f"{url.split(':', 1)[0]!r} is not a store URL: use redis://, rediss://, sqlite://, "
        "postgresql://, mysql:// or mariadb://."
    )


async def _cleanup(arguments: argparse.Namespace) -> str:
    backend = open_store(arguments.store, table=arguments.table, timeout=arguments.timeout)
    try:
        deleted = await backend.delete_expired(batch_size=arguments.batch_size)
    finally:
        await backend.aclose()
    if deleted == 0 and type(backend).delete_expired is Backend.delete_expired:
        return f"{type(backend).__name__} expires sessions by itself: nothing to delete."
    return f"Deleted {deleted} expired sessions."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastapi-session-deps",
        description="Operate the session stores of fastapi-session-deps.",
        epilog="Exit codes: 0 done, 1 the store failed, 2 a usage error.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cleanup = commands.add_parser(
        "cleanup",
        help="delete expired sessions from a store that keeps them (SQL)",
        description=(
            "Delete the records of expired sessions, in batches, and print how many. Only "
            "SQL stores keep expired records; Redis and memory expire them by themselves. "
            "Run it from cron, every few minutes."
        ),
        epilog="Exit codes: 0 done, 1 the store failed, 2 a usage error.",
    )
    cleanup.add_argument(
        "--store",
        metavar="URL",
        default=os.environ.get(STORE_VARIABLE),
        help=f"the store's URL (default: ${STORE_VARIABLE}), e.g. postgresql://user@host/db",
    )
    cleanup.add_argument(
        "--table", default="sessions", help="the SQL session table (default: sessions)"
    )
    cleanup.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1000,
        metavar="ROWS",
        help="rows deleted per statement, each its own transaction (default: 1000)",
    )
    cleanup.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="the most one statement may take (default: 30)",
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)  # exits with 2 on a usage error, 0 on --help
    if not arguments.store:
        parser.error(f"the cleanup command needs --store URL, or ${STORE_VARIABLE} set")
    try:
        print(asyncio.run(_cleanup(arguments)))
    except (UsageError, MissingDependencyError) as exc:
        print(f"fastapi-session-deps: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (BackendUnavailable, BackendError) as exc:
        print(f"fastapi-session-deps: the store failed: {exc}", file=sys.stderr)
        return EXIT_STORE
    return EXIT_OK
