"""`MemoryBackend`: records in this process's memory."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import re
import shlex
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import anyio

from .._record import facts_fields, owner_of
from ..exceptions import ConfigurationError
from .base import (
    LOCK_TOMBSTONE_SECONDS,
    Backend,
    EndBatch,
    EndedRecord,
    Progress,
    SessionIndex,
    SessionLocks,
    StoreStats,
    UserRecord,
)

__all__ = ["MemoryBackend"]

logger = logging.getLogger("fastapi_session_deps")

#: How many of the least recently used records one write looks at for expiry.
SWEEP_BATCH = 16
#: The default bound on the number of records: about 10 MB of typical sessions (see the
#: design notes for the measured bytes per session).
DEFAULT_MAX_SESSIONS = 10_000
#: Index entries without a record (a log-in whose write never came) tolerated before
#: every user's entries are pruned.
MAX_STRAY_ENTRIES = 1024


@dataclass(slots=True)
class _Holder:
    token: str
    expires_at: float
    released: anyio.Event


class MemoryBackend(Backend, SessionLocks, SessionIndex):
    """Session records in the memory of one process.

    For development, tests and single-process apps: the data is lost on restart and is not
    shared between worker processes (use `RedisBackend` for that). Constructed in a server
    started with several workers (``uvicorn --workers 2``, ``gunicorn -w 2``,
    ``WEB_CONCURRENCY=2``), it logs a warning: each worker would hold sessions of its own.

    It also provides the per-session locks of ``concurrency="lock"``, and the index of each
    user's sessions, within this process.

    Records are copied in and out as bytes, so requests never share live objects. Expired
    records are never returned; they are removed when read, and by a sweep of at most
    ``SWEEP_BATCH`` of the least recently used records on every write, so memory stays
    bounded without a background task. Every operation runs without awaiting, under a
    lock, so it is atomic with respect to other tasks and threads.

    Args:
        max_sessions: at most this many records are kept (10,000 by default, about 10 MB
            of typical sessions). Storing one more evicts the least recently *used* record:
            every read and write refreshes a record, so sessions in use survive a flood of
            new ones, and the first to go are those idle the longest. ``None`` for no bound.
        clock: monotonic time in seconds; tests may pass a fake one.
    """

    def __init__(
        self,
        *,
        max_sessions: int | None = DEFAULT_MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions is not None and max_sessions < 1:
            raise ConfigurationError("max_sessions must be a positive number or None.")
        workers = serving_workers(sys.argv, os.environ)
        if workers > 1:
            logger.warning(
                "MemoryBackend in a server with %d worker processes: each worker keeps "
                "sessions of its own, so a visitor's requests see different sessions. Use "
                "RedisBackend (or another shared store) with several workers.",
                workers,
                extra={"event": "memory_store_workers", "store": "MemoryBackend"},
            )
        self.max_sessions = max_sessions
        self._clock = clock
        # A record is its fields (a dict of str to bytes, which the garbage collector never
        # tracks) and its expiry, in two tables rather than in an object per record: a
        # store of many sessions adds nothing for the collector to walk.
        self._records: OrderedDict[str, dict[str, bytes]] = OrderedDict()
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._holders: dict[str, _Holder] = {}
        #: Tokens released before they held their lock, with when to forget them.
        self._given_up: OrderedDict[str, float] = OrderedDict()
        #: Each user's store keys, with the time until which each entry is kept even if its
        #: record is not (yet) there; and each key's user, so that an entry goes with its
        #: record (evicted, expired or deleted): the index is never larger than the store.
        self._users: dict[str, dict[str, float]] = {}
        self._owner_of: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MemoryBackend(max_sessions={self.max_sessions!r})"

    def __len__(self) -> int:
        """The number of records held, expired ones not yet swept included."""
        return len(self._records)

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        with self._lock:
            now = self._clock()
            fields = self._live(key, now)
            if fields is None:
                return None
            if ttl is not None:
                self._expiry[key] = now + ttl
            self._records.move_to_end(key)  # in use: the last to be evicted
            return dict(fields)

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            self._records[key] = dict(fields)
            self._expiry[key] = now + ttl
            self._records.move_to_end(key)
            if self.max_sessions is not None:
                while len(self._records) > self.max_sessions:
                    self._forget(next(iter(self._records)))

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            fields = self._live(key, now)
            if fields is None:
                return False
            fields.update(changed)
            for name in removed:
                fields.pop(name, None)
            until = now + ttl
            if exact or self._expiry[key] < until:
                self._expiry[key] = until
            self._records.move_to_end(key)
            return True

    async def replace_unchanged(
        self, key: str, replacements: Mapping[str, tuple[bytes, bytes]]
    ) -> None:
        with self._lock:
            fields = self._live(key, self._clock())
            if fields is not None:
                for name, (old, new) in replacements.items():
                    if fields.get(name) == old:
                        fields[name] = new

    async def delete(self, key: str) -> bool:
        with self._lock:
            if key not in self._records:
                return False
            live = self._expiry[key] > self._clock()
            self._forget(key)
            return live

    async def delete_expired(
        self, *, batch_size: int = 1000, progress: Progress | None = None
    ) -> int:
        """Delete every expired record now, rather than a few per write; return how many."""
        with self._lock:
            now = self._clock()
            expired = [key for key, until in self._expiry.items() if until <= now]
            for key in expired:
                self._forget(key)
        if progress is not None:
            progress(len(expired), len(expired))
        return len(expired)

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        with anyio.move_on_after(wait):
            while True:
                now = self._clock()
                if token in self._given_up:
                    return False  # released before it was taken: its caller gave up
                holder = self._holders.get(key)
                if holder is None or holder.expires_at <= now:
                    self._holders[key] = _Holder(token, now + ttl, anyio.Event())
                    return True
                # Wake on release, or when the holder's time runs out (it may have died).
                with anyio.move_on_after(holder.expires_at - now):
                    await holder.released.wait()
        return False

    async def release_lock(self, key: str, token: str) -> None:
        holder = self._holders.get(key)
        if holder is not None and holder.token == token:
            del self._holders[key]
            holder.released.set()
            return
        # Not held: its acquisition may still be waiting (in a session service whose client
        # timed out). Remember the token, so that it never takes the lock.
        now = self._clock()
        while self._given_up and next(iter(self._given_up.values())) <= now:
            self._given_up.popitem(last=False)
        self._given_up[token] = now + LOCK_TOMBSTONE_SECONDS

    async def index_add(self, user: str, key: str, *, ttl: float) -> None:
        with self._lock:
            now = self._clock()
            self._users.setdefault(user, {})[key] = now + ttl
            self._owner_of[key] = user
            if len(self._owner_of) - len(self._records) >= MAX_STRAY_ENTRIES:
                for other in list(self._users):
                    self._prune(other, now)

    async def index_remove(self, user: str, keys: Collection[str]) -> None:
        with self._lock:
            for key in keys:
                self._unindex(user, key)

    async def index_list(self, user: str) -> list[UserRecord]:
        with self._lock:
            now = self._clock()
            self._prune(user, now)
            found: list[UserRecord] = []
            for key in self._users.get(user, {}):
                fields = self._live(key, now)
                if fields is not None:
                    found.append((key, dict(fields), self._expiry[key] - now))
            return found

    async def index_keys(self, user: str, *, offset: int = 0, limit: int = 1000) -> list[str]:
        with self._lock:
            return self._ranked(user, offset, limit)

    async def index_page(
        self, user: str, *, offset: int = 0, limit: int = 100
    ) -> list[UserRecord]:
        with self._lock:
            now = self._clock()
            found: list[UserRecord] = []
            for key in self._ranked(user, offset, limit):
                fields = self._live(key, now)
                if fields is not None:
                    found.append((key, dict(fields), self._expiry[key] - now))
            return found

    async def index_end_some(
        self, user: str, *, keep: Collection[str] = (), after: str | None = None, limit: int = 1000
    ) -> EndBatch:
        """In the index's own order (no ranking needed: what it ends leaves the index)."""
        with self._lock:
            others = (key for key in self._users.get(user, {}) if key not in keep)
            keys = list(itertools.islice(others, limit))
        return await self.index_end(user, keys), "" if len(keys) == limit else None

    async def index_end(self, user: str, keys: Collection[str]) -> list[EndedRecord]:
        with self._lock:
            now = self._clock()
            ended: list[EndedRecord] = []
            for key in keys:
                fields = self._live(key, now)
                if fields is not None and owner_of(fields) == user:
                    self._forget(key)
                    ended.append((key, facts_fields(fields)))
                else:
                    self._unindex(user, key)
            return ended

    def _ranked(self, user: str, offset: int, limit: int) -> list[str]:
        """``user``'s keys, the latest to expire first, from ``offset`` (under the lock)."""
        entries = self._users.get(user, {})
        wanted = offset + limit
        if wanted >= len(entries):
            ranked = sorted(entries, key=entries.__getitem__, reverse=True)
        else:  # a page of a long index: no need to sort all of it
            ranked = heapq.nlargest(wanted, entries, key=entries.__getitem__)
        return ranked[offset:]

    async def stats(self, *, top: int = 10) -> StoreStats:
        with self._lock:
            now = self._clock()
            live = {key for key, until in self._expiry.items() if until > now}
            per_user = {
                user: sum(1 for key in keys if key in live) for user, keys in self._users.items()
            }
        return StoreStats.of(len(live), per_user, top)

    def _prune(self, user: str, now: float) -> None:
        """Forget ``user``'s entries whose time is up and whose record is gone. (An entry
        still in its time may be a record about to be written: it is kept.) Entries of
        records that went are gone already: this finds those whose record never came."""
        due = [key for key, until in self._users.get(user, {}).items() if until <= now]
        for key in due:
            if self._live(key, now) is None:
                self._unindex(user, key)

    def _unindex(self, user: str, key: str) -> None:
        """Take ``key`` out of ``user``'s index (under the lock)."""
        keys = self._users.get(user)
        if keys is not None and keys.pop(key, None) is not None:
            if self._owner_of.get(key) == user:
                del self._owner_of[key]
            if not keys:
                del self._users[user]

    def _forget(self, key: str) -> None:
        """Drop the record ``key``, which is held, and its index entry (under the lock)."""
        del self._records[key], self._expiry[key]
        user = self._owner_of.get(key)
        if user is not None:
            self._unindex(user, key)

    def _live(self, key: str, now: float) -> dict[str, bytes] | None:
        fields = self._records.get(key)
        if fields is not None and self._expiry[key] <= now:
            self._forget(key)
            return None
        return fields

    def _sweep(self, now: float) -> None:
        # Records are kept in order of last use; with one idle timeout for all, that is
        # also the order of expiry, so the expired ones gather at the front. A session
        # given a longer lifetime of its own (`set_lifetime`) can hold the sweep at the
        # front until it is used or expires: expired records behind it are never read
        # (`_live` checks), and wait for a later sweep or eviction, within max_sessions.
        records, expiry = self._records, self._expiry
        for _ in range(SWEEP_BATCH):
            if not records:
                return
            key = next(iter(records))
            if expiry[key] > now:
                return
            self._forget(key)


_WORKERS_OPTION = re.compile(r"^(?:--workers=?|-w)(\d*)$")


def serving_workers(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """How many worker processes the server this process runs in was started with, as far
    as its command line (which worker processes inherit) and environment tell; 1 if unknown.

    Reads uvicorn's and gunicorn's ``--workers N`` / ``-w N`` and ``WEB_CONCURRENCY``
    (which both read), and ``GUNICORN_CMD_ARGS``.
    """
    arguments = [*argv, *shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))]
    counts = [_int(environ.get("WEB_CONCURRENCY"))]
    for index, argument in enumerate(arguments):
        match = _WORKERS_OPTION.match(argument)
        if match is not None:
            value = match[1] or next(iter(arguments[index + 1 :]), None)
            counts.append(_int(value))
    return max(counts)


def _int(value: str | None) -> int:
    return int(value) if value is not None and value.isdigit() else 1
