"""`SQLBackend`: session records in a SQL table, through SQLAlchemy's asyncio engine.

SQLite (``aiosqlite``), PostgreSQL (``asyncpg``) and MySQL or MariaDB (``aiomysql``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import anyio
import anyio.lowlevel

from .._record import MAX_USER_LENGTH, RESERVED_PREFIX, facts_fields, owner_of
from ..exceptions import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    MissingDependencyError,
    StoreNotSetUp,
)
from ..signing import session_handle
from ._json_record import join_fields, split_fields
from .base import (
    LOCK_TOMBSTONE_SECONDS,
    Backend,
    EndBatch,
    EndedRecord,
    LockWaits,
    Progress,
    SessionIndex,
    SessionLocks,
    StoreStats,
    UserRecord,
    batches,
)

try:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.dialects import mysql, postgresql, sqlite
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without SQLAlchemy
    raise MissingDependencyError.of("SQLBackend", "sql", "SQLAlchemy") from exc

__all__ = ["SQLBackend"]

logger = logging.getLogger("fastapi_session_deps")

R = TypeVar("R")

#: A read renews a record's expiry only once this share of the time-to-live has gone by
#: since the last renewal, so most reads are one SELECT and write nothing; the record then
#: lives between 90 % and 100 % of the idle timeout after the last request, as the token's
#: renewal already allows (the engine's ``REISSUE_FRACTION``).
RENEW_FRACTION = 0.1
#: Keys per statement when a user's sessions are ended (bound parameters have limits).
INDEX_BATCH = 1000
#: The most members a merge patch may have to be applied by SQLite's ``json_patch`` or
#: MySQL's ``JSON_MERGE_PATCH`` (whose time grows with the patch's size times the
#: record's); a larger one is applied here, in a transaction that locks the row.
SERVER_PATCH_LIMIT = 16
#: Rows deleted per statement by `SQLBackend.delete_expired`, by default.
DEFAULT_BATCH_SIZE = 1000

_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb")
#: The driver `SQLBackend.from_url` uses for a URL that names none.
ASYNC_DRIVERS = {
    "sqlite": "aiosqlite",
    "postgresql": "asyncpg",
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
}
#: The extra that brings each driver we name.
DRIVER_EXTRAS = {"aiosqlite": "sql", "asyncpg": "postgres", "aiomysql": "mysql"}


def session_tables(
    metadata: sa.MetaData, table_name: str = "sessions"
) -> tuple[sa.Table, sa.Table]:
    """Define the session table and its lock table on ``metadata``, and return them.

    ``<table_name>``: ``id_hash`` (the primary key: the SHA-256 of the session id, never the
    id), ``data`` (the session's fields, a JSON object of text), ``meta`` (the library's
    fields, likewise), ``expires_at`` (seconds since the epoch, indexed) and ``user_id``
    (the user the session is bound to, if any, indexed: the index of a user's sessions).
    ``<table_name>_locks``: the locks of ``concurrency="lock"``, one row per held lock.

    On MySQL and MariaDB both tables use ``utf8mb4`` with a binary collation, since keys are
    case-sensitive.
    """
    text_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    mysql_options: dict[str, Any] = {
        f"{dialect}_{option}": value
        for dialect in ("mysql", "mariadb")
        for option, value in (("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
    }
    records = sa.Table(
        table_name,
        metadata,
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("data", text_json, nullable=False),
        sa.Column("meta", text_json, nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False, index=True),
        # The user a session is bound to (``user_index=True``), for listing their sessions.
        sa.Column("user_id", sa.String(255), nullable=True, index=True),
        # SQLite keeps JSON as text and would take anything; the others check it already.
        sa.CheckConstraint(
            "json_valid(data) AND json_valid(meta)", name=f"ck_{table_name}_json"
        ).ddl_if(dialect="sqlite"),
        **mysql_options,
    )
    locks = sa.Table(
        f"{table_name}_locks",
        metadata,
        sa.Column("lock_key", sa.String(160), primary_key=True),
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False, index=True),
        **mysql_options,
    )
    return records, locks


class SQLBackend(Backend, SessionLocks, SessionIndex):
    """Session records in a SQL table: SQLite, PostgreSQL, MySQL or MariaDB.

    One row per session, keyed by the hash of its id, with its fields as JSON and an
    indexed expiry. Every operation is one statement, atomic on its own:

    - a read is a ``SELECT`` of a live row (an expired one is never returned, whether or
      not it has been deleted yet); it renews the expiry with an ``UPDATE`` only once
      a tenth of the idle timeout has gone by since the last renewal;
    - a whole-record write is an upsert (``ON CONFLICT`` / ``ON DUPLICATE KEY``), so
      concurrent writers never meet a duplicate-key error;
    - a field-level merge is one ``UPDATE`` of a live row that patches its JSON on the
      server (``jsonb ||`` on PostgreSQL, ``json_patch`` on SQLite, ``JSON_MERGE_PATCH`` on
      MySQL and MariaDB): a session destroyed or expired meanwhile is never brought back.

    It also provides the per-session locks of ``concurrency="lock"``: a row per held lock,
    taken by an insert that only one writer can win, with an expiry after which another
    request may take it over.

    Expired rows are invisible at once, but stay in the table until `delete_expired`
    removes them (in batches, so no statement holds many locks for long): run it from cron
    (``python -m fastapi_session_deps cleanup``) or let the manager's lifespan run it
    (``cleanup_interval=``).

    The backend never creates its tables by itself: put `table` and `lock_table` in your
    migrations (see `session_tables`), or call `create_table` (for development and tests).

    Args:
        engine: an asyncio engine (``create_async_engine``). The backend never disposes an
            engine it was handed; use `from_url` for one it owns.
        table_name: the session table's name; the lock table is ``<table_name>_locks``.
        metadata: the `sqlalchemy.MetaData` to define the tables on (your app's, so that
            Alembic's autogenerate sees them); a new one by default.
        timeout: seconds any one store call may take, waiting for a pooled connection
            included; past it, the call fails with `BackendUnavailable` (a 503).
        clock: seconds since the epoch, for expiry; tests may pass a fake one. Keep the
            clocks of the app's servers in sync: expiry is judged by the app's clock.
        transaction_pooling: PostgreSQL is reached through a pooler that lends a server
            connection for one transaction at a time (PgBouncer's ``pool_mode =
            transaction``), where a prepared statement may be gone by the time it is
            used: every call then runs in a transaction of its own (begun and ended with
            the simple protocol), and no statement is cached. `from_url` sets up the
            engine for it; an engine you hand in needs ``prepared_statement_cache_size=0``
            in its URL and ``connect_args={"statement_cache_size": 0,
            "prepared_statement_name_func": ...}`` giving unique names (see the how-to).

    Raises:
        ConfigurationError: an engine of another database, a non-positive timeout, or
            ``transaction_pooling`` on another database than PostgreSQL.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        table_name: str = "sessions",
        metadata: sa.MetaData | None = None,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.time,
        transaction_pooling: bool = False,
    ) -> None:
        if not isinstance(engine, AsyncEngine):
            raise ConfigurationError(
                f"SQLBackend needs an asyncio engine (create_async_engine), not {engine!r}."
            )
        dialect = engine.dialect.name
        if dialect not in _DIALECTS:
            raise ConfigurationError(
                f"SQLBackend supports SQLite, PostgreSQL, MySQL and MariaDB, not {dialect!r}."
            )
        if not timeout > 0:
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}."
            )
        if transaction_pooling and dialect != "postgresql":
            raise ConfigurationError(
                f"transaction_pooling=True is for PostgreSQL behind PgBouncer, not {dialect!r}."
            )
        self.engine = engine
        self.transaction_pooling = transaction_pooling
        self.metadata = metadata if metadata is not None else sa.MetaData()
        self.table, self.lock_table = session_tables(self.metadata, table_name)
        self.timeout = timeout
        self._clock = clock
        self._owns_engine = False
        self._dialect = "mysql" if dialect == "mariadb" else dialect
        # Each call is one statement, atomic by itself: no transaction to begin or end. (An
        # engine made by from_url is in autocommit already, set once per connection rather
        # than at every checkout.)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        #: What a call that failed on the database raises: SQLAlchemy's errors, the
        #: operating system's, and the driver's where SQLAlchemy does not wrap them.
        self._faults: tuple[type[Exception], ...] = (
            sa_exc.SQLAlchemyError,
            OSError,
            *_driver_errors(engine),
        )
        self._abandoned: set[asyncio.Future[Any]] = set()
        #: Whether a missing table has been logged (once; again after `create_table`).
        self._told_missing = False
        self._statements = _Statements(self._dialect, self.table, self.lock_table)
        self._lock_waits = LockWaits()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table_name: str = "sessions",
        metadata: sa.MetaData | None = None,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.time,
        transaction_pooling: bool = False,
        **engine_options: Any,
    ) -> SQLBackend:
        """Create the engine too (the backend owns it, and disposes it in `aclose`).

        ``sqlite+aiosqlite:///path/sessions.db`` (the directory is created if missing; the
        database is put in WAL mode, so that readers never wait for a writer),
        ``postgresql+asyncpg://user:password@host/db``,
        ``mysql+aiomysql://user:password@host/db`` (``charset=utf8mb4`` unless the URL says
        otherwise). A URL without a driver (``postgresql://...``) gets the one named here.
        ``engine_options`` go to ``create_async_engine``. ``transaction_pooling=True``
        (PostgreSQL behind PgBouncer in transaction mode) sets the engine up for it: no
        statement cache, unique statement names, transactions rather than autocommit.

        Raises:
            ConfigurationError: an in-memory SQLite URL (each pooled connection would see a
                database of its own: use `MemoryBackend`), or another database.
        """
        parsed, options = _engine_settings(sa.make_url(url), timeout, transaction_pooling)
        name = parsed.get_backend_name()
        options.update(engine_options)
        try:
            engine = create_async_engine(parsed, **options)  # imports the driver
        except ModuleNotFoundError as exc:
            if exc.name not in DRIVER_EXTRAS:
                raise
            raise MissingDependencyError.of(
                f"SQLBackend on {name}", DRIVER_EXTRAS[exc.name], exc.name
            ) from None
        if name == "sqlite":
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            backend = cls(
                engine,
                table_name=table_name,
                metadata=metadata,
                timeout=timeout,
                clock=clock,
                transaction_pooling=transaction_pooling,
            )
        except ConfigurationError:
            engine.sync_engine.dispose()
            raise
        backend._owns_engine = True
        if not transaction_pooling:
            backend._autocommit = engine
        return backend

    def __repr__(self) -> str:
        return f"SQLBackend({self._dialect}, table={self.table.name!r}, timeout={self.timeout!r})"

    # -- the tables ------------------------------------------------------------------------------

    async def create_table(self) -> None:
        """Create the session and lock tables if they do not exist: in a lifespan, or with
        ``fastapi-session-deps create-tables``; in production, in your migrations. Safe
        when several workers run it at once."""

        async def create() -> None:
            # Workers starting together each check, then create: the losers of that race
            # see "already exists" and check again, finding what the winner made.
            attempt = 0
            while True:
                attempt += 1
                try:
                    async with self.engine.begin() as connection:
                        await connection.run_sync(
                            self.metadata.create_all, tables=[self.table, self.lock_table]
                        )
                    return
                except sa_exc.DBAPIError as exc:
                    if attempt == 3 or not _already_exists(exc):
                        raise

        await self._call("create_table", create, seconds=max(self.timeout, 30.0))
        self._told_missing = False

    async def drop_table(self) -> None:
        """Drop the session and lock tables, if they exist: every session ends."""

        async def drop() -> None:
            async with self.engine.begin() as connection:
                await connection.run_sync(
                    self.metadata.drop_all, tables=[self.table, self.lock_table]
                )

        await self._call("drop_table", drop, seconds=max(self.timeout, 30.0))

    # -- records ---------------------------------------------------------------------------------

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        now = self._clock()
        row = await self._run("get", self._statements.select, {"k": key, "now": now}, _first)
        if row is None:
            return None
        data, meta, expires_at = row
        try:
            fields = decode_row(data, meta)
        except (TypeError, ValueError):
            logger.warning(
                "A session row that is not a session record: no session",
                extra={
                    "event": "record_undecodable",
                    "store": "SQLBackend",
                    "handle": session_handle(key),
                },
            )
            return None
        if ttl is not None and expires_at < now + ttl * (1 - RENEW_FRACTION):
            until = now + ttl
            await self._run(
                "get", self._statements.renew, {"k": key, "now": now, "until": until}, _count
            )
        return fields

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        data, meta = split_fields(fields)
        until = self._clock() + ttl
        values = {"k": key, "d": data, "m": meta, "until": until, "u": _owner(fields)}
        await self._run("set", self._statements.upsert, values, _count)

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        data, meta = split_fields(changed)
        # A merge patch: null removes a member (values are never null: they are text).
        patch: dict[str, str | None] = dict(data)
        meta_patch: dict[str, str | None] = dict(meta)
        for name in removed:
            if name.startswith(RESERVED_PREFIX):
                meta_patch[name[len(RESERVED_PREFIX) :]] = None
            else:
                patch[name] = None
        now = self._clock()
        values = {
            "k": key,
            "now": now,
            "until": now + ttl,
            "exact": exact,
            "d": patch,
            "m": meta_patch,
        }
        here = self._dialect != "postgresql" and len(patch) + len(meta_patch) > SERVER_PATCH_LIMIT
        if self._dialect == "sqlite" and not here:
            return await self._run("update", self._statements.merge, values, _count) == 1
        return await self._call(
            "update", lambda: _retrying(lambda: self._in_transaction(self._merge(values, here)))
        )

    def _merge(
        self, values: dict[str, Any], here: bool
    ) -> Callable[[AsyncConnection], Awaitable[bool]]:
        """The merge: one ``UPDATE`` that patches on the server, or (``here``) a locked
        read, a patch applied here and a write. ``here`` is for a large patch, which
        SQLite's and MySQL's JSON patch functions apply in time proportional to the patch's
        size times the record's."""

        async def merge(connection: AsyncConnection) -> bool:
            if here:
                return await self._patch_locked_row(connection, values)
            result = await connection.execute(self._statements.merge, values)
            return bool(result.rowcount == 1)

        return merge

    async def replace_unchanged(
        self, key: str, replacements: Mapping[str, tuple[bytes, bytes]]
    ) -> None:
        values = {"k": key, "now": self._clock()}

        async def swap(connection: AsyncConnection) -> bool:
            row = (await connection.execute(self._statements.select_for_update, values)).first()
            if row is None:
                return False
            try:
                fields = decode_row(row[0], row[1])
            except (TypeError, ValueError):
                return False  # a damaged row is no session: left alone
            swapped = {
                name: new for name, (old, new) in replacements.items() if fields.get(name) == old
            }
            if swapped:
                fields.update(swapped)
                data, meta = split_fields(fields)
                rewrite = {"k": key, "d": data, "m": meta, "u": _owner(fields)}
                await connection.execute(self._statements.rewrite, rewrite)
            return True

        await self._call(
            "replace_unchanged", lambda: _retrying(lambda: self._in_transaction(swap))
        )

    async def _in_transaction(self, work: Callable[[AsyncConnection], Awaitable[bool]]) -> bool:
        """``work`` in a transaction of its own.

        On a database server, a change is never a statement on its own: a call given up on
        (the database paused past the timeout) may still reach it later, and run after
        newer writes of the same fields, undoing them. In a transaction it cannot: if its
        ``UPDATE`` runs late, no ``COMMIT`` follows, and the transaction is rolled back when
        the connection closes; if it ran in time, it holds the row until its ``COMMIT``, and
        newer writes wait for it.
        """
        if self.transaction_pooling:
            return await self._pooled(work)
        async with self._autocommit.connect() as connection:
            try:
                await connection.exec_driver_sql(self._statements.begin)
                done = await work(connection)
            except Exception:
                with contextlib.suppress(Exception):
                    await connection.exec_driver_sql("ROLLBACK")
                raise
            except BaseException:
                # Cancelled (the timeout): not a word more to the database, whose answer
                # may never come; closing the connection rolls the transaction back.
                await connection.invalidate()
                raise
            await connection.exec_driver_sql("COMMIT")
        return done

    async def _patch_locked_row(self, connection: AsyncConnection, values: dict[str, Any]) -> bool:
        statements = self._statements
        row = (await connection.execute(statements.select_for_update, values)).first()
        if row is None:
            return False
        try:
            data, meta = split_fields(decode_row(row[0], row[1]))
        except (TypeError, ValueError):
            return False  # a damaged row is no session: not patched
        for stored, patch in ((data, values["d"]), (meta, values["m"])):
            for name, value in patch.items():
                if value is None:
                    stored.pop(name, None)
                else:
                    stored[name] = value
        whole = {
            "k": values["k"],
            "d": data,
            "m": meta,
            "until": values["until"],
            "exact": values["exact"],
        }
        await connection.execute(statements.replace, whole)
        return True

    async def delete(self, key: str) -> bool:
        values = {"k": key, "now": self._clock()}
        if await self._run("delete", self._statements.delete_live, values, _count):
            return True
        # Not live: an expired row may still be there, for the cleanup to find otherwise.
        await self._run("delete", self._statements.delete, values, _count)
        return False

    # -- the index of a user's sessions: the user_id column --------------------------------------

    async def index_add(self, user: str, key: str, *, ttl: float) -> None:
        """Nothing to do: the record's own ``user_id`` column is the index."""

    async def index_remove(self, user: str, keys: Collection[str]) -> None:
        """Nothing to do: a deleted record leaves the index with its row."""

    async def index_list(self, user: str) -> list[UserRecord]:
        return await self._user_records("index_list", self._statements.by_user, {"u": user})

    async def index_keys(self, user: str, *, offset: int = 0, limit: int = 1000) -> list[str]:
        values = {"u": user, "now": self._clock(), "offset": offset, "limit": limit}
        rows = await self._run("index_keys", self._statements.keys_by_user, values, _all)
        return [key for (key,) in rows]

    async def index_page(
        self, user: str, *, offset: int = 0, limit: int = 100
    ) -> list[UserRecord]:
        values = {"u": user, "offset": offset, "limit": limit}
        return await self._user_records("index_page", self._statements.page_by_user, values)

    async def index_end_some(
        self, user: str, *, keep: Collection[str] = (), after: str | None = None, limit: int = 1000
    ) -> EndBatch:
        """Walks the user's rows in key order from ``after``, and deletes a range of keys
        at a time, rather than a list of them: each statement is bounded whatever plan the
        database picks (a list compared against every row of the user, on statistics that
        no longer say how many the user has, took seconds a batch), and rows ended are
        behind ``after``, never read again."""
        values = {"u": user, "now": self._clock(), "after": after or "", "limit": limit}
        rows = await self._run("index_end_some", self._statements.keys_after, values, _all)
        if not rows:
            return [], None
        values.update(upto=rows[-1][0], keep=list(keep))
        ended = await self._end_rows(self._statements.end_range, values)
        return ended, rows[-1][0] if len(rows) == limit else None

    async def index_end(self, user: str, keys: Collection[str]) -> list[EndedRecord]:
        """Deletes the user's rows among ``keys``: the ``user_id`` column is the index, so
        nothing else is to be taken out of it."""
        ended = []
        for batch in batches(list(keys), INDEX_BATCH):
            values = {"u": user, "keys": batch, "now": self._clock()}
            ended += await self._end_rows(self._statements.end_keys, values)
        return ended

    async def _end_rows(self, ending: _Ending, values: dict[str, Any]) -> list[EndedRecord]:
        """Delete the user's rows ``ending`` names, and answer those that were live."""
        if self.engine.dialect.delete_returning:  # all but MySQL: one statement
            rows = await self._run("index_end", ending.delete_returning, values, _all)
        else:
            rows = await self._run("index_end", ending.select, values, _all)
            await self._run("index_end", ending.delete, values, _count)
        now = values["now"]
        return [(key, _facts(meta)) for key, meta, expires_at in rows if expires_at > now]

    async def _user_records(
        self, operation: str, statement: sa.Executable, values: dict[str, Any]
    ) -> list[UserRecord]:
        now = self._clock()
        rows = await self._run(operation, statement, {**values, "now": now}, _all)
        found: list[UserRecord] = []
        for key, data, meta, expires_at in rows:
            try:
                found.append((key, decode_row(data, meta), expires_at - now))
            except (TypeError, ValueError):
                continue  # damaged: no session, as its own next read will find
        return found

    async def delete_expired(
        self, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None
    ) -> int:
        """Delete the rows of expired sessions (and of expired locks), and return how many
        sessions' rows were deleted.

        In statements of at most ``batch_size`` rows, each its own transaction, so that the
        table is never locked for long; on PostgreSQL, rows another transaction holds are
        skipped (``FOR UPDATE SKIP LOCKED``) rather than waited for. Each statement is bounded
        by the backend's timeout, so a batch size the database cannot delete within it fails
        with `BackendUnavailable`; the rows deleted by then stay deleted.
        """
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ConfigurationError(f"batch_size must be a positive integer, not {batch_size!r}.")
        total = expected = 0
        if progress is not None:
            c = self.table.c
            expired = sa.select(sa.func.count()).where(c.expires_at <= sa.bindparam("now"))
            expected = int(
                (await self._run("delete_expired", expired, {"now": self._clock()}, _first))[0]
            )
            progress(0, expected)
        for statement, counted in (
            (self._statements.purge(self.table, batch_size), True),
            (self._statements.purge(self.lock_table, batch_size), False),
        ):
            while True:
                deleted = await self._run(
                    "delete_expired", statement, {"now": self._clock()}, _count
                )
                if counted:
                    total += deleted
                    if progress is not None:
                        progress(total, max(expected, total))
                if deleted < batch_size:
                    break
                await anyio.lowlevel.checkpoint()  # let requests in between batches
        return total

    async def stats(self, *, top: int = 10) -> StoreStats:
        c = self.table.c
        values = {"now": self._clock()}
        live = c.expires_at > sa.bindparam("now")
        owned = sa.and_(live, c.user_id.is_not(None))
        count = sa.func.count()
        sessions, users = await self._run(
            "stats",
            sa.select(count, sa.func.count(sa.distinct(c.user_id))).where(live),
            values,
            _first,
        )
        ranked = await self._run(
            "stats",
            sa.select(c.user_id, count)
            .where(owned)
            .group_by(c.user_id)
            .order_by(count.desc(), c.user_id)
            .limit(top),
            values,
            _all,
        )
        return StoreStats(int(sessions), int(users), [(user, int(n)) for user, n in ranked])

    # -- locks -----------------------------------------------------------------------------------

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        statements = self._statements

        async def attempt() -> bool:
            now = self._clock()
            values = {
                "lk": key,
                "tok": token,
                "until": now + ttl,
                "gone": _tombstone(key, token),
                "now": now,
            }
            if await self._run("acquire_lock", statements.take, values, _count) == 1:
                return True
            # Held, or held by a holder whose time ran out (it died): clear the latter.
            stale = {"lk": key, "now": now}
            if not await self._run("acquire_lock", statements.clear_stale, stale, _count):
                return False
            return bool(await self._run("acquire_lock", statements.take, values, _count) == 1)

        return await self._lock_waits.acquire(key, attempt, wait)

    async def release_lock(self, key: str, token: str) -> None:
        statements = self._statements
        released = await self._run(
            "release_lock", statements.release, {"lk": key, "tok": token}, _count
        )
        # Released: its waiters are not woken here (see LockWaits); they try at their pace.
        if not released:
            # Not held by this token: its acquisition may still be on its way (it timed out
            # against a paused database). Leave a tombstone so that it never takes the lock.
            until = self._clock() + LOCK_TOMBSTONE_SECONDS
            values = {"lk": _tombstone(key, token), "tok": token, "until": until}
            await self._run("release_lock", statements.tombstone, values, _count)

    async def aclose(self) -> None:
        if self._abandoned:  # calls given up on: let them close their connections first
            await asyncio.wait(self._abandoned, timeout=5)
        if self._owns_engine:
            self._owns_engine = False
            await self.engine.dispose()

    # -- running statements --------------------------------------------------------------------

    async def _run(
        self,
        operation: str,
        statement: sa.Executable,
        values: dict[str, Any],
        read: Callable[[sa.CursorResult[Any]], R],
    ) -> R:
        """Execute one statement on a pooled connection, in autocommit (behind a
        transaction pooler, in a transaction of its own), under the timeout."""

        async def run(connection: AsyncConnection) -> R:
            return read(await connection.execute(statement, values))

        async def execute() -> R:
            if self.transaction_pooling:
                return await self._pooled(run)
            async with self._autocommit.connect() as connection:
                return await run(connection)

        return await self._call(operation, lambda: _retrying(execute))

    async def _pooled(self, work: Callable[[AsyncConnection], Awaitable[R]]) -> R:
        """``work`` in a transaction begun by the driver with the simple protocol, so that a
        transaction pooler keeps one server connection for all of it (the statements'
        preparation included); behind a pooler, a statement alone is never safe."""
        async with self.engine.connect() as connection:
            try:
                async with connection.begin():
                    return await work(connection)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    await connection.invalidate()  # cancelled: not a word more to it
                raise

    async def _call(
        self, operation: str, work: Callable[[], Awaitable[R]], *, seconds: float | None = None
    ) -> R:
        """Run ``work`` for at most the timeout, and turn a database's faults into ours.

        The work runs in a task of its own, and is left behind when the time is up: a
        cancelled driver may wait on the database to close its connection (SQLAlchemy
        gives a graceful close two seconds), and the caller must not wait with it.
        """
        seconds = self.timeout if seconds is None else seconds
        task = asyncio.ensure_future(work())
        try:
            done, _ = await asyncio.wait((task,), timeout=seconds)
        except BaseException:  # the caller itself was cancelled
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise BackendUnavailable(
                f"{self._dialect} did not answer {operation} within {seconds:g} s",
                backend="SQLBackend",
                operation=operation,
            )
        try:
            return task.result()
        except sa_exc.DBAPIError as exc:
            if _table_missing(exc):
                raise self._not_set_up(operation, exc) from exc
            if not _refused_as_wrong(exc):
                raise self._unavailable(operation, exc) from exc
            # Refused as wrong, not as unavailable: a retry would only repeat it.
            logger.error(
                "SQLBackend: %s refused %s: %s",
                self._dialect,
                operation,
                _brief(exc),
                extra={"event": "store_refused", "store": "SQLBackend"},
            )
            raise BackendError(
                f"{self._dialect} refused {operation}: {_brief(exc)}",
                backend="SQLBackend",
                operation=operation,
            ) from exc
        except self._faults as exc:
            raise self._unavailable(operation, exc) from exc

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        """Cancel ``task`` and let it finish in the background (kept until it does)."""
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        with contextlib.suppress(BaseException):
            task.result()  # retrieved: a late failure of abandoned work is no news

    def _not_set_up(self, operation: str, exc: BaseException) -> StoreNotSetUp:
        """A missing table, named with its fix, and logged at ERROR once."""
        error = StoreNotSetUp(
            f"{self._dialect} has no session table {self.table.name!r} (or its lock table "
            f"{self.lock_table.name!r}): {_brief(exc)}. Create it with your migration, or "
            "`fastapi-session-deps create-tables --store URL`, or "
            "`await backend.create_table()` at start-up.",
            backend="SQLBackend",
            operation=operation,
        )
        if not self._told_missing:
            self._told_missing = True
            logger.error(
                "SQLBackend: %s",
                error,
                extra={"event": "store_table_missing", "store": "SQLBackend"},
            )
        return error

    def _unavailable(self, operation: str, exc: BaseException) -> BackendUnavailable:
        # Connection refused or lost, a database shutting down or read-only, a lock
        # timeout: "retry shortly".
        return BackendUnavailable(
            f"{self._dialect} failed on {operation}: {_brief(exc)}",
            backend="SQLBackend",
            operation=operation,
        )


