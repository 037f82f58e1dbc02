"""The protocols of a session store: `Backend`, and the optional `SessionLocks` and
`SessionIndex`.

A record is a flat mapping of field name to bytes (its format: `fastapi_session_deps._record`),
kept under a key (the hash of a session id) for a time-to-live. Backends know nothing of
models, JSON or HTTP; they never hold live objects, so no two requests can share one by
accident.

A `Backend`'s own methods map onto one round trip each on a networked store:

=================  =======================================================================
``get``            read a record, optionally pushing its expiry out (a sliding idle timeout)
``set``            create or replace a whole record
``update``         merge changed fields into a record *only if it still exists*, so that a
                   session destroyed by another request is not brought back by a late save
``delete``         remove a record, and say whether a live one was there
``replace_unchanged`` compare and set some fields (sealing values again); optional
``delete_expired`` delete expired records, for a store that keeps them (SQL); 0 elsewhere
``stats``          count the sessions and their users, for an operator; optional
``aclose``         release connections the backend owns
=================  =======================================================================

A store that can lock a session for ``concurrency="lock"`` also implements `SessionLocks`;
one that can list a user's sessions (``user_index=True``), `SessionIndex`. `ping` reads
from any store once, as a readiness check.

Every method raises :class:`~fastapi_session_deps.BackendUnavailable` when the store cannot
be reached or does not answer in time; no other exception may escape for a store fault.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import anyio

from .._record import MAX_RECORD_BYTES, facts_fields, owner_of, record_size

T = TypeVar("T")

__all__ = [
    "LOCK_TOMBSTONE_SECONDS",
    "MAX_RECORD_BYTES",
    "PING_KEY",
    "Backend",
    "EndBatch",
    "EndedRecord",
    "SessionIndex",
    "SessionLocks",
    "UserRecord",
    "ping",
    "record_size",
]


#: Seconds between attempts to take a busy lock: doubling from the first to the last.
LOCK_POLL_FIRST, LOCK_POLL_LAST = 0.002, 0.05
#: How long a store keeps a released token from taking its lock (`release_lock`): longer
#: than any attempt can sit in a paused store's queue and still matter, since a late lock
#: would only live ``lock_ttl`` anyway.
LOCK_TOMBSTONE_SECONDS = 300.0


class LockWaits:
    """Waits for session locks in a store that cannot tell a waiter when a lock is freed.

    A waiter tries at doubling intervals (`LOCK_POLL_FIRST` to `LOCK_POLL_LAST`). A
    backend may also call `released` when it frees a lock: the waiter of that lock that
    has waited longest then tries at once, so a lock passed between the requests of one
    process is not left idle until their next attempt, and the others keep their own pace
    (waking them all would have them all try at once, for one of them to win). A release
    by another process is seen at the next attempt. `RedisBackend` calls it and
    `SQLBackend` does not: measured in ``bench/locks.py``, the wake made Redis's
    hand-offs faster and those of SQLite and PostgreSQL slower.
    """

    def __init__(self) -> None:
        #: Per lock key: the events of its waiters asleep between attempts, oldest first.
        self._asleep: dict[str, deque[anyio.Event]] = {}

    async def acquire(self, key: str, attempt: Callable[[], Awaitable[bool]], wait: float) -> bool:
        """Try ``attempt`` until it takes ``key``'s lock or ``wait`` seconds have passed:
        at least once, however short the wait."""
        pause = LOCK_POLL_FIRST
        deadline = anyio.current_time() + wait
        # This waiter's place in the line, from its first failed try until it leaves: a
        # try at its own pace keeps it, and a wake that found the lock taken again puts
        # it first.
        place: anyio.Event | None = None
        line: deque[anyio.Event] | None = None
        try:
            while True:
                if await attempt():
                    return True
                left = deadline - anyio.current_time()
                if left <= 0:
                    return False
                if place is None or place.is_set():  # not in line: join it
                    woken = place is not None
                    place = anyio.Event()
                    line = self._asleep.setdefault(key, deque())
                    if woken:
                        line.appendleft(place)
                    else:
                        line.append(place)
                with anyio.move_on_after(min(pause, left)):
                    await place.wait()
                pause = min(pause * 2, LOCK_POLL_LAST)
        finally:
            if line is not None:
                if place is not None and not place.is_set():
                    line.remove(place)
                if not line and self._asleep.get(key) is line:
                    del self._asleep[key]

    def released(self, key: str) -> None:
        """``key``'s lock was released through this backend: its longest waiter tries now."""
        line = self._asleep.get(key)
        if line:
            line.popleft().set()


def backend_name(backend: Backend) -> str:
    """The name of a backend's public class (an `EncryptedBackend`'s variants included)."""
    return next(cls.__name__ for cls in type(backend).__mro__ if not cls.__name__.startswith("_"))


