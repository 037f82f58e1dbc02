"""One user with a hundred thousand sessions: listed a page at a time, one revoked, all
signed out, on every store and the session service.

An attacker who logged in as someone a hundred thousand times is whom "sign out
everywhere" is for. Every store call here reads or ends at most a page (1,000) of the
user's sessions, so none runs into the store's timeout however many there are; the
number of store calls is asserted, and the time each store took is printed at the end of
the run (a figure, not a test: the machine is shared).
"""

import json
import time

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from pydantic_core import to_json

from fastapi_session_deps import Backend, MemoryBackend, RedisBackend, SessionManager, SQLBackend
from fastapi_session_deps._record import CREATED_FIELD, OWNER_FIELD
from fastapi_session_deps.backends._json_record import split_fields
from fastapi_session_deps.signing import session_handle
from fastapi_session_deps.users import HANDLE_PAGE

from ..helpers import Clock, CountingBackend
from ..support import WITH_THE_SERVICE, AppSession, each_store, inner_store, manager_factory

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

SESSIONS = 100_000
TTL = 3600.0
#: (store, phase, seconds) for the end-of-run report.
REPORT: list[tuple[str, str, float]] = []

backend = pytest.fixture(params=WITH_THE_SERVICE, name="backend")(each_store)


async def seed(store: Backend, user: str, clock: Clock) -> None:
    """``SESSIONS`` sessions of ``user``, written straight into the store that holds them
    (in bulk, by the store itself where it can: as a hundred thousand log-ins would have
    left them)."""
    fields = {"counter": b"1", OWNER_FIELD: to_json(user), CREATED_FIELD: to_json(clock())}
    if isinstance(store, MemoryBackend):
        for n in range(SESSIONS):
            await store.index_add(user, f"{n:064x}", ttl=TTL)
            await store.set(f"{n:064x}", fields, ttl=TTL)
    elif isinstance(store, RedisBackend) and isinstance(store.client, aioredis.RedisCluster):
        record = [int(TTL * 1000), *(item for pair in fields.items() for item in pair)]
        sha = await store.client.script_load(REDIS_RECORD)
        for start in range(0, SESSIONS, 10_000):  # keys in every slot: a script each
            pipe = store.client.pipeline(transaction=False)
            for n in range(start, start + 10_000):
                pipe.evalsha(sha, 1, store.redis_key(f"{n:064x}"), *record)
            await pipe.execute()
        await store.client.zadd(
            store.index_key(user), {f"{n:064x}": time.time() * 1000 + n for n in range(SESSIONS)}
        )
    elif isinstance(store, RedisBackend):
        arguments = [store.key_prefix, SESSIONS, int(TTL * 1000)]
        for name, value in fields.items():
            arguments += [name, value]
        await store.client.eval(REDIS_SEED, 1, store.index_key(user), *arguments)
    else:
        assert isinstance(store, SQLBackend)
        data, meta = split_fields(fields)
        values = {
            "data": json.dumps(data),
            "meta": json.dumps(meta),
            "until": clock() + TTL,
            "user": user,
            "last": SESSIONS - 1,
        }
        async with store.engine.begin() as connection:
            statement = SQL_SEED[store.engine.dialect.name].format(
                table=store.table.name, sequence=f"seq_0_to_{SESSIONS - 1}"
            )
            await connection.execute(sa.text(statement), values)


#: Writes one record: KEYS = the record; ARGV = ttl_ms, then its fields and values.
REDIS_RECORD = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
"""

#: Writes the sessions in Redis itself: KEYS = the index; ARGV = prefix, count, ttl_ms,
#: then the record's fields and values.
REDIS_SEED = """
local now = redis.call('TIME')
local deadline = tonumber(now[1]) * 1000 + tonumber(ARGV[3])
for n = 0, tonumber(ARGV[2]) - 1 do
  local key = string.format('%064x', n)
  local name = ARGV[1] .. '{' .. key .. '}'
  redis.call('HSET', name, unpack(ARGV, 4))
  redis.call('PEXPIRE', name, ARGV[3])
  redis.call('ZADD', KEYS[1], deadline + n, key)
end
"""

#: Writes the sessions in the database itself, keys counting up in hexadecimal. (The
#: table's name is the test's own.)
SQL_SEED = {
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last)"
        " INSERT INTO {table} (id_hash, data, meta, expires_at, user_id)"
        " SELECT printf('%064x', i), :data, :meta, :until + i / 1000.0, :user FROM n"
    ),
    "postgresql": (
        "INSERT INTO {table} (id_hash, data, meta, expires_at, user_id)"
        " SELECT lpad(to_hex(i), 64, '0'), CAST(:data AS jsonb), CAST(:meta AS jsonb),"
        " :until + i / 1000.0, :user FROM generate_series(0, :last) AS i"
    ),
    "mysql": (
        "INSERT INTO {table} (id_hash, data, meta, expires_at, user_id)"
        " SELECT LOWER(LPAD(HEX(seq), 64, '0')), :data, :meta, :until + seq / 1000.0, :user"
        " FROM {sequence}"
    ),
}


@pytest.fixture
async def crowded(backend: Backend, clock: Clock) -> SessionManager[AppSession]:
    store = inner_store(backend)
    if isinstance(store, MemoryBackend):
        store.max_sessions = None  # room for them all
    await seed(store, "alice", clock)
    return manager_factory(CountingBackend(backend), clock)(user_index=True)


async def test_a_hundred_thousand_sessions_of_one_user_are_paged_revoked_and_ended(
    crowded: SessionManager[AppSession], request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["backend"]
    counting = crowded.backend
    assert isinstance(counting, CountingBackend)
    users = crowded.users

    started = time.perf_counter()
    page = await users.list("alice", limit=100)
    REPORT.append((name, "list a page", time.perf_counter() - started))
    assert len(page) == 100
    assert counting.calls["index_page"] == 1

    last = (await counting.index_keys("alice", offset=SESSIONS - 1, limit=1))[0]
    counting.reset()
    started = time.perf_counter()
    assert await users.revoke("alice", session_handle(last))  # the last of the index
    REPORT.append((name, "revoke the last", time.perf_counter() - started))
    assert counting.calls["index_keys"] == SESSIONS // HANDLE_PAGE
    assert counting.calls["index_end"] == 1

    counting.reset()
    started = time.perf_counter()
    assert await users.revoke_all("alice") == SESSIONS - 1
    REPORT.append((name, "revoke all", time.perf_counter() - started))
    assert counting.calls["index_end_some"] <= SESSIONS // 1000 + 1  # batches of 1,000
    assert counting.calls["get"] == counting.calls["index_page"] == 0  # no record read whole
    assert await users.list("alice") == []
    assert await counting.index_keys("alice") == []


def report_lines() -> list[str]:
    if not REPORT:
        return []
    lines = [f"{SESSIONS:,} sessions of one user (seconds, this run, a shared machine):"]
    phases = ["list a page", "revoke the last", "revoke all"]
    lines.append(f"  {'store':14}" + "".join(f"{phase:>17}" for phase in phases))
    for store in dict.fromkeys(name for name, _, _ in REPORT):
        took = {phase: seconds for name, phase, seconds in REPORT if name == store}
        lines.append(f"  {store:14}" + "".join(f"{took.get(p, 0):17.2f}" for p in phases))
    return lines
