"""What is particular to `SQLBackend`: ownership, the table, statements, cleanup, faults."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fastapi_session_deps import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    CookieFrontend,
    MissingDependencyError,
    SessionManager,
    SQLBackend,
    StoreNotSetUp,
)
from fastapi_session_deps.backends._json_record import split_fields
from fastapi_session_deps.backends.sql import SERVER_PATCH_LIMIT, decode_row, session_tables
from fastapi_session_deps.signing import store_key

from ..helpers import SECRET, Clock, call, cookie_header
from ..sql_servers import MariaDBServer, PostgresServer
from ..support import SQL_STORES, AppSession, build_app, open_sql_store, sql_records, sql_url
from ..test_manager import session_id_of

pytestmark = pytest.mark.anyio


@pytest.fixture(params=list(SQL_STORES))
def url(request: pytest.FixtureRequest) -> str:
    return sql_url(request.param, request)


@pytest.fixture
async def sql(url: str, clock: Clock) -> AsyncIterator[SQLBackend]:
    async with open_sql_store(url, clock) as backend:
        yield backend


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs, first word each."""
    sent: list[str] = []

    def seen(*args: Any) -> None:
        sent.append(args[2].split()[0].upper())

    sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", seen)


async def raw(backend: SQLBackend, query: str, **values: Any) -> Any:
    """Run ``query`` (with ``{table}`` and ``{locks}`` filled in) on the backend's database."""
    text = query.format(table=backend.table.name, locks=backend.lock_table.name)
    async with backend.engine.begin() as connection:
        result = await connection.execute(sa.text(text), values)
        return result.all() if result.returns_rows else result.rowcount


# -- ownership and set-up --------------------------------------------------------------------


async def test_from_url_owns_and_disposes_its_engine(url: str, clock: Clock) -> None:
    async with open_sql_store(url, clock) as backend:
        closed: list[object] = []
        sa.event.listen(backend.engine.sync_engine.pool, "close", lambda *a: closed.append(a))
        await backend.set("k", {"a": b"1"}, ttl=60)
        await backend.aclose()
        assert closed  # the pooled connection was closed
        await backend.aclose()


async def test_an_engine_handed_in_is_never_disposed(url: str, clock: Clock) -> None:
    engine = create_async_engine(url)  # not in autocommit: the backend asks for it itself
    async with open_sql_store(url, clock) as owner:
        backend = SQLBackend(engine, table_name=owner.table.name, clock=clock)
        await backend.set("k", {"a": b"1"}, ttl=60)
        assert await backend.update("k", {"b": b"2"}, ttl=60)
        await backend.aclose()
        assert await backend.get("k") == {"a": b"1", "b": b"2"}  # still usable
        async with engine.connect() as connection:
            assert (await connection.execute(sa.text("SELECT 1"))).scalar() == 1
    await engine.dispose()