class _Ending(NamedTuple):
    """The statements that end some of a user's rows: the live ones among them, and the
    deletion, with and without ``RETURNING`` (which MySQL lacks)."""

    select: sa.Select[Any]
    delete: sa.Delete
    delete_returning: sa.Executable


class _Statements:
    """Every statement the backend runs, built once (SQLAlchemy caches their compiled SQL)."""

    def __init__(self, dialect: str, table: sa.Table, locks: sa.Table) -> None:
        self.dialect = dialect
        now: sa.BindParameter[float] = sa.bindparam("now", type_=sa.Double())
        until: sa.BindParameter[float] = sa.bindparam("until", type_=sa.Double())
        self._records(table, now, until)
        self._locks(locks, now, until)

    def _records(
        self, table: sa.Table, now: sa.BindParameter[float], until: sa.BindParameter[float]
    ) -> None:
        c = table.c
        k = sa.bindparam("k", type_=c.id_hash.type)
        live = sa.and_(c.id_hash == k, c.expires_at > now)

        # Read back as text, parsed by `decode_row`: a damaged row is "no session", never
        # an error from a driver's JSON decoder (asyncpg decodes jsonb itself otherwise).
        as_text = (sa.cast(c.data, sa.Text()), sa.cast(c.meta, sa.Text()))
        self.select = sa.select(*as_text, c.expires_at).where(live)
        self._users(table, as_text, now)
        # Renew only forward, and never a row that expired meanwhile.
        self.renew = sa.update(table).where(live, c.expires_at < until).values(expires_at=until)
        self.delete = sa.delete(table).where(c.id_hash == k)
        self.delete_live = sa.delete(table).where(live)
        self._writes(table, k, live, until, as_text)

    def _writes(
        self,
        table: sa.Table,
        k: sa.BindParameter[str],
        live: sa.ColumnElement[bool],
        until: sa.BindParameter[float],
        as_text: tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]],
    ) -> None:
        c = table.c
        row = {
            "id_hash": k,
            "data": sa.bindparam("d", type_=c.data.type),
            "meta": sa.bindparam("m", type_=c.meta.type),
            "expires_at": until,
            "user_id": sa.bindparam("u", type_=c.user_id.type),
        }
        self.upsert = self._upsert(table, row)
        # A merge pushes the expiry out, never sooner, unless told to set it exactly.
        exact = sa.bindparam("exact", type_=sa.Boolean())
        later = sa.case((sa.or_(exact, c.expires_at < until), until), else_=c.expires_at)
        self.merge = (
            sa.update(table)
            .where(live)
            .values(
                data=self._patched(c.data, "d"),
                meta=self._patched(c.meta, "m"),
                expires_at=later,
            )
        )
        # For a merge patched here: the live row, locked until the transaction ends (SQLite
        # takes its write lock at BEGIN IMMEDIATE instead), then written whole.
        self.begin = {"sqlite": "BEGIN IMMEDIATE", "mysql": "START TRANSACTION"}.get(
            self.dialect, "BEGIN"
        )
        self.select_for_update = sa.select(*as_text).where(live).with_for_update()
        self.replace = (
            sa.update(table)
            .where(c.id_hash == k)
            .values(data=row["data"], meta=row["meta"], expires_at=later)
        )
        self.rewrite = (
            sa.update(table)
            .where(c.id_hash == k)
            .values(data=row["data"], meta=row["meta"], user_id=row["user_id"])
        )

    def _users(
        self,
        table: sa.Table,
        as_text: tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]],
        now: sa.BindParameter[float],
    ) -> None:
        """The statements of the index of users' sessions: the ``user_id`` column."""
        c = table.c
        user = sa.bindparam("u", type_=c.user_id.type)
        of_user = sa.and_(c.user_id == user, c.expires_at > now)
        self.by_user = sa.select(c.id_hash, *as_text, c.expires_at).where(of_user)
        # A user's sessions a page at a time, the latest to expire first (and in a fixed
        # order among equals, so that pages neither overlap nor skip).
        offset: sa.BindParameter[int] = sa.bindparam("offset", type_=sa.Integer())
        limit: sa.BindParameter[int] = sa.bindparam("limit", type_=sa.Integer())
        latest = (c.expires_at.desc(), c.id_hash)
        keys = sa.select(c.id_hash).where(of_user).order_by(*latest)
        self.keys_by_user = keys.limit(limit).offset(offset)
        self.page_by_user = self.by_user.order_by(*latest).limit(limit).offset(offset)
        after = c.id_hash > sa.bindparam("after", type_=c.id_hash.type)
        self.keys_after = (
            sa.select(c.id_hash).where(of_user, after).order_by(c.id_hash).limit(limit)
        )
        ended = (c.id_hash, as_text[1], c.expires_at)

        def ending(which: sa.ColumnElement[bool]) -> _Ending:
            delete = sa.delete(table).where(c.user_id == user, which)
            return _Ending(
                sa.select(*ended).where(of_user, which), delete, delete.returning(*ended)
            )

        self.end_keys = ending(c.id_hash.in_(sa.bindparam("keys", expanding=True)))
        self.end_range = ending(
            sa.and_(
                after,
                c.id_hash <= sa.bindparam("upto", type_=c.id_hash.type),
                c.id_hash.not_in(sa.bindparam("keep", expanding=True)),
            )
        )

    def _upsert(self, table: sa.Table, row: dict[str, Any]) -> sa.Executable:
        """Insert ``row``, or replace the record under its key."""
        if self.dialect == "mysql":
            mysql_upsert = mysql.insert(table).values(row)
            inserted = mysql_upsert.inserted
            return mysql_upsert.on_duplicate_key_update(
                data=inserted.data,
                meta=inserted.meta,
                expires_at=inserted.expires_at,
                user_id=inserted.user_id,
            )
        insert = (
            postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)
        ).values(row)
        return insert.on_conflict_do_update(
            index_elements=[table.c.id_hash],
            set_={
                "data": insert.excluded.data,
                "meta": insert.excluded.meta,
                "expires_at": insert.excluded.expires_at,
                "user_id": insert.excluded.user_id,
            },
        )

    def _locks(
        self, locks: sa.Table, now: sa.BindParameter[float], until: sa.BindParameter[float]
    ) -> None:
        # A row per held lock. Taking one inserts the row unless it exists (whoever holds
        # it) or the token was given up on (its tombstone row exists).
        lc = locks.c
        lock_key = sa.bindparam("lk", type_=lc.lock_key.type)
        token = sa.bindparam("tok", type_=lc.token.type)
        tombstoned = (
            sa.exists()
            .where(
                lc.lock_key == sa.bindparam("gone", type_=lc.lock_key.type), lc.expires_at > now
            )
            .correlate(None)
        )
        candidate = sa.select(lock_key, token, until).where(~tombstoned)
        self.take = self._insert_unless_present(locks, candidate)
        self.clear_stale = sa.delete(locks).where(lc.lock_key == lock_key, lc.expires_at <= now)
        self.release = sa.delete(locks).where(lc.lock_key == lock_key, lc.token == token)
        self.tombstone = self._insert_unless_present(
            locks, sa.select(lock_key, token, until).where(sa.true())
        )

    def _patched(self, column: sa.Column[Any], name: str) -> sa.ColumnElement[Any]:
        """``column`` with the JSON merge patch bound as ``name`` applied, on the server."""
        patch = sa.bindparam(name, type_=column.type)
        if self.dialect == "postgresql":
            # jsonb has no merge patch; stored values are never null, so stripping the
            # nulls after || removes exactly the members the patch set to null.
            return sa.func.jsonb_strip_nulls(column.op("||")(patch), type_=column.type)
        if self.dialect == "mysql":
            return sa.func.JSON_MERGE_PATCH(column, patch, type_=column.type)
        return sa.func.json_patch(column, patch, type_=column.type)

    def _insert_unless_present(self, locks: sa.Table, rows: sa.Select[Any]) -> sa.Executable:
        names = ["lock_key", "token", "expires_at"]
        if self.dialect == "mysql":
            return sa.insert(locks).prefix_with("IGNORE").from_select(names, rows)
        insert = postgresql.insert(locks) if self.dialect == "postgresql" else sqlite.insert(locks)
        return insert.from_select(names, rows).on_conflict_do_nothing(
            index_elements=[locks.c.lock_key]
        )

    def purge(self, table: sa.Table, batch_size: int) -> sa.Executable:
        """Delete at most ``batch_size`` expired rows of ``table``, oldest first."""
        now: sa.BindParameter[float] = sa.bindparam("now", type_=sa.Double())
        expired = table.c.expires_at <= now
        if self.dialect == "mysql":
            # DELETE ... LIMIT: MySQL refuses LIMIT in a subquery of IN, and SQLAlchemy
            # before 2.0.37 has no ``mysql_limit`` for a DELETE, so the statement is
            # written out, its table name quoted by the dialect.
            name = mysql.dialect().identifier_preparer.format_table(table)
            limit = int(batch_size)
            statement = f"DELETE FROM {name} WHERE expires_at <= :now LIMIT {limit}"  # noqa: S608
            return sa.text(statement).bindparams(now)
        key = table.primary_key.columns.values()[0]
        batch = (
            sa.select(key)
            .where(expired)
            .order_by(table.c.expires_at)
            .limit(batch_size)
            .correlate(None)  # the same table as the DELETE's: a subquery of its own
        )
        if self.dialect == "postgresql":
            batch = batch.with_for_update(skip_locked=True)
        return sa.delete(table).where(key.in_(batch.scalar_subquery()))