#: A progress report: records done so far, and the number expected.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StoreStats:
    """What `Backend.stats` counted.

    Attributes:
        live: sessions whose record is live.
        users: users with at least one live session, where sessions are bound to users
            (``user_index=True``); 0 when none are.
        top_users: the users with the most live sessions and how many, most first.
    """

    live: int
    users: int
    top_users: list[tuple[str, int]]

    @classmethod
    def of(cls, live: int, per_user: Mapping[str, int], top: int) -> StoreStats:
        """From the live count and each user's count (users with none left out)."""
        counted = {user: count for user, count in per_user.items() if count > 0}
        ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:top]
        return cls(live, len(counted), ranked)


class Backend(ABC):
    """Base class of session stores. Subclass it to add a store."""

    @abstractmethod
    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        """Return the record under ``key``, or ``None`` if there is none or it expired.

        Args:
            key: the record's key.
            ttl: when given, the record's expiry is reset to ``ttl`` seconds from now, in
                the same operation as the read.
        """

    @abstractmethod
    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        """Store ``fields`` as the whole record under ``key``, expiring in ``ttl`` seconds."""

    @abstractmethod
    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        """Merge into the record under ``key``, atomically, if it exists.

        Fields in ``changed`` are written, fields in ``removed`` are deleted, other fields are
        left as the store has them (another request may have written them meanwhile), and the
        expiry is pushed out to ``ttl`` seconds from now, never brought sooner: a request
        that loaded the session before another gave it a longer lifetime must not cut it
        short. With ``exact``, the expiry is set to ``ttl`` from now even if that is sooner
        (the request that changes a session's lifetime).

        Returns:
            ``True`` if the record existed and was updated; ``False`` if it did not exist (it
            expired or was deleted), in which case nothing was written.
        """

    @abstractmethod
    async def delete(self, key: str) -> bool | None:
        """Remove the record under ``key``; no error if there is none.

        Returns:
            Whether a live record was there, decided in the same atomic step as the
            deletion: a session moving to a new id (a log-in) goes only if its record was
            still live, so that no request in flight brings back a session another request
            ended. ``None`` if the store cannot tell; the move then goes ahead.
        """

    async def replace_unchanged(  # noqa: B027 - optional, a no-op by default
        self, key: str, replacements: Mapping[str, tuple[bytes, bytes]]
    ) -> None:
        """For each ``name: (old, new)``, write ``new`` if the record still holds ``old``
        there; leave the other fields, and the expiry, as they are. Atomic for the call.

        For `EncryptedBackend`, which seals values again with a new key: a value another
        request changed since it was read is never written back. A store without it (the
        default does nothing) keeps the values as they were sealed.
        """

    async def delete_expired(
        self, *, batch_size: int = 1000, progress: Progress | None = None
    ) -> int:
        """Delete the records that have expired, and return how many.

        For stores that keep expired records until something deletes them (`SQLBackend`);
        the others expire records by themselves (Redis's TTL, `MemoryBackend`'s sweep on
        every write) and have nothing to do here: 0.

        Args:
            batch_size: records deleted per statement.
            progress: called after each batch with the records deleted so far and the
                number expected (counted first), for a progress bar.
        """
        return 0

    async def stats(self, *, top: int = 10) -> StoreStats | None:
        """How many sessions the store holds, and for whom; ``None`` if it cannot tell.

        It reads the whole store (a count on SQL, a scan on Redis): for an operator's
        command or a metrics job, not for a request.

        Args:
            top: how many of the users with the most sessions to name.
        """
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release what the backend owns (connections, pools). Safe to call twice."""


class SessionLocks(ABC):
    """Per-session locks, for ``concurrency="lock"``: a backend that can lock implements this.

    A lock is held by a token, not by a task: it is taken when a request loads its session
    and released by the commit point. It expires after ``ttl`` seconds even if its holder
    never releases it (a crashed process), so no session can stay locked forever.
    """

    @abstractmethod
    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        """Take the lock of the record ``key`` for ``token``, waiting at most ``wait`` seconds.

        Returns:
            ``True`` once held (for ``ttl`` seconds at most); ``False`` if another holder
            kept it for the whole wait.
        """

    @abstractmethod
    async def release_lock(self, key: str, token: str) -> None:
        """Release the lock of ``key`` if ``token`` still holds it.

        If ``token`` does not hold it, make sure it never will, for at least
        `LOCK_TOMBSTONE_SECONDS`: its acquisition may still be in flight (it timed out
        against a paused store, which will run it later), and a lock taken then would have
        no one to release it.
        """


#: One of a user's sessions as `SessionIndex.index_list` gives it: the store key, the
#: record's fields (at least the library's `_record.LISTED_FIELDS` it has: a store may
#: hand back only those), and the seconds it has left.
UserRecord = tuple[str, dict[str, bytes], float]
#: One of a user's sessions `SessionIndex.index_end` ended: the store key, and what the
#: record's reserved fields said of it (`_record.FACT_FIELDS`), for its event.
EndedRecord = tuple[str, dict[str, bytes]]
#: What `SessionIndex.index_end_some` answers: the sessions it ended, and where to go on
#: from (``None``: none are left).
EndBatch = tuple[list[EndedRecord], str | None]


class SessionIndex(ABC):
    """An index of each user's sessions: a backend that can list and revoke a user's
    sessions implements this.

    The index names records; the records stay the truth. A listing reads the records the
    index names, and drops from the index those that are gone, so an index entry left
    behind by a fault (a record deleted, the index not yet told) is never listed, only
    pruned. The engine adds a session to the index *before* it writes the record, so a
    record with an owner is always in its owner's index.

    A user may have any number of sessions (an attacker who logged in a hundred thousand
    times is exactly whom "sign out everywhere" is for), so besides the three abstract
    methods there are bounded ones, each one store call of at most ``limit`` entries:
    `index_keys` and `index_page` page through the index, latest to expire first, and
    `index_end` ends a batch of sessions. Their defaults here are built on `index_list`,
    which reads every record at once; the built-in stores do each in one bounded call.
    """

    @abstractmethod
    async def index_add(self, user: str, key: str, *, ttl: float) -> None:
        """Add the record ``key`` to ``user``'s index, for at least ``ttl`` seconds (the
        record's time-to-live; called again when it is renewed)."""

    @abstractmethod
    async def index_remove(self, user: str, keys: Collection[str]) -> None:
        """Remove ``keys`` from ``user``'s index (their records are deleted, or moving)."""

    @abstractmethod
    async def index_list(self, user: str) -> list[UserRecord]:
        """The live records in ``user``'s index, in no particular order: each one's key,
        fields and seconds left. Entries whose record is gone are removed from the index."""

    async def index_keys(self, user: str, *, offset: int = 0, limit: int = 1000) -> list[str]:
        """Keys in ``user``'s index, the latest to expire first, from the ``offset``-th;
        at most ``limit``. No record is read: keys of records gone may be among them."""
        return [key for key, _, _ in await self.index_page(user, offset=offset, limit=limit)]

    async def index_page(
        self, user: str, *, offset: int = 0, limit: int = 100
    ) -> list[UserRecord]:
        """The live records in ``user``'s index, the latest to expire first, from the
        ``offset``-th entry; at most ``limit``."""
        records = sorted(await self.index_list(user), key=lambda record: -record[2])
        return records[offset : offset + limit]

    async def index_end_some(
        self, user: str, *, keep: Collection[str] = (), after: str | None = None, limit: int = 1000
    ) -> EndBatch:
        """End up to ``limit`` of ``user``'s sessions, any but those in ``keep`` (as
        `index_end` does); return them, and what to pass as ``after`` to go on: ``None``
        once none are left. Called again and again, it ends them all, each call reading
        no more than ``limit`` entries of the index (``after`` lets a store that walks its
        index by key go on where it stopped, rather than from the start).
        """
        keys = await self.index_keys(user, limit=limit + len(keep))
        batch = [key for key in keys if key not in keep][:limit]
        ended = await self.index_end(user, batch)
        return ended, "" if batch and len(keys) == limit + len(keep) else None

    async def index_end(self, user: str, keys: Collection[str]) -> list[EndedRecord]:
        """Delete the records among ``keys`` that are ``user``'s, and take every one of
        ``keys`` out of the index; return the records deleted: each one's key, and what
        its reserved fields said (`_record.FACT_FIELDS`), never its data."""
        wanted = set(keys)
        owned = [
            (key, facts_fields(fields))
            for key, fields, _ in await self.index_list(user)
            if key in wanted and owner_of(fields) == user
        ]
        store = cast("Backend", self)  # an index is always a store's
        for key, _ in owned:
            await store.delete(key)
        await self.index_remove(user, list(wanted))
        return owned


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``, for store calls of bounded size."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


#: The key a ping reads: shaped like a store key (a SHA-256 digest) but the digest of no
#: session id, so it is never there, on any store.
PING_KEY = hashlib.sha256(b"fastapi-session-deps: ping").hexdigest()


async def ping(backend: Backend) -> float:
    """Read from the store once, within its timeout, and return how long it took (s).

    The read is of a key no session has, through the same call a request makes, so it
    proves what a request needs: the store answers, in time.

    Raises:
        BackendUnavailable: the store did not answer in time, or refused.
        BackendError: it answered something that is not a store's answer.
    """
    started = time.perf_counter()
    await backend.get(PING_KEY)
    return time.perf_counter() - started
