"""What is particular to `RedisBackend`: ownership, key layout, round trips, faults."""

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import Depends

from fastapi_session_deps import (
    BackendUnavailable,
    ConfigurationError,
    CookieFrontend,
    RedisBackend,
    SessionManager,
)
from fastapi_session_deps._record import CREATED_FIELD, LIFETIME_FIELD, OWNER_FIELD
from fastapi_session_deps.backends import redis as redis_backend
from fastapi_session_deps.backends.base import StoreStats

from ..helpers import SECRET, call, cookie_header
from ..redis_servers import RedisSentinel, RedisServer
from ..support import AppSession, build_app

pytestmark = pytest.mark.anyio


async def test_from_url_owns_and_closes_its_client(redis_url: str) -> None:
    backend = RedisBackend.from_url(redis_url, key_prefix="own:")
    await backend.set("k", {"a": b"1"}, ttl=5)
    assert await backend.get("k") == {"a": b"1"}
    await backend.delete("k")
    await backend.aclose()
    await backend.aclose()
    assert backend.client.connection_pool._in_use_connections == set()  # type: ignore[union-attr]
    assert repr(backend) == "RedisBackend(key_prefix='own:', timeout=1.0)"


async def test_a_client_handed_in_is_never_closed(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    backend = RedisBackend(client)
    await backend.aclose()
    assert await client.ping() is True  # still usable by its owner
    await client.aclose()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda url: aioredis.Redis.from_url(url, decode_responses=True), "decode_responses"),
        (lambda url: object(), "redis.asyncio.Redis or RedisCluster"),
    ],
)
async def test_unsuitable_clients_are_refused(
    redis_url: str, make: Callable[[str], Any], message: str
) -> None:
    client = make(redis_url)
    with pytest.raises(ConfigurationError, match=message):
        RedisBackend(client)
    if hasattr(client, "aclose"):
        await client.aclose()