def decode_row(data: object, meta: object) -> dict[str, bytes]:
    """A row's ``data`` and ``meta`` columns, read as JSON text, as a record's fields.

    Raises:
        TypeError, ValueError: anything but two JSON objects of text.
    """
    if not isinstance(data, str) or not isinstance(meta, str):
        raise TypeError("the columns must be read as text")
    try:
        return join_fields(json.loads(data), json.loads(meta))
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def _tombstone(key: str, token: str) -> str:
    return f"{key}:gone:{token}"


def _first(result: sa.CursorResult[Any]) -> Any:
    return result.first()


def _facts(meta: object) -> dict[str, bytes]:
    """What an ended row's library fields said of it; nothing, if they are damaged (the
    row is ended all the same)."""
    try:
        return facts_fields(decode_row("{}", meta))
    except (TypeError, ValueError):
        return {}


def _count(result: sa.CursorResult[Any]) -> int:
    return int(result.rowcount)


def _all(result: sa.CursorResult[Any]) -> list[Any]:
    return list(result.all())


def _owner(fields: Mapping[str, bytes]) -> str | None:
    """The user a record is bound to, as the ``user_id`` column holds it."""
    owner = owner_of(fields)
    return None if owner is None else owner[:MAX_USER_LENGTH]


def _table_missing(exc: sa_exc.DBAPIError) -> bool:
    """Whether the statement named a table the database does not have: SQLite's "no such
    table", PostgreSQL's SQLSTATE 42P01, MySQL's and MariaDB's error 1146."""
    original = exc.orig
    code = original.args[0] if original is not None and original.args else None
    return (
        code == 1146
        or getattr(original, "sqlstate", None) == "42P01"
        or str(original).startswith("no such table")
    )