def test_what_is_not_a_supported_engine_is_refused(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    with pytest.raises(ConfigurationError, match="asyncio engine"):
        SQLBackend(create_engine(f"sqlite:///{tmp_path}/s.db"))  # type: ignore[arg-type]
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    engine.dialect.name = "oracle"  # what any other database's dialect is called
    with pytest.raises(ConfigurationError, match="not 'oracle'"):
        SQLBackend(engine)
    with pytest.raises(ConfigurationError, match="timeout"):
        SQLBackend.from_url(f"sqlite+aiosqlite:///{tmp_path}/t.db", timeout=0)
    for memory in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
        with pytest.raises(ConfigurationError, match="MemoryBackend"):
            SQLBackend.from_url(memory)


async def test_sqlite_gets_its_directory_and_wal(tmp_path: Path) -> None:
    backend = SQLBackend.from_url(f"sqlite+aiosqlite:///{tmp_path}/new/dir/sessions.db")
    await backend.create_table()
    await backend.set("k", {"a": b"1"}, ttl=60)
    with sqlite3.connect(tmp_path / "new" / "dir" / "sessions.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert repr(backend) == "SQLBackend(sqlite, table='sessions', timeout=1.0)"
    await backend.aclose()


def test_mysql_connections_speak_utf8mb4_unless_told_otherwise() -> None:
    pytest.importorskip("aiomysql")
    backend = SQLBackend.from_url("mysql+aiomysql://u:p@127.0.0.1:1/db")
    assert backend.engine.url.query["charset"] == "utf8mb4"
    told = SQLBackend.from_url("mysql+aiomysql://u:p@127.0.0.1:1/db?charset=utf8mb3")
    assert told.engine.url.query["charset"] == "utf8mb3"


async def test_the_tables_are_created_only_when_asked(url: str, clock: Clock) -> None:
    backend = SQLBackend.from_url(url, table_name="never_created_here", clock=clock)
    with pytest.raises(StoreNotSetUp, match="no session table 'never_created_here'") as caught:
        await backend.get("k")
    assert caught.value.backend == "SQLBackend"
    await backend.create_table()
    await backend.create_table()  # again: nothing to do
    assert await backend.get("k") is None
    await backend.drop_table()
    await backend.aclose()


async def test_the_tables_can_live_on_the_apps_own_metadata(url: str, clock: Clock) -> None:
    metadata = sa.MetaData()
    async with open_sql_store(url, clock, metadata=metadata) as backend:
        assert set(metadata.tables) == {backend.table.name, backend.lock_table.name}


# -- the record's layout and the statements ---------------------------------------------------


async def test_a_record_is_a_row_of_json_keyed_by_the_hash(sql: SQLBackend, clock: Clock) -> None:
    sessions = SessionManager(
        AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=sql, clock=clock
    )
    login = await call(build_app(sessions), "/login", "POST")
    key = store_key(session_id_of(login.cookie()))
    [(id_hash, data, meta, expires_at)] = await raw(
        sql, "SELECT id_hash, data, meta, expires_at FROM {table}"
    )
    assert id_hash == key  # the hash of the id: never the id itself
    data = data if isinstance(data, dict) else json.loads(data)
    assert data == {"user_id": "1", "counter": "0", "cart": "[]", "prefs": "{}"}
    meta = meta if isinstance(meta, dict) else json.loads(meta)
    assert float(meta["created"]) == clock.now
    assert expires_at == clock.now + 1800


async def test_a_read_is_one_select_and_renews_after_a_tenth_of_the_ttl(
    sql: SQLBackend, clock: Clock
) -> None:
    await sql.set("k", {"a": b"1"}, ttl=100)
    with statements(sql.engine) as sent:
        assert await sql.get("k", ttl=100) == {"a": b"1"}
    assert sent == ["SELECT"]  # renewed moments ago: nothing to write
    clock.advance(11)
    with statements(sql.engine) as sent:
        await sql.get("k", ttl=100)
    assert sent == ["SELECT", "UPDATE"]
    [(expires_at,)] = await raw(sql, "SELECT expires_at FROM {table}")
    assert expires_at == clock.now + 100


async def test_each_write_is_one_statement_a_merge_on_a_server_its_own_transaction(
    sql: SQLBackend,
) -> None:
    with statements(sql.engine) as sent:
        await sql.set("k", {"a": b"1"}, ttl=60)
        await sql.update("k", {"a": b"2"}, ["b"], ttl=60)
        await sql.delete("k")
    # On a server, a merge given up on could otherwise still run late, after newer ones.
    merge = ["UPDATE"] if sql._dialect == "sqlite" else ["BEGIN", "UPDATE", "COMMIT"]
    assert [word if word != "START" else "BEGIN" for word in sent] == [
        "INSERT",
        *merge,
        "DELETE",
    ]


async def test_concurrent_writers_of_one_new_record_never_collide(sql: SQLBackend) -> None:
    async def write(index: int) -> None:
        await sql.set("k", {"writer": str(index).encode()}, ttl=60)

    async with anyio.create_task_group() as group:
        for index in range(30):
            group.start_soon(write, index)
    record = await sql.get("k")
    assert record is not None
    assert int(record["writer"]) in range(30)


async def test_a_large_merge_is_atomic_and_never_resurrects(sql: SQLBackend, clock: Clock) -> None:
    many = {f"f{index}": b"1" for index in range(SERVER_PATCH_LIMIT + 1)}
    await sql.set("k", {"keep": b"0", "drop": b"0", "\x00created": b"1"}, ttl=60)
    assert await sql.update("k", many, ["drop", "\x00created"], ttl=60)
    assert await sql.get("k") == {"keep": b"0", **many}
    await sql.set("old", {"a": b"1"}, ttl=5)
    clock.advance(6)
    assert not await sql.update("old", many, ttl=60)  # expired: not brought back
    assert not await sql.update("never", many, ttl=60)
    assert await sql.get("old") is None


async def test_concurrent_large_merges_of_different_fields_all_persist(sql: SQLBackend) -> None:
    await sql.set("k", {"base": b"0"}, ttl=60)

    async def write(index: int) -> None:
        fields = {f"w{index}-{n}": b"1" for n in range(SERVER_PATCH_LIMIT + 1)}
        assert await sql.update("k", fields, ttl=60)

    async with anyio.create_task_group() as group:
        for index in range(8):
            group.start_soon(write, index)
    record = await sql.get("k")
    assert record is not None
    assert len(record) == 1 + 8 * (SERVER_PATCH_LIMIT + 1)


# -- damaged rows ---------------------------------------------------------------------------------

DAMAGE = {
    "an array": "[1, 2]",
    "numbers": '{"user_id": 1, "counter": 2}',
    "an object in a field": '{"user_id": {"a": "1"}}',
    "a number": "12",
    "deeply nested": "[" * 5000 + "]" * 5000,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
async def test_a_damaged_row_is_no_session_never_an_error(
    sql: SQLBackend, clock: Clock, damage: str
) -> None:
    sessions = SessionManager(
        AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=sql, clock=clock
    )
    app = build_app(sessions)
    login = await call(app, "/login", "POST")
    headers = cookie_header(login.cookie() or "")
    try:
        await raw(sql, "UPDATE {table} SET data = :value", value=DAMAGE[damage])
    except sa.exc.DBAPIError:
        pytest.skip(f"this database refuses {damage} in a JSON column")
    assert (await call(app, "/me", headers=headers)).status == 401  # no session, no 503
    assert (await call(app, "/incr", "POST", headers=headers)).status == 200
    assert (await call(app, "/login", "POST", headers=headers)).status == 200


async def test_sqlite_refuses_what_is_not_json(tmp_path: Path, clock: Clock) -> None:
    async with open_sql_store(f"sqlite+aiosqlite:///{tmp_path}/s.db", clock) as backend:
        await backend.set("k", {"a": b"1"}, ttl=60)
        with pytest.raises(sa.exc.IntegrityError):
            await raw(backend, "UPDATE {table} SET data = '{{not json'")


async def test_a_damaged_row_is_not_patched_by_a_large_merge(
    sql: SQLBackend, clock: Clock
) -> None:
    await sql.set("k", {"a": b"1"}, ttl=60)
    await raw(sql, "UPDATE {table} SET data = :value", value="[1, 2]")
    many = {f"f{index}": b"1" for index in range(SERVER_PATCH_LIMIT + 1)}
    assert sql._dialect == "postgresql" or not await sql.update("k", many, ttl=60)


@pytest.mark.parametrize("server_url", ["postgres_url", "mariadb_url"])
async def test_a_key_the_table_cannot_hold_is_a_server_error(
    server_url: str, clock: Clock, request: pytest.FixtureRequest
) -> None:
    # Keys are 43 characters; a longer one is a bug in the caller, not a passing fault.
    async with open_sql_store(request.getfixturevalue(server_url), clock) as backend:
        with pytest.raises(BackendError, match="refused set"):
            await backend.set("k" * 100, {"a": b"1"}, ttl=60)


def test_a_row_nested_too_deeply_for_the_parser_is_no_record() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_row("[" * 100_000 + "]" * 100_000, "{}")
    with pytest.raises(TypeError, match="read as text"):
        decode_row(None, "{}")


async def test_a_table_dropped_under_a_merge_is_unavailable_and_rolled_back(
    sql: SQLBackend,
) -> None:
    await sql.set("k", {"a": b"1"}, ttl=60)
    await raw(sql, "DROP TABLE {table}")
    many = {f"f{index}": b"1" for index in range(SERVER_PATCH_LIMIT + 1)}
    for changed in ({"a": b"2"}, many):  # patched on the server, and here
        with pytest.raises(StoreNotSetUp, match="no session table"):
            await sql.update("k", changed, ttl=60)
    await sql.create_table()
    assert await sql.get("k") is None


async def test_a_value_the_database_cannot_hold_is_a_server_error(
    postgres_url: str, clock: Clock
) -> None:
    # No serializer writes a NUL character, and jsonb cannot hold one: refused as wrong
    # (a retry would repeat it), not as unavailable.
    async with open_sql_store(postgres_url, clock) as backend:
        with pytest.raises(BackendError, match="refused set"):
            await backend.set("k", {"a": b"nul\x00here"}, ttl=60)


# -- cleanup ----------------------------------------------------------------------------------


async def test_delete_expired_removes_expired_rows_in_batches(
    sql: SQLBackend, clock: Clock
) -> None:
    for index in range(25):
        await sql.set(f"old{index}", {"a": b"1"}, ttl=10 + index / 100)
    for index in range(5):
        await sql.set(f"live{index}", {"a": b"1"}, ttl=1000)
    assert await sql.acquire_lock("old0", "holder", ttl=10, wait=0)
    await sql.release_lock("never-held", "gone")  # a tombstone, for 300 s
    clock.advance(400)
    with statements(sql.engine) as sent:
        assert await sql.delete_expired(batch_size=10) == 25
    assert sent == ["DELETE"] * 4  # 10 + 10 + 5 rows; then the lock table's one batch
    assert sorted(await sql_records(sql)) == [f"live{index}" for index in range(5)]
    assert await raw(sql, "SELECT lock_key FROM {locks}") == []
    assert await sql.delete_expired() == 0


async def test_a_table_name_with_quotes_in_it_is_quoted_in_every_statement(
    url: str, clock: Clock
) -> None:
    # MySQL's batched cleanup is written out as text: its quoting must hold there too.
    name = f'odd`name "{time.monotonic_ns() % 10**6}'
    backend = SQLBackend.from_url(url, table_name=name, clock=clock)
    try:
        await backend.create_table()
        await backend.set("old", {"a": b"1"}, ttl=10)
        await backend.set("live", {"a": b"2"}, ttl=1000)
        clock.advance(100)
        assert await backend.delete_expired(batch_size=1) == 1
        assert await backend.get("live") == {"a": b"2"}
        assert await backend.get("old") is None
    finally:
        await backend.drop_table()
        await backend.aclose()


async def test_a_missing_table_is_named_with_its_fix_and_logged_once(
    url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # Forgetting create_table() (or the migration): every store answers "no such table"
    # in its own words; each is recognised, and the message names the fix.
    name = f"never_created_{time.monotonic_ns() % 10**9}"
    backend = SQLBackend.from_url(url, table_name=name, clock=clock)
    try:
        with caplog.at_level("ERROR", logger="fastapi_session_deps"):
            for _ in range(3):
                with pytest.raises(StoreNotSetUp) as missing:
                    await backend.get("k")
            with pytest.raises(StoreNotSetUp):
                await backend.set("k", {"a": b"1"}, ttl=10)
        message = str(missing.value)
        assert f"no session table {name!r}" in message
        assert "fastapi-session-deps create-tables --store URL" in message
        assert "await backend.create_table()" in message
        assert isinstance(missing.value, BackendUnavailable)  # a 503 with Retry-After
        told = [r for r in caplog.records if getattr(r, "event", "") == "store_table_missing"]
        assert len(told) == 1
        assert "create-tables" in told[0].getMessage()
        await backend.create_table()
        await backend.set("k", {"a": b"1"}, ttl=10)
        assert await backend.get("k") == {"a": b"1"}
    finally:
        await backend.drop_table()
        await backend.aclose()


async def test_a_create_refused_for_another_reason_is_not_taken_for_a_lost_race(
    tmp_path: Path, clock: Clock
) -> None:
    # SQLite: "there is already an index named ...", not "already exists": no retry.
    url = f"sqlite:///{tmp_path}/s.db"
    backend = SQLBackend.from_url(url, table_name="taken", clock=clock)
    await raw(backend, "CREATE TABLE other (a INTEGER)")
    await raw(backend, "CREATE INDEX taken ON other (a)")
    with pytest.raises(BackendUnavailable, match="already an index named taken"):
        await backend.create_table()
    await backend.aclose()


def test_a_missing_driver_names_its_extra_and_another_missing_module_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(MissingDependencyError, match=r"fastapi-session-deps\[postgres\]"):
        SQLBackend.from_url("postgresql://app@127.0.0.1:9/app")
    with pytest.raises(ModuleNotFoundError, match="psycopg"):  # not a driver of ours
        SQLBackend.from_url("postgresql+psycopg://app@127.0.0.1:9/app")


async def test_workers_creating_the_tables_at_once_all_succeed(url: str, clock: Clock) -> None:
    # Each worker's lifespan calls create_table() as it starts: they race.
    name = f"raced_{time.monotonic_ns() % 10**9}"
    workers = [SQLBackend.from_url(url, table_name=name, clock=clock) for _ in range(6)]
    try:
        for round_ in range(2):  # the first creates; the second finds everything there
            results = await asyncio.gather(
                *(worker.create_table() for worker in workers), return_exceptions=True
            )
            assert results == [None] * len(workers), (round_, results)
        await workers[0].set("k", {"a": b"1"}, ttl=10)
        assert await workers[-1].get("k") == {"a": b"1"}
    finally:
        await workers[0].drop_table()
        for worker in workers:
            await worker.aclose()


async def test_delete_expired_wants_a_positive_batch(sql: SQLBackend) -> None:
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigurationError, match="batch_size"):
            await sql.delete_expired(batch_size=bad)  # type: ignore[arg-type]


# -- the migration snippet of the docs ------------------------------------------------------------


async def test_the_documented_migration_creates_exactly_the_tables(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from ..test_docs import migration_snippet

    table = f"migrated_{time.monotonic_ns() % 10**9}"
    expected = sa.MetaData()
    session_tables(expected, table)

    def migrate(connection: sa.Connection) -> list[Any]:
        namespace: dict[str, Any] = {}
        code = migration_snippet().replace('TABLE = "sessions"', f'TABLE = "{table}"')
        with Operations.context(MigrationContext.configure(connection)):
            exec(code, namespace)  # noqa: S102 - our own docs
            namespace["upgrade"]()
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": _only(table)}
            )
            differences = list(compare_metadata(context, expected))
            namespace["downgrade"]()
        return differences

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            assert await connection.run_sync(migrate) == []
    finally:
        await engine.dispose()


def _only(table: str) -> Callable[..., bool]:
    def include(name: str | None, kind: str, parent: dict[str, str | None]) -> bool:
        return kind != "table" or bool(name and name.startswith(table))

    return include


# -- faults -----------------------------------------------------------------------------------


@pytest.fixture(params=["postgres", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer | MariaDBServer]:
    """A server of this test's own, to stop and pause."""
    started = (PostgresServer if request.param == "postgres" else MariaDBServer)().start()
    try:
        yield started
    finally:
        started.remove()


async def test_a_stopped_database_is_unavailable_then_recovers(
    server: PostgresServer | MariaDBServer, clock: Clock
) -> None:
    async with open_sql_store(server.url, clock, timeout=0.5) as backend:
        await backend.set("k", {"a": b"1"}, ttl=60)
        server.stop()
        for call_it in (
            lambda: backend.get("k"),
            lambda: backend.update("k", {"a": b"2"}, ttl=60),
        ):
            begin = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await call_it()
            assert time.monotonic() - begin < 1.0
        server.start()
        for _ in range(3):  # the pool's connections to the old server are dropped first
            try:
                assert await backend.get("k") == {"a": b"1"}
                break
            except BackendUnavailable:
                continue
        else:
            pytest.fail("the backend did not recover")


async def test_a_paused_database_is_unavailable_within_the_timeout(
    server: PostgresServer | MariaDBServer, clock: Clock
) -> None:
    async with open_sql_store(server.url, clock, timeout=0.5) as backend:
        await backend.set("k", {"a": b"1"}, ttl=60)
        server.pause()
        try:
            for call_it in (
                lambda: backend.get("k"),
                lambda: backend.update("k", {"a": b"2"}, ttl=60),
                lambda: backend.acquire_lock("k", "t", ttl=10, wait=0),
            ):
                begin = time.monotonic()
                with pytest.raises(BackendUnavailable, match=r"within 0\.5 s"):
                    await call_it()
                assert time.monotonic() - begin < 1.0
            # A caller that gives up first (its client left) leaves the call behind too.
            with anyio.move_on_after(0.1):
                await backend.get("k")
            left_behind = set(backend._abandoned)
            closing = asyncio.ensure_future(backend.aclose())  # waits for what is left
            await anyio.lowlevel.checkpoint()
        finally:
            server.resume()
        fresh = SQLBackend.from_url(server.url, table_name=backend.table.name, clock=clock)
        assert await fresh.update("k", {"a": b"3"}, ttl=60)  # acknowledged
        # The merge given up on reaches the resumed server too: it must not undo this one.
        await closing
        assert all(call.done() for call in left_behind)
        assert not backend._abandoned
        assert await fresh.get("k") == {"a": b"3"}
        await fresh.aclose()


async def test_a_locked_sqlite_database_is_unavailable_within_the_timeout(
    tmp_path: Path, clock: Clock
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/s.db"
    async with open_sql_store(url, clock, timeout=0.4) as backend:
        await backend.set("k", {"a": b"1"}, ttl=60)
        blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process writing for a long time
        try:
            assert await backend.get("k") == {"a": b"1"}  # WAL: readers do not wait
            begin = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await backend.update("k", {"a": b"2"}, ttl=60)
            assert time.monotonic() - begin < 0.8
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await backend.update("k", {"a": b"2"}, ttl=60)


# -- fuzzing what is read back --------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(data=st.text() | JSON_VALUES.map(json.dumps), meta=st.text() | JSON_VALUES.map(json.dumps))
@settings(max_examples=300, deadline=None)
def test_any_column_text_is_a_record_or_refused_as_no_record(data: str, meta: str) -> None:
    try:
        fields = decode_row(data, meta)
    except (TypeError, ValueError):
        return
    assert all(
        isinstance(name, str) and isinstance(value, bytes) for name, value in fields.items()
    )


@given(
    fields=st.dictionaries(
        st.text().filter(lambda name: "\x00" not in name) | st.just("\x00created"),
        st.text().map(str.encode),
        max_size=8,
    )
)
@settings(max_examples=300, deadline=None)
def test_any_record_survives_its_columns(fields: dict[str, bytes]) -> None:
    data, meta = split_fields(fields)
    assert decode_row(json.dumps(data), json.dumps(meta)) == fields


@given(value=JSON_VALUES.map(json.dumps))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_in_a_sqlite_row_is_no_session_or_a_session(value: str) -> None:
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as directory:
            clock = Clock()
            async with open_sql_store(f"sqlite+aiosqlite:///{directory}/s.db", clock) as sql:
                sessions = SessionManager(
                    AppSession,
                    frontend=CookieFrontend(SECRET, secure=False),
                    backend=sql,
                    clock=clock,
                )
                app = build_app(sessions)
                login = await call(app, "/login", "POST")
                headers = cookie_header(login.cookie() or "")
                await raw(sql, "UPDATE {table} SET data = :value", value=value)
                assert (await call(app, "/me", headers=headers)).status in (200, 401)
                assert (await call(app, "/incr", "POST", headers=headers)).status == 200

    anyio.run(scenario)


async def test_a_deadlock_victim_is_run_again(mariadb_url: str, clock: Clock) -> None:
    # InnoDB breaks a deadlock by rolling back the lighter transaction: here the cleanup's
    # one-statement DELETE, against a transaction that changed many rows. The backend
    # runs the statement again, and it succeeds once the other transaction commits.
    async with open_sql_store(mariadb_url, clock, timeout=10) as backend:
        await backend.set("r1", {"a": b"1"}, ttl=1)
        await backend.set("r2", {"a": b"1"}, ttl=2)
        for index in range(100):
            await backend.set(f"heavy{index}", {"a": b"1"}, ttl=1000)
        clock.advance(10)

        def text(query: str) -> sa.TextClause:
            return sa.text(query.format(table=backend.table.name))

        waiting = sa.text(
            "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
        )
        engine = create_async_engine(mariadb_url)
        try:
            async with engine.connect() as other, engine.connect() as watcher:
                await other.begin()
                heavy = "UPDATE {table} SET expires_at = expires_at + 1 WHERE id_hash LIKE 'h%'"
                await other.execute(text(heavy))
                await other.execute(text("SELECT 1 FROM {table} WHERE id_hash = 'r2' FOR UPDATE"))
                cleanup = asyncio.ensure_future(backend.delete_expired())
                with anyio.fail_after(10):
                    # Until the cleanup holds r1 and waits for r2. InnoDB refreshes this
                    # table at most every 100 ms, when it is read.
                    while not (await watcher.execute(waiting)).scalar():  # noqa: ASYNC110
                        await anyio.sleep(0.15)
                await other.execute(text("DELETE FROM {table} WHERE id_hash = 'r1'"))
                await other.commit()
            assert await cleanup == 1  # r2: r1 was deleted by the other transaction
        finally:
            await engine.dispose()
        assert sorted(await sql_records(backend)) == sorted(f"heavy{i}" for i in range(100))


def test_a_url_without_a_driver_gets_the_asyncio_one(tmp_path: Path) -> None:
    for url, driver in [
        (f"sqlite:///{tmp_path}/s.db", "sqlite+aiosqlite"),
        ("postgresql://u@127.0.0.1:1/db", "postgresql+asyncpg"),
        ("mysql://u:p@127.0.0.1:1/db", "mysql+aiomysql"),
        ("mariadb://u:p@127.0.0.1:1/db", "mariadb+aiomysql"),
    ]:
        assert SQLBackend.from_url(url).engine.url.drivername == driver


@pytest.mark.parametrize("server_url", ["postgres_url", "mariadb_url"])
async def test_a_merge_stuck_behind_a_long_transaction_gives_up_and_rolls_back(
    server_url: str, clock: Clock, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(server_url)
    async with open_sql_store(url, clock, timeout=0.5) as backend:
        await backend.set("k", {"a": b"1"}, ttl=60)
        engine = create_async_engine(url)
        try:
            async with engine.connect() as other:
                await other.begin()  # someone's long transaction holds the row
                query = "SELECT 1 FROM {table} WHERE id_hash = 'k' FOR UPDATE"
                await other.execute(sa.text(query.format(table=backend.table.name)))
                begin = time.monotonic()
                with pytest.raises(BackendUnavailable, match=r"within 0\.5 s"):
                    await backend.update("k", {"a": b"2"}, ttl=60)
                assert time.monotonic() - begin < 1.0
                await other.rollback()
        finally:
            await engine.dispose()
        if backend._abandoned:
            await asyncio.wait(backend._abandoned, timeout=10)
        assert await backend.get("k") == {"a": b"1"}  # the merge was rolled back
        assert await backend.update("k", {"a": b"3"}, ttl=60)


async def test_without_delete_returning_a_user_s_sessions_end_in_two_statements(
    tmp_path: Path, clock: Clock
) -> None:
    # MySQL has no DELETE ... RETURNING: the live rows are read first, then deleted.
    async with open_sql_store(f"sqlite+aiosqlite:///{tmp_path}/s.db", clock) as store:
        store.engine.dialect.delete_returning = False
        for n in range(3):
            await store.set(f"k{n}", {"\x00user": b'"ada"', "\x00created": b"1"}, ttl=60)
        await store.set("old", {"\x00user": b'"ada"'}, ttl=1)
        clock.advance(2)
        assert [key for key, _ in await store.index_end("ada", ["k0", "old"])] == ["k0"]
        ended, after = await store.index_end_some("ada", keep=["k2"], limit=10)
        assert ([key for key, _ in ended], after) == (["k1"], None)
        assert ended[0][1] == {"\x00user": b'"ada"', "\x00created": b"1"}
        assert await store.index_keys("ada") == ["k2"]


async def test_damaged_rows_are_left_alone_by_a_reseal_and_ended_without_facts(
    tmp_path: Path, clock: Clock
) -> None:
    async with open_sql_store(f"sqlite+aiosqlite:///{tmp_path}/s.db", clock) as store:
        await store.set("k", {"a": b"1", "\x00user": b'"ada"'}, ttl=60)
        await store.replace_unchanged("k", {"a": (b"other", b"2")})  # nothing to swap
        assert await store.get("k") == {"a": b"1", "\x00user": b'"ada"'}
        async with store.engine.begin() as connection:  # a row that is no record
            await connection.execute(store.table.update().values(meta=["not", "an", "object"]))
        await store.replace_unchanged("k", {"a": (b"1", b"2")})  # left as it is
        assert await store.index_end("ada", ["k"]) == [("k", {})]  # ended all the same
