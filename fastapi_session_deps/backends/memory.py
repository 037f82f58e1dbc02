"""`MemoryBackend`: records in this process's memory."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import anyio

from ..exceptions import ConfigurationError
from .base import Backend, SessionLocks

__all__ = ["MemoryBackend"]

#: How many of the least recently used records one write looks at for expiry.
SWEEP_BATCH = 16


@dataclass
class _Entry:
    fields: dict[str, bytes]
    expires_at: float


@dataclass
class _Holder:
    token: str
    expires_at: float
    released: anyio.Event


class MemoryBackend(Backend, SessionLocks):
    """Session records in the memory of one process.

    For development, tests and single-process apps: the data is lost on restart and is not
    shared between worker processes (use `RedisBackend` for that).

    It also provides the per-session locks of ``concurrency="lock"``, within this process.

    Records are copied in and out as bytes, so requests never share live objects. Expired
    records are never returned; they are removed when read, and by a sweep of at most
    ``SWEEP_BATCH`` of the least recently used records on every write, so memory stays
    bounded without a background task. Every operation runs without awaiting, under a
    lock, so it is atomic with respect to other tasks and threads.

    Args:
        max_sessions: at most this many records are kept; storing one more evicts the least
            recently used record. ``None`` for no bound.
        clock: monotonic time in seconds; tests may pass a fake one.
    """

    def __init__(
        self, *, max_sessions: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_sessions is not None and max_sessions < 1:
            raise ConfigurationError("max_sessions must be a positive number or None.")
        self.max_sessions = max_sessions
        self._clock = clock
        self._records: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._holders: dict[str, _Holder] = {}

    def __repr__(self) -> str:
        return f"MemoryBackend(max_sessions={self.max_sessions!r})"

    def __len__(self) -> int:
        """The number of records held, expired ones not yet swept included."""
        return len(self._records)

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            if entry is None:
                return None
            if ttl is not None:
                entry.expires_at = now + ttl
                self._records.move_to_end(key)
            return dict(entry.fields)

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            self._records[key] = _Entry(dict(fields), now + ttl)
            self._records.move_to_end(key)
            if self.max_sessions is not None:
                while len(self._records) > self.max_sessions:
                    self._records.popitem(last=False)

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
    ) -> bool:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            entry = self._live(key, now)
            if entry is None:
                return False
            entry.fields.update(changed)
            for name in removed:
                entry.fields.pop(name, None)
            entry.expires_at = now + ttl
            self._records.move_to_end(key)
            return True

    async def delete(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        with anyio.move_on_after(wait):
            while True:
                now = self._clock()
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

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._records.get(key)
        if entry is not None and entry.expires_at <= now:
            del self._records[key]
            return None
        return entry

    def _sweep(self, now: float) -> None:
        # Records are kept in order of last use; with one idle timeout for all, that is
        # also the order of expiry, so the expired ones gather at the front.
        for _ in range(SWEEP_BATCH):
            if not self._records:
                return
            key, entry = next(iter(self._records.items()))
            if entry.expires_at > now:
                return
            del self._records[key]