def _already_exists(exc: sa_exc.DBAPIError) -> bool:
    """Whether a CREATE lost a race with another one: SQLite's "already exists" (or its
    lock, held by another CREATE past the busy timeout),
    PostgreSQL's SQLSTATE 42P07 (or 23505 on its catalog, when both created at once),
    MySQL's errors 1050 (table) and 1061 (index)."""
    original = exc.orig
    code = original.args[0] if original is not None and original.args else None
    return (
        code in (1050, 1061)
        or getattr(original, "sqlstate", None) in ("42P07", "23505")
        or "already exists" in str(original)
        or "database is locked" in str(original)  # SQLite: another CREATE held it too long
    )


def _refused_as_wrong(exc: sa_exc.DBAPIError) -> bool:
    """Whether the database refused the statement's data (SQLSTATE classes 22, data, and 23,
    integrity), rather than failed to run it."""
    if isinstance(exc, (sa_exc.IntegrityError, sa_exc.DataError)):
        return True
    state = getattr(exc.orig, "sqlstate", None)  # asyncpg's errors carry theirs
    return isinstance(state, str) and state[:2] in ("22", "23")


def _engine_settings(
    parsed: sa.URL, timeout: float, transaction_pooling: bool
) -> tuple[sa.URL, dict[str, Any]]:
    """The URL and the engine options `SQLBackend.from_url` creates its engine with.

    Raises:
        ConfigurationError: an in-memory SQLite URL.
    """
    name = parsed.get_backend_name()
    if "+" not in parsed.drivername and name in ASYNC_DRIVERS:
        # "postgresql://..." as a DATABASE_URL is usually written: its asyncio driver.
        parsed = parsed.set(drivername=f"{name}+{ASYNC_DRIVERS[name]}")
    options: dict[str, Any] = {"hide_parameters": True, "isolation_level": "AUTOCOMMIT"}
    if name == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in str(parsed.query):
            raise ConfigurationError(
                "SQLBackend needs a SQLite file (sqlite+aiosqlite:///path/sessions.db); "
                "for sessions in memory use MemoryBackend."
            )
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # The driver's own wait for a locked database stays inside the call's timeout.
        options["connect_args"] = {"timeout": timeout / 2}
    elif name in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    if transaction_pooling and name == "postgresql":
        parsed = parsed.update_query_dict({"prepared_statement_cache_size": "0"})
        del options["isolation_level"]  # each call begins and commits its transaction
        options["connect_args"] = {
            "statement_cache_size": 0,
            "prepared_statement_name_func": _statement_name,
        }
    return parsed, options


