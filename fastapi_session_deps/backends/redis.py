"""`RedisBackend`: session records in Redis, Valkey or a Redis Cluster (redis-py asyncio)."""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from functools import partial
from typing import Any, TypeVar

import anyio

from .._deadline import Deadlines
from .._record import FACT_FIELDS, LISTED_FIELDS, OWNER_FIELD, reserved_text
from ..exceptions import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    MissingDependencyError,
)
from ..signing import session_handle
from .base import (
    LOCK_TOMBSTONE_SECONDS,
    Backend,
    EndedRecord,
    LockWaits,
    SessionIndex,
    SessionLocks,
    StoreStats,
    UserRecord,
    batches,
)

try:
    import redis.asyncio as aioredis
    from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise MissingDependencyError.of("RedisBackend", "redis", "redis-py") from exc

try:
    from hiredis import pack_command as _pack_in_c
except ImportError:  # pragma: no cover - the redis extra installs hiredis
    _pack_in_c = None  # type: ignore[assignment]

__all__ = ["RedisBackend"]

logger = logging.getLogger("fastapi_session_deps")

R = TypeVar("R")

# Each record is one hash; every operation below is one round trip on one key, so each works
# unchanged on a Redis Cluster. Scripts run atomically on the server.

# A key of another type than a hash (written by something else, or damaged) is never a
# session: the scripts delete it and answer as for a missing record, so that the visitor
# starts afresh instead of meeting an error on every request. Fields go to HSET and HDEL in
# chunks, since Lua's unpack() fails past a few thousand values.

#: Read the record and, if it exists, push its expiry out (a sliding idle timeout). A nil
#: reply means a key of the wrong type, now deleted.
_GET_AND_TOUCH = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {} end
if kind ~= 'hash' then redis.call('DEL', KEYS[1]) return false end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return fields
"""

#: Replace the whole record: ARGV = ttl_ms, field, value, field, value, ...
_REPLACE = """
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if #ARGV > 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

#: Merge into the record only if it still exists (never resurrect a deleted session),
#: and push its expiry out (or, if ARGV[2] is 1, set it exactly): ARGV = ttl_ms, exact,
#: 2 * number of changed fields, field, value, ..., removed field, ...
#: Answers 1 when merged, 0 when there is no record, -1 for a key of the wrong type.
_MERGE = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return 0 end
if kind ~= 'hash' then redis.call('DEL', KEYS[1]) return -1 end
local last = 3 + tonumber(ARGV[3])
for i = 4, last, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, last)))
end
for i = last + 1, #ARGV, 1000 do
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local ttl = tonumber(ARGV[1])
if ARGV[2] == '1' or redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"""


#: Take a lock for the caller's token, unless another holds it.
#: KEYS = lock, the token's tombstone; ARGV = token, ttl_ms. A token that was given up on
#: (its tombstone is set) never takes the lock, however late its request reaches Redis.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
#: End a record if it is the user's, and answer what its library fields said of it:
#: KEYS = the record; ARGV = the owner's field, the user, the fields to answer. False when
#: the record is not the user's (or not there), and then nothing is deleted.
_END_OWNED = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return false end
local ok, owner = pcall(cjson.decode, redis.call('HGET', KEYS[1], ARGV[1]) or '')
if not ok or owner ~= ARGV[2] then return false end
local facts = redis.call('HMGET', KEYS[1], unpack(ARGV, 3))
redis.call('DEL', KEYS[1])
return facts
"""

#: Compare and set fields, leaving the expiry alone: ARGV = field, old, new, field, ...
_SWAP = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  end
end
return 1
"""

#: Release a lock only if the caller's token still holds it.
#: KEYS = lock, the token's tombstone; ARGV = token, tombstone ttl_ms. A token that does
#: not hold the lock gets a tombstone instead: its acquisition may still be in flight (it
#: timed out while Redis was paused) and must not take the lock when it lands.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 0
"""