async def test_a_non_positive_timeout_is_refused(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    with pytest.raises(ConfigurationError, match="timeout must be a positive"):
        RedisBackend(client, timeout=0)
    await client.aclose()


async def test_records_are_hashes_under_a_prefixed_hash_tagged_key(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    backend = RedisBackend(client, key_prefix="layout:")
    await backend.set("abc", {"a": b"1", "\x00created": b"2"}, ttl=30)
    assert await client.type("layout:{abc}") == b"hash"
    assert await client.hgetall("layout:{abc}") == {b"a": b"1", b"\x00created": b"2"}
    assert 29_000 < await client.pttl("layout:{abc}") <= 30_000
    await backend.get("abc", ttl=100)
    assert 99_000 < await client.pttl("layout:{abc}") <= 100_000
    await backend.delete("abc")
    await client.aclose()


async def test_stats_read_only_live_index_entries_and_the_owner_in_the_record(
    redis_url: str,
) -> None:
    prefix = f"stats-{uuid.uuid4().hex}:"
    client = aioredis.Redis.from_url(redis_url)
    backend = RedisBackend(client, key_prefix=prefix)
    await backend.index_add("ada", "a1", ttl=60)
    await backend.set("a1", {"\x00user": b'"ada"'}, ttl=60)
    await backend.index_add("ghost", "g1", ttl=60)  # its record says no owner: not counted
    await backend.set("g1", {"x": b"1"}, ttl=60)
    stale = backend.index_key("gone")  # every entry past its time
    await client.zadd(stale, {"old": 1})
    await client.expire(stale, 60)
    counted = await backend.stats()
    assert counted == StoreStats(live=2, users=1, top_users=[("ada", 1)])
    async for key in client.scan_iter(match=prefix + "*"):
        await client.delete(key)
    await client.aclose()


@pytest.mark.parametrize("where", ["server", "server, a record per script", "cluster"])
async def test_a_listing_reads_only_the_librarys_fields_in_one_round_trip(
    where: str, redis_url: str, redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if where.endswith("per script"):  # a page larger than one script reads
        monkeypatch.setattr(redis_backend, "LIST_CHUNK", 1)
    backend = (
        RedisBackend.from_url(redis_url, key_prefix="listed:")
        if where.startswith("server")
        else RedisBackend.from_cluster_url(redis_cluster_url, key_prefix="listed:")
    )
    owned = {OWNER_FIELD: b'"ada"', CREATED_FIELD: b"1.5", LIFETIME_FIELD: b"[9, null, true]"}
    for key in ("a", "b"):
        await backend.index_add("ada", key, ttl=30)
        await backend.set(key, {**owned, "cart": b'["tea"]' * 1000}, ttl=30)
    await backend.index_add("ada", "gone", ttl=30)  # its record was never written
    await backend.index_add("ada", "bare", ttl=30)
    await backend.set("bare", {"cart": b"[]"}, ttl=30)  # none of the library's fields
    await backend.client.set(backend.redis_key("odd"), b"not a hash", ex=30)
    await backend.index_add("ada", "odd", ttl=30)
    listed = await backend.index_page("ada", limit=10)
    assert sorted(key for key, _, _ in listed) == ["a", "b"]
    for _, fields, left in listed:
        assert fields == owned  # no session data: a listing needs none
        assert 0 < left <= 30
    for key in ("a", "b", "odd", "bare"):
        await backend.delete(key)
    await backend.index_remove("ada", ["a", "b", "gone", "odd", "bare"])
    await backend.aclose()


async def test_removing_every_field_removes_the_record(redis_url: str) -> None:
    backend = RedisBackend.from_url(redis_url, key_prefix="empty:")
    await backend.set("k", {"a": b"1"}, ttl=30)
    assert await backend.update("k", {}, ["a"], ttl=30)
    assert await backend.get("k") is None
    await backend.set("k", {}, ttl=30)  # an empty record is no record
    assert await backend.get("k") is None
    await backend.aclose()


async def test_a_sentinel_managed_client_works(private_redis: RedisServer, tmp_path: Path) -> None:
    from redis.asyncio.sentinel import Sentinel

    sentinel = RedisSentinel(tmp_path / "sentinel", private_redis).start()
    try:
        watcher = Sentinel([sentinel.address])
        client = watcher.master_for("mymaster")
        backend = RedisBackend(client, key_prefix="sentinel:")
        await backend.set("k", {"a": b"1"}, ttl=30)
        assert await backend.update("k", {"b": b"2"}, ttl=30)
        assert await backend.get("k", ttl=30) == {"a": b"1", "b": b"2"}
        await backend.delete("k")
        assert await backend.get("k") is None
        await client.aclose()
        for connection in watcher.sentinels:
            await connection.aclose()
    finally:
        sentinel.stop()


# -- round trips, counted with MONITOR on a server of our own -----------------------------


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-private")).start()
    try:
        yield server
    finally:
        server.stop()


async def test_scripts_are_loaded_again_after_the_server_forgets_them(
    private_redis: RedisServer,
) -> None:
    backend = RedisBackend.from_url(private_redis.url, key_prefix="flush:")
    await backend.set("k", {"a": b"1"}, ttl=30)
    assert await backend.update("k", {"b": b"2"}, [], ttl=30)
    client = aioredis.Redis.from_url(private_redis.url)
    await client.script_flush()  # what a restart without persistence does to scripts
    assert await client.script_exists(backend._merge.sha) == [False]
    assert await backend.update("k", {"c": b"3"}, ["a"], ttl=30)
    assert await backend.get("k", ttl=30) == {"b": b"2", "c": b"3"}
    assert await client.script_exists(backend._merge.sha) == [True]
    await client.aclose()
    await backend.aclose()


CountRoundTrips = Callable[[Callable[[], Awaitable[object]]], Awaitable[list[str]]]


@pytest.fixture
async def round_trips(private_redis: RedisServer) -> AsyncIterator[CountRoundTrips]:
    """Run an action and return the commands clients sent meanwhile (script internals aside)."""
    watcher = aioredis.Redis.from_url(private_redis.url)
    marker = aioredis.Redis.from_url(private_redis.url)
    await marker.ping()  # its connection handshake happens now, not during a count

    async def count(action: Callable[[], Awaitable[object]]) -> list[str]:
        async with watcher.monitor() as monitor:
            await action()
            await marker.echo("end-of-action")
            commands: list[str] = []
            while True:
                seen = await monitor.next_command()
                if "end-of-action" in seen["command"]:
                    return commands
                if seen["client_type"] != "lua":
                    commands.append(seen["command"].split()[0].upper())

    yield count
    await watcher.aclose()
    await marker.aclose()


async def test_each_operation_is_one_round_trip(
    private_redis: RedisServer, round_trips: CountRoundTrips
) -> None:
    backend = RedisBackend.from_url(private_redis.url, key_prefix="rt:")
    await backend.set("warm", {"a": b"1"}, ttl=5)  # scripts loaded, connection open
    await backend.get("warm", ttl=5)
    await backend.update("warm", {"a": b"2"}, ttl=5)
    assert await round_trips(lambda: backend.set("k", {"a": b"1", "b": b"2"}, ttl=60)) == [
        "EVALSHA"
    ]
    assert await round_trips(lambda: backend.get("k")) == ["HGETALL"]
    assert await round_trips(lambda: backend.get("k", ttl=60)) == ["EVALSHA"]
    assert await round_trips(lambda: backend.update("k", {"a": b"3"}, ["b"], ttl=60)) == [
        "EVALSHA"
    ]
    assert await round_trips(lambda: backend.delete("k")) == ["DEL"]
    await backend.aclose()


async def test_a_request_makes_one_round_trip_to_read_and_two_to_change(
    private_redis: RedisServer, round_trips: CountRoundTrips
) -> None:
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=RedisBackend.from_url(private_redis.url, key_prefix="app:"),
    )
    app = build_app(sessions)
    login = await call(app, "/login", "POST")
    headers = cookie_header(login.cookie() or "")
    await call(app, "/incr", "POST", headers=headers)  # scripts loaded
    responses: list[Any] = []

    async def request(path: str, method: str = "GET") -> None:
        responses.append(await call(app, path, method, headers=headers))

    assert await round_trips(lambda: request("/noop")) == []
    assert await round_trips(lambda: request("/read")) == ["HGETALL"]  # unchanged: no write
    assert await round_trips(lambda: request("/incr", "POST")) == ["HGETALL", "EVALSHA"]
    assert await round_trips(lambda: call(app, "/incr", "POST")) == ["EVALSHA"]  # a new one
    assert [r.status for r in responses] == [200, 200, 200]
    await sessions.aclose()


# -- faults against a real server ---------------------------------------------------------

FAULT_TIMEOUT = 0.3


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own that keeps every acknowledged write across a restart."""
    server = RedisServer(tmp_path / "redis", durable=True).start()
    try:
        yield server
    finally:
        server.stop()


def fault_app(server: RedisServer, **options: Any) -> tuple[Any, SessionManager[AppSession]]:
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=RedisBackend.from_url(
            server.url, timeout=FAULT_TIMEOUT, socket_connect_timeout=FAULT_TIMEOUT
        ),
        **options,
    )
    return build_app(sessions), sessions


async def incr_run(
    app: Any,
    headers: list[tuple[bytes, bytes]],
    count: int,
    fault_at: int,
    fault: Callable[[], None],
) -> tuple[list[int], list[int], float]:
    """``count`` increments, applying ``fault`` before number ``fault_at``.

    Returns the statuses, the counters acknowledged by 2xx answers, and the slowest answer.
    """
    statuses: list[int] = []
    acknowledged: list[int] = []
    slowest = 0.0
    for index in range(count):
        if index == fault_at:
            fault()
        started = time.monotonic()
        response = await call(app, "/incr", "POST", headers=headers)
        slowest = max(slowest, time.monotonic() - started)
        statuses.append(response.status)
        if response.status == 200:
            acknowledged.append(int(response.body.split(b":")[1].rstrip(b"}")))
    return statuses, acknowledged, slowest


async def assert_recovered_with_every_acknowledged_write(
    app: Any, headers: list[tuple[bytes, bytes]], acknowledged: list[int]
) -> None:
    assert acknowledged == list(range(1, len(acknowledged) + 1))  # no acknowledged loss
    read = await call(app, "/read", headers=headers)
    assert read.status == 200
    stored = int(read.body.split(b'"counter":')[1].split(b",")[0])
    assert stored >= acknowledged[-1]
    after = await call(app, "/incr", "POST", headers=headers)
    assert after.status == 200


async def test_a_stopped_redis_gives_503s_then_recovers_on_restart(
    durable_redis: RedisServer,
) -> None:
    app, sessions = fault_app(durable_redis)
    headers = cookie_header((await call(app, "/incr", "POST")).cookie() or "")
    statuses, acknowledged, slowest = await incr_run(app, headers, 20, 10, durable_redis.stop)
    assert statuses[:10] == [200] * 9 + [200]
    assert set(statuses[10:]) == {503}
    assert 500 not in statuses
    assert slowest < FAULT_TIMEOUT + 1.0
    durable_redis.start()  # same port, same data directory
    await assert_recovered_with_every_acknowledged_write(app, headers, [1, *acknowledged])
    await sessions.aclose()


async def test_a_paused_redis_gives_503s_within_the_timeout_then_recovers(
    durable_redis: RedisServer,
) -> None:
    app, sessions = fault_app(durable_redis)
    headers = cookie_header((await call(app, "/incr", "POST")).cookie() or "")
    statuses, acknowledged, slowest = await incr_run(app, headers, 8, 4, durable_redis.pause)
    assert statuses == [200] * 4 + [503] * 4
    assert slowest < FAULT_TIMEOUT + 1.0  # bounded by the timeout: never a hang
    durable_redis.resume()
    await assert_recovered_with_every_acknowledged_write(app, headers, [1, *acknowledged])
    await sessions.aclose()


async def test_the_anonymous_policy_serves_pages_while_redis_is_down(
    durable_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app, sessions = fault_app(durable_redis, on_backend_error="anonymous")
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    durable_redis.stop()
    read = await call(app, "/read", headers=headers)
    assert read.status == 200
    assert b'"user_id":null' in read.body
    assert "going on without a session" in caplog.text
    durable_redis.start()
    assert b'"user_id":1' in (await call(app, "/read", headers=headers)).body
    await sessions.aclose()


async def test_a_503_from_the_store_is_json_with_retry_after(durable_redis: RedisServer) -> None:
    app, sessions = fault_app(durable_redis)
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    durable_redis.stop()
    response = await call(app, "/me", headers=headers)
    assert response.status == 503
    assert response.header("retry-after") == "1"
    assert response.header("content-type") == "application/json"
    await sessions.aclose()


async def test_backend_errors_carry_the_operation(durable_redis: RedisServer) -> None:
    backend = RedisBackend.from_url(durable_redis.url, timeout=FAULT_TIMEOUT)
    durable_redis.pause()
    try:
        with pytest.raises(BackendUnavailable, match="did not answer get") as caught:
            await backend.get("k")
        assert (caught.value.backend, caught.value.operation) == ("RedisBackend", "get")
    finally:
        durable_redis.resume()
    durable_redis.stop()
    with pytest.raises(BackendUnavailable, match="Redis failed on delete"):
        await backend.delete("k")
    await backend.aclose()


async def test_a_paused_server_fails_each_call_by_the_backend_s_own_deadline(
    durable_redis: RedisServer,
) -> None:
    # A client of from_url leaves redis-py's socket timeouts off: the backend's deadline
    # alone bounds each call, and a call it cut short never leaves its reply to be read
    # as the answer to a later call.
    backend = RedisBackend.from_url(durable_redis.url, timeout=FAULT_TIMEOUT)
    await backend.set("first", {"n": b"1"}, ttl=60)
    await backend.set("second", {"n": b"2"}, ttl=60)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "get": lambda: backend.get("first"),
        "set": lambda: backend.set("third", {"n": b"3"}, ttl=60),
        "update": lambda: backend.update("first", {"n": b"9"}, ttl=60),
        "delete": lambda: backend.delete("gone"),
    }
    durable_redis.pause()
    try:
        for operation, attempt in calls.items():
            with pytest.raises(BackendUnavailable, match=f"did not answer {operation} within"):
                await attempt()
    finally:
        durable_redis.resume()
    # A call cut short may or may not have been applied; each later call reads its own
    # reply, never one left over from them.
    assert await backend.get("second") == {"n": b"2"}
    assert await backend.get("third") in (None, {"n": b"3"})
    assert await backend.get("first") in ({"n": b"1"}, {"n": b"9"})
    assert await backend.get("second") == {"n": b"2"}
    own = RedisBackend.from_url(durable_redis.url, socket_timeout=2.5)
    assert own.client.connection_pool.connection_kwargs["socket_timeout"] == 2.5
    await own.aclose()
    await backend.aclose()


async def test_requests_on_a_dependency_route_still_use_annotated(redis_url: str) -> None:
    # The typed dependency works the same over Redis in an app of the user's own.
    from fastapi import FastAPI

    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=RedisBackend.from_url(redis_url, key_prefix="own-app:"),
    )
    app = FastAPI(lifespan=sessions.lifespan)
    app.add_middleware(sessions.middleware)

    @app.post("/visit")
    async def visit(session: Annotated[AppSession, Depends(sessions.get_session)]) -> int:
        session.counter += 1
        return session.counter

    transport = httpx.ASGITransport(app=app)
    async with (
        sessions.lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        assert [(await client.post("/visit")).json() for _ in range(3)] == [1, 2, 3]


class PausingAfterLock(RedisBackend):
    """A RedisBackend that pauses its (real) server the moment it has taken a lock."""

    server: RedisServer | None = None

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        held = await super().acquire_lock(key, token, ttl=ttl, wait=wait)
        if self.server is not None:
            self.server.pause()
        return held


@pytest.mark.parametrize("moment", ["before the lock", "once the lock is held"])
async def test_a_redis_pause_never_leaves_a_lock_behind(
    durable_redis: RedisServer, moment: str
) -> None:
    # Paused once the lock is held, the read times out and so does the release: without
    # care, a lock nobody holds, and every request on the session waiting lock_timeout for
    # a 503 until lock_ttl runs out (30 s by default).
    backend = PausingAfterLock(
        aioredis.Redis.from_url(durable_redis.url, socket_connect_timeout=FAULT_TIMEOUT),
        timeout=FAULT_TIMEOUT,
    )
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=backend,
        concurrency="lock",
        lock_timeout=1.0,
    )
    app = build_app(sessions)
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    if moment == "before the lock":
        durable_redis.pause()
    else:
        backend.server = durable_redis
    try:
        assert (await call(app, "/incr", "POST", headers=headers)).status == 503
    finally:
        backend.server = None
        durable_redis.resume()
    for _ in range(3):
        assert (await call(app, "/incr", "POST", headers=headers)).status == 200
    await backend.client.aclose()