def _driver_errors(engine: AsyncEngine) -> tuple[type[Exception], ...]:
    """What the driver raises where SQLAlchemy does not wrap it: its DB-API errors, and
    the driver's own (asyncpg's, raised while SQLAlchemy sets up a new connection, as a
    pooler that lost a prepared statement makes it)."""
    errors: list[type[Exception]] = [engine.dialect.loaded_dbapi.Error]
    if engine.dialect.driver == "asyncpg":
        asyncpg = importlib.import_module("asyncpg")
        errors += (asyncpg.PostgresError, asyncpg.InterfaceError)
    return tuple(errors)


def _statement_name() -> str:
    """A prepared statement's name no other connection of a pooled server has used."""
    return f"__fsd_{uuid.uuid4().hex}__"


async def _retrying(work: Callable[[], Awaitable[R]]) -> R:
    """``work()``, again if the database chose it as a deadlock's victim (InnoDB does, when
    requests race for one lock row): it did nothing then. Bounded by the caller's timeout."""
    while True:
        try:
            return await work()
        except sa_exc.DBAPIError as exc:
            if not _deadlocked(exc):
                raise
        await anyio.lowlevel.checkpoint()


def _deadlocked(exc: sa_exc.DBAPIError) -> bool:
    """Whether the statement was rolled back as a deadlock's victim (MySQL 1213, PostgreSQL
    SQLSTATE 40P01), or for a lock it waited too long for (MySQL 1205)."""
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    return code in (1205, 1213) or getattr(exc.orig, "sqlstate", None) == "40P01"


def _brief(exc: BaseException) -> str:
    """The database's complaint, without the statement or its parameters (a session's data
    must never reach a log)."""
    original = getattr(exc, "orig", None) or exc
    first_line = (str(original).strip().splitlines() or [""])[0][:200]
    return f"{type(original).__name__}: {first_line}" if first_line else type(original).__name__


def _sqlite_pragmas(connection: Any, _record: object) -> None:
    """WAL, so readers never wait for a writer; NORMAL sync, which in WAL mode loses no
    committed write when the process dies (only, at worst, the last ones on power loss)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