#: Add a session to a user's index (a sorted set of store keys, scored by when each
#: record expires, by the server's clock), and prune it: KEYS = the index; ARGV = store
#: key, ttl_ms. An entry is dropped one ttl after its record's expiry, not at once: a
#: renewal whose index update failed leaves the record at most that much past its score.
#: The index itself expires then too.
_INDEX_ADD = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then redis.call('DEL', KEYS[1]) end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + ttl)
return 1
"""

#: A page of a user's sessions, read in one step (on a single server): KEYS = the records;
#: ARGV = the fields to read. For each live hash, its position in KEYS, its milliseconds
#: left and the fields' values (nil where absent): one reply to decode, not two per record.
_LIST = """
local found = {}
for i, key in ipairs(KEYS) do
  local left = redis.call('PTTL', key)
  if left > 0 then
    local values = redis.pcall('HMGET', key, unpack(ARGV))
    if type(values) == 'table' and not values.err then
      found[#found + 1] = i
      found[#found + 1] = left
      found[#found + 1] = values
    end
  end
end
return found
"""

#: The most records one listing script reads, so that no page holds the server long.
LIST_CHUNK = 1000

#: How long a tombstone lasts, in milliseconds.
_TOMBSTONE_MS = int(LOCK_TOMBSTONE_SECONDS * 1000)

#: How Redis words the failure of a script itself (not of a command it ran).
_SCRIPT_FAILED = re.compile(r"user_script|Error (?:running|compiling) script")


class RedisBackend(Backend, SessionLocks, SessionIndex):
    """Session records in Redis, as one hash per session with Redis's own expiry.

    Every operation is a single round trip: a plain read is ``HGETALL``; a read that also
    renews the idle expiry, a whole-record write and a field-level merge are small Lua
    scripts on the one key. It also provides the per-session locks of
    ``concurrency="lock"``: ``SET NX PX`` on a lock key beside the record, released by a
    script only by its owner. Keys are ``<key_prefix>{<hash of the session id>}``: the braces
    are a Redis Cluster hash tag, so any key that must change with the record lands in the
    same slot.

    The index of a user's sessions (``user_index=True``) is a sorted set per user,
    ``<key_prefix>user:{<hash of the user>}``, of store keys scored by expiry. On a Redis
    Cluster it lives in another slot than the records, so the two are never changed in
    one step: a session enters the index before its record is written and leaves it after
    the record is deleted, and a listing reads the records the index names (one pipelined
    round trip), so an entry whose record is gone is never listed.

    Every call is bounded by ``timeout``; a timeout or any Redis error becomes
    `BackendUnavailable` (a 503 at the app). Requests succeed again as soon as Redis does:
    redis-py reconnects on its own.

    Args:
        client: a ``redis.asyncio.Redis`` (Sentinel's ``master_for(...)`` gives one) or a
            ``redis.asyncio.RedisCluster``, created with ``decode_responses=False`` (the
            default). The backend never closes a client it was handed.
        key_prefix: prepended to every key, to share a database with other data.
        timeout: seconds any one store call may take.

    Raises:
        ConfigurationError: a client that decodes responses, or a non-positive timeout.
    """

    def __init__(
        self,
        client: aioredis.Redis | aioredis.RedisCluster,
        *,
        key_prefix: str = "session:",
        timeout: float = 1.0,
    ) -> None:
        get_encoder = getattr(client, "get_encoder", None)
        if get_encoder is None:
            raise ConfigurationError(
                f"client must be a redis.asyncio.Redis or RedisCluster, not {client!r}."
            )
        if get_encoder().decode_responses:
            raise ConfigurationError(
                "RedisBackend stores bytes: create its client with decode_responses=False "
                "(the default), or use RedisBackend.from_url(url)."
            )
        if not timeout > 0:
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}."
            )
        self.client = client
        self.key_prefix = key_prefix
        self.timeout = timeout
        self._owns_client = False
        self._deadlines = _Deadlines(timeout)
        self._lock_waits = LockWaits()
        self._get_and_touch = _Script(client, _GET_AND_TOUCH)
        self._replace = _Script(client, _REPLACE)
        self._merge = _Script(client, _MERGE)
        self._swap = _Script(client, _SWAP)
        self._end_owned = _Script(client, _END_OWNED)
        self._list = _Script(client, _LIST)
        self._acquire = _Script(client, _ACQUIRE)
        self._release = _Script(client, _RELEASE)
        self._index_add = _Script(client, _INDEX_ADD)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_prefix: str = "session:",
        timeout: float = 1.0,
        **client_options: Any,
    ) -> RedisBackend:
        """Build a backend with a client of its own, which `aclose` closes.

        Args:
            url: ``redis://``, ``rediss://`` or ``unix://`` URL, as redis-py reads it.
            key_prefix: prepended to every key.
            timeout: seconds any one store call may take.
            **client_options: passed to ``redis.asyncio.from_url`` (``max_connections``,
                ``ssl_ca_certs``, ...).
        """
        client = aioredis.from_url(url, **_client_options(client_options))
        pool = client.connection_pool  # no connection is made yet: each is of this class
        pool.connection_class = _packing_in_c(pool.connection_class)
        return cls._owning(client, key_prefix, timeout)

    @classmethod
    def from_cluster_url(
        cls,
        url: str,
        *,
        key_prefix: str = "session:",
        timeout: float = 1.0,
        **client_options: Any,
    ) -> RedisBackend:
        """The same, over a ``RedisCluster`` found from any node's ``redis://`` or
        ``rediss://`` URL. (Its commands are packed by redis-py in Python: a cluster's
        connection class cannot be chosen.)"""
        cluster = aioredis.RedisCluster.from_url(url, **_client_options(client_options))
        return cls._owning(cluster, key_prefix, timeout)

    @classmethod
    def _owning(
        cls, client: aioredis.Redis | aioredis.RedisCluster, key_prefix: str, timeout: float
    ) -> RedisBackend:
        """A backend on a client of its own, which `aclose` closes."""
        backend = cls(client, key_prefix=key_prefix, timeout=timeout)
        backend._owns_client = True
        return backend

    def __repr__(self) -> str:
        return f"RedisBackend(key_prefix={self.key_prefix!r}, timeout={self.timeout!r})"

    def redis_key(self, key: str) -> str:
        """The Redis key of a record."""
        return f"{self.key_prefix}{{{key}}}"

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        name = self.redis_key(key)
        if ttl is None:
            try:
                reply: Any = await self._call("get", lambda: self.client.hgetall(name))
            except _WrongType:
                await self.delete(key)
                reply = None
            items = None if reply is None else list(reply.items())
        else:
            flat: Any = await self._call(
                "get", lambda: self._get_and_touch(keys=[name], args=[_milliseconds(ttl)])
            )
            items = None if flat is None else list(zip(flat[::2], flat[1::2], strict=True))
        if items is None:
            logger.warning(
                "Deleted a session record that was not a Redis hash: no session",
                extra=_extra("record_wrong_type", key),
            )
            return None
        if not items:
            return None
        return {_field_name(field): value for field, value in items}

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        args: list[str | bytes | int] = [_milliseconds(ttl)]
        for field, value in fields.items():
            args += (field, value)
        await self._call("set", lambda: self._replace(keys=[self.redis_key(key)], args=args))

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        args: list[str | bytes | int] = [_milliseconds(ttl), int(exact), 2 * len(changed)]
        for field, value in changed.items():
            args += (field, value)
        args += removed
        done = await self._call(
            "update", lambda: self._merge(keys=[self.redis_key(key)], args=args)
        )
        if done == -1:
            logger.warning(
                "Deleted a session record that was not a Redis hash: no session",
                extra=_extra("record_wrong_type", key),
            )
        return bool(done == 1)

    async def replace_unchanged(
        self, key: str, replacements: Mapping[str, tuple[bytes, bytes]]
    ) -> None:
        args: list[str | bytes] = []
        for field, (old, new) in replacements.items():
            args += (field, old, new)
        await self._call(
            "replace_unchanged", lambda: self._swap(keys=[self.redis_key(key)], args=args)
        )

    async def delete(self, key: str) -> bool:
        name = self.redis_key(key)
        return bool(await self._call("delete", lambda: self.client.delete(name)))

    def lock_key(self, key: str) -> str:
        """The Redis key of a record's lock: in the record's hash slot."""
        return f"{self.redis_key(key)}:lock"

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        keys = self._lock_keys(key, token)
        args: list[str | int] = [token, _milliseconds(ttl)]

        async def attempt() -> bool:
            taken = await self._call("acquire_lock", lambda: self._acquire(keys=keys, args=args))
            return bool(taken)

        return await self._lock_waits.acquire(key, attempt, wait)

    async def release_lock(self, key: str, token: str) -> None:
        keys = self._lock_keys(key, token)
        released = await self._call(
            "release_lock", lambda: self._release(keys=keys, args=[token, _TOMBSTONE_MS])
        )
        if released:  # else not held: a tombstone now keeps the token from taking it
            self._lock_waits.released(key)

    def index_key(self, user: str) -> str:
        """The Redis key of a user's index: named by a hash, not by the user."""
        digest = hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.key_prefix}user:{{{digest}}}"

    async def index_add(self, user: str, key: str, *, ttl: float) -> None:
        keys = [self.index_key(user)]
        args: list[str | bytes | int] = [key, _milliseconds(ttl)]
        await self._call("index_add", lambda: self._index_add(keys=keys, args=args))

    async def index_remove(self, user: str, keys: Collection[str]) -> None:
        if keys:
            name = self.index_key(user)
            try:
                await self._call("index_remove", lambda: self.client.zrem(name, *keys))
            except _WrongType:
                await self._call("index_remove", lambda: self.client.delete(name))

    async def index_list(self, user: str) -> list[UserRecord]:
        return await self._records(await self._members("index_list", user, 0, -1))

    async def index_keys(self, user: str, *, offset: int = 0, limit: int = 1000) -> list[str]:
        return await self._members("index_keys", user, offset, offset + limit - 1)

    async def index_page(
        self, user: str, *, offset: int = 0, limit: int = 100
    ) -> list[UserRecord]:
        return await self._records(
            await self._members("index_page", user, offset, offset + limit - 1)
        )

    async def index_end(self, user: str, keys: Collection[str]) -> list[EndedRecord]:
        keys = list(keys)
        if not keys:
            return []
        args = [OWNER_FIELD, user, *FACT_FIELDS]

        async def end() -> list[Any]:
            # One script a record (each in a slot of its own on a cluster), all in one
            # pipelined round trip with the index's update. Sent as a plain command: a
            # cluster pipeline's `evalsha` method refuses before redis-py 8.2, though the
            # pipeline routes EVALSHA by its key (and a NOSCRIPT reply is handled below).
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.execute_command("EVALSHA", self._end_owned.sha, 1, self.redis_key(key), *args)
            pipe.zrem(self.index_key(user), *keys)
            return await pipe.execute(raise_on_error=False)

        replies = await self._call("index_end", end)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            await self._call("index_end", self._end_owned.load)  # a restarted server
            replies = await self._call("index_end", end)
        ended: list[EndedRecord] = []
        for key, facts in zip(keys, replies[:-1], strict=True):
            if isinstance(facts, list):
                found = zip(FACT_FIELDS, facts, strict=True)
                ended.append((key, {name: value for name, value in found if value is not None}))
        return ended

    async def _members(self, operation: str, user: str, start: int, stop: int) -> list[str]:
        """The keys in ``user``'s index from rank ``start`` to ``stop`` (inclusive; -1: the
        last), the latest to expire first. An index of another type is deleted: none."""
        name = self.index_key(user)
        try:
            members: Any = await self._call(
                operation, lambda: self.client.zrevrange(name, start, stop)
            )
        except _WrongType:
            logger.warning(
                "Deleted a user index that was not a sorted set",
                extra=_extra("index_wrong_type"),
            )
            await self._call(operation, lambda: self.client.delete(name))
            return []
        return [_field_name(member) for member in members]

    async def _records(self, keys: list[str]) -> list[UserRecord]:
        """The live records of ``keys``, in their order, with only the fields a listing
        reads (`LISTED_FIELDS`): in one script on a single server, in one pipelined round
        trip on a cluster (whose records each live in a slot of their own)."""
        if not keys:
            return []
        names = [self.redis_key(key) for key in keys]
        if isinstance(self.client, aioredis.RedisCluster):

            async def read() -> list[Any]:
                pipe = self.client.pipeline(transaction=False)
                for name in names:
                    pipe.pttl(name)
                    pipe.hmget(name, LISTED_FIELDS)
                replies = await pipe.execute(raise_on_error=False)
                flat: list[Any] = []
                pairs = zip(replies[::2], replies[1::2], strict=True)
                for position, (left, values) in enumerate(pairs, 1):
                    if isinstance(left, int) and left > 0 and isinstance(values, list):
                        flat += (position, left, values)
                return flat

            flat = await self._call("index_list", read)
        else:
            # A script holds the server while it runs: a page of any size goes in scripts
            # of at most LIST_CHUNK records (a few milliseconds each).
            flat = []
            for start in range(0, len(names), LIST_CHUNK):
                part: list[Any] = await self._call(
                    "index_list",
                    partial(self._list, names[start : start + LIST_CHUNK], LISTED_FIELDS),
                )
                part[::3] = [start + position for position in part[::3]]
                flat += part
        found: list[UserRecord] = []
        for position, left, values in zip(flat[::3], flat[1::3], flat[2::3], strict=True):
            record = {
                name: value
                for name, value in zip(LISTED_FIELDS, values, strict=True)
                if value is not None
            }
            if record:  # a hash with none of them is no session of the user's
                found.append((keys[position - 1], record, left / 1000))
        return found

    async def stats(self, *, top: int = 10) -> StoreStats:
        """Counted with ``SCAN`` over the prefix (every node of a cluster): the records,
        then each user's index, whose entries count only while their record exists."""
        return await self._call("stats", lambda: self._stats(top))

    async def _stats(self, top: int) -> StoreStats:
        prefix = _glob_escape(self.key_prefix)
        client: Any = self.client
        live = 0
        async for _ in client.scan_iter(match=prefix + "{*}", count=1000, _type="hash"):
            live += 1
        indexes = [
            name
            async for name in client.scan_iter(match=prefix + "user:{*}", count=1000, _type="zset")
        ]
        seconds, micros = await client.time()
        now = seconds * 1000 + micros // 1000
        per_index: dict[Any, list[str]] = {}
        for batch in batches(indexes, 500):
            pipe = client.pipeline(transaction=False)
            for name in batch:
                pipe.zrangebyscore(name, now, "+inf")
            for name, members in zip(batch, await pipe.execute(raise_on_error=False), strict=True):
                if isinstance(members, list) and members:
                    per_index[name] = [_field_name(member) for member in members]
        existing: dict[Any, list[str]] = {}
        for name, keys in per_index.items():
            for batch in batches(keys, 1000):
                pipe = client.pipeline(transaction=False)
                for key in batch:
                    pipe.exists(self.redis_key(key))
                found = await pipe.execute(raise_on_error=False)
                existing.setdefault(name, []).extend(
                    key for key, there in zip(batch, found, strict=True) if there == 1
                )
        owned = [(name, keys) for name, keys in existing.items() if keys]
        per_user: dict[str, int] = {}
        for batch in batches(owned, 1000):
            pipe = client.pipeline(transaction=False)
            for _, keys in batch:
                pipe.hget(self.redis_key(keys[0]), OWNER_FIELD)
            owners = await pipe.execute(raise_on_error=False)
            for (_, keys), owner in zip(batch, owners, strict=True):
                user = reserved_text(owner) if isinstance(owner, bytes) else None
                if user is not None:
                    per_user[user] = per_user.get(user, 0) + len(keys)
        return StoreStats.of(live, per_user, top)

    def _lock_keys(self, key: str, token: str) -> list[str]:
        lock = self.lock_key(key)
        return [lock, f"{lock}:gone:{token}"]

    async def aclose(self) -> None:
        if self._owns_client:
            self._owns_client = False
            await self.client.aclose()

    async def _call(self, operation: str, command: Callable[[], Awaitable[R]]) -> R:
        try:
            return await self._deadlines.run(command)
        except TimeoutError as exc:
            raise BackendUnavailable(
                f"Redis did not answer {operation} within {self.timeout:g} s",
                backend="RedisBackend",
                operation=operation,
            ) from exc
        except ResponseError as exc:
            text = str(exc)
            if text.startswith("WRONGTYPE"):
                raise _WrongType from exc
            # redis-py gives the passing refusals classes of their own (OutOfMemoryError,
            # ReadOnlyError, BusyLoadingError, ...), even when a command inside a script
            # met them; a plain ResponseError about a script is the script itself failing:
            # a bug, which a retry would only repeat.
            if type(exc) is ResponseError and _SCRIPT_FAILED.search(text):
                logger.error(
                    "A RedisBackend script failed on %s: %s",
                    operation,
                    text,
                    extra=_extra("script_failed"),
                )
                raise BackendError(
                    f"Redis refused {operation}: {text}",
                    backend="RedisBackend",
                    operation=operation,
                ) from exc
            raise self._unavailable(operation, exc) from exc
        except (RedisError, RedisClusterException, OSError) as exc:
            raise self._unavailable(operation, exc) from exc

    @staticmethod
    def _unavailable(operation: str, exc: Exception) -> BackendUnavailable:
        # A passing condition (no connection, OOM, a replica, LOADING, BUSY, a cluster
        # changing hands) or a misconfiguration an operator fixes (NOAUTH): "retry shortly".
        return BackendUnavailable(
            f"Redis failed on {operation}: {type(exc).__name__}: {exc}",
            backend="RedisBackend",
            operation=operation,
        )


def _extra(event: str, key: str | None = None) -> dict[str, str]:
    """The stable fields of a log record: never a token, a key or a user."""
    extra = {"event": event, "store": "RedisBackend"}
    if key is not None:
        extra["handle"] = session_handle(key)
    return extra


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a ``SCAN MATCH`` pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class _Script:
    """A Lua script, run by its SHA1 (EVALSHA), loaded again if the server forgot it.

    The work redis-py's own `Script` does, without what only pipelines need: this runs on
    every request.
    """

    def __init__(self, client: aioredis.Redis | aioredis.RedisCluster, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
        try:
            return await self.client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted or flushed server
            await self.load()
            return await self.client.evalsha(self.sha, len(keys), *keys, *args)

    async def load(self) -> None:
        """Load the script (on every primary of a cluster)."""
        await self.client.script_load(self.source)


class _PackedInC(aioredis.connection.AbstractConnection):
    """Commands packed by hiredis, in C, as redis-py's own synchronous client packs them.

    redis-py's asyncio connections pack every command in Python (redis-py issue 4176),
    which costs a few µs per call, more the more arguments a script takes. Mixed into the
    connection class of the clients `RedisBackend.from_url` builds. A command hiredis
    does not take (an argument of another type, or a client whose text encoding is not
    strict UTF-8) goes to redis-py's packer, which packs it or says why not.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        encoder = self.encoder
        if (encoder.encoding, encoder.encoding_errors) == _UTF8:
            name = args[0]
            # A command name of several words ("SCRIPT LOAD") goes as separate arguments.
            if isinstance(name, str):
                words = tuple(name.encode().split())
            else:
                words = tuple(name.split()) if b" " in name else (name,)
            try:
                return [_pack_in_c(words + args[1:])]
            except TypeError:  # an argument of a type hiredis does not take
                pass
        return super().pack_command(*args)


#: The text encoding hiredis packs with, as redis-py's encoder names it by default.
_UTF8 = ("utf-8", "strict")


def _packing_in_c(
    connection_class: type[aioredis.connection.AbstractConnection],
) -> type[aioredis.connection.AbstractConnection]:
    """``connection_class`` with its commands packed by hiredis, if it is installed."""
    if _pack_in_c is None:  # pragma: no cover - the redis extra installs hiredis
        return connection_class
    return type(connection_class.__name__, (_PackedInC, connection_class), {})


class _WrongType(Exception):
    """The key holds another type than a hash: not a session record."""


if sys.version_info >= (3, 11):
    # redis.asyncio runs on asyncio only: one timer for all of a backend's calls.
    _Deadlines = Deadlines
else:  # pragma: no cover - Python 3.10, whose tasks cannot withdraw a cancellation

    class _Deadlines:
        def __init__(self, seconds: float) -> None:
            self.seconds = seconds

        async def run(self, command: Callable[[], Awaitable[R]]) -> R:
            with anyio.fail_after(self.seconds):
                return await command()


def _client_options(options: dict[str, Any]) -> dict[str, Any]:
    """A client's options, with redis-py's own socket timeouts off unless asked for.

    Every call of the backend is bounded as a whole by its ``timeout`` (connecting, pool
    waits and retries included), so redis-py's per-socket timeouts (5 s by default) add
    nothing but their cost: an extra task per command sent and a timer per reply read.
    A call cancelled by the backend's bound drops its connection (redis-py disconnects a
    connection whose read was interrupted), so no late reply is ever read as another's.
    """
    return {"socket_timeout": None, "socket_connect_timeout": None, **options}


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _field_name(raw: bytes) -> str:
    # Field names are ours (model field names, or the reserved ones); a damaged one still
    # decodes, and the serializer then ignores it.
    return raw.decode("utf-8", "surrogateescape")
