"""The session locks of ``concurrency="lock"``, as the engine takes and releases them.

A lock belongs to a token, not to a task: a request takes it when it loads its session and
the commit point releases it. A release the store could not take (it was unreachable) is
remembered and retried before this process next takes the same lock; otherwise every
request on that session would wait ``lock_timeout``, then 503, until ``lock_ttl`` ran out.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from .backends.base import SessionLocks
from .exceptions import BackendUnavailable, SessionBusy
from .policy import SessionPolicy

__all__ = ["HeldLock", "LockKeeper"]

logger = logging.getLogger("fastapi_session_deps")

#: At most this many failed lock releases are remembered for a retry.
MAX_UNRELEASED = 1024


@dataclass(frozen=True)
class HeldLock:
    """The session lock a request holds, and the keeper that took it."""

    keeper: LockKeeper
    key: str
    token: str

    async def release(self) -> None:
        """Release it. Never raises for a store fault (see `LockKeeper.release`)."""
        await self.keeper.release(self)


class LockKeeper:
    """Takes and releases one engine's session locks in a store that has them.

    Args:
        locks: the store's locks (the store itself, or its instruments).
        policy: the session policy (``lock_timeout`` and ``lock_ttl``).
        log_extra: the fields of a log record about the session under a key.
    """

    def __init__(
        self,
        locks: SessionLocks,
        policy: SessionPolicy,
        log_extra: Callable[[str, str], dict[str, str]],
    ) -> None:
        self.locks = locks
        self.policy = policy
        self._log_extra = log_extra
        #: Locks whose release failed (the store was unreachable): key -> (lock, until).
        self._unreleased: dict[str, tuple[HeldLock, float]] = {}

    async def acquire(self, key: str) -> HeldLock:
        """Take the lock of the record ``key``, waiting at most ``lock_timeout``.

        Raises:
            SessionBusy: another holder kept it for the whole wait.
            BackendUnavailable: the store could not be reached.
        """
        await self._retry_release(key)
        lock = HeldLock(self, key, secrets.token_urlsafe(16))
        policy = self.policy
        try:
            held = await self.locks.acquire_lock(
                key, lock.token, ttl=policy.lock_ttl, wait=policy.lock_timeout
            )
        except BaseException:
            # A store that timed out may still have applied the attempt: free the lock
            # now, rather than leave every later request waiting for its TTL.
            with anyio.CancelScope(shield=True):
                await self.release(lock)
            raise
        if held:
            return lock
        # Covered by the lock-timeout tests; the coverage tracer loses this frame once a
        # cancelled wait inside acquire_lock has resumed it.
        raise SessionBusy(  # pragma: no cover
            f"another request held this session for {policy.lock_timeout:g} s"
        )

    async def release(self, lock: HeldLock) -> None:
        """Release ``lock``; if the store cannot be reached, remember to try again."""
        try:
            await self.locks.release_lock(lock.key, lock.token)
        except BackendUnavailable as exc:
            # Left as it is, the lock would keep every request on this session waiting for
            # lock_timeout, then 503, until lock_ttl runs out. The next request of this
            # process for the session releases it first.
            logger.warning(
                "Could not release a session lock (retried on next use): %s",
                exc,
                extra=self._log_extra("lock_release_failed", lock.key),
            )
            self._unreleased[lock.key] = (lock, time.monotonic() + self.policy.lock_ttl)
            while len(self._unreleased) > MAX_UNRELEASED:
                del self._unreleased[next(iter(self._unreleased))]

    async def _retry_release(self, key: str) -> None:
        pending = self._unreleased.pop(key, None)
        if pending is not None and pending[1] > time.monotonic():
            await self.release(pending[0])
