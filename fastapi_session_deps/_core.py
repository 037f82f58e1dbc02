"""The session engine shared by the typed API and the `request.session` middleware.

One request's session goes through three steps:

1. **load** (lazily, the first time a dependency asks for it): verify the token the
   frontend carries, read the record from the backend, check its absolute age, decode it;
   anything missing, expired, tampered with or undecodable gives a new, empty session;
2. the route reads and changes the data;
3. **commit** (in the middleware, when the response starts, before the status line goes
   out): work out which fields changed by comparing their encodings with the ones loaded,
   write just those (or the whole record for a new or regenerated session), then add or
   clear the cookie.

Idle expiry is the store's TTL, refreshed together with the cookie only when due: once the
token in hand is more than a tenth of the idle timeout old. That keeps an unchanged session
at a single store read per request, with no write and no Set-Cookie, while both the cookie
and the record still slide forward with activity.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, Literal, TypeVar

import anyio
from pydantic_core import to_json
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import Scope

from ._faults import faults
from ._time import to_seconds
from .backends.base import MAX_RECORD_BYTES, Backend, SessionLocks, record_size
from .exceptions import (
    BackendUnavailable,
    ConfigurationError,
    InvalidSessionData,
    MissingMiddlewareError,
    SessionBusy,
    SessionError,
    SessionTooLarge,
)
from .frontends.base import Frontend
from .serializers import RESERVED_PREFIX, Serializer
from .signing import VerifiedToken, new_session_id, store_key

T = TypeVar("T")

logger = logging.getLogger("fastapi_session_deps")

#: Reserved field holding the session's creation time (seconds since the epoch).
CREATED_FIELD = RESERVED_PREFIX + "created"
#: The cookie and the record's expiry are renewed once a token is this share of the idle
#: timeout old, so a visitor is logged out after between 90 % and 100 % of it idle.
REISSUE_FRACTION = 0.1
#: A token stamped more than this many seconds in the future (servers whose clocks
#: disagree) is re-issued at once, so it slides like any other.
MAX_CLOCK_SKEW = 60.0
#: At most this many failed lock releases are remembered for a retry.
MAX_UNRELEASED = 1024

BackendErrorPolicy = Literal["fail", "anonymous"]
ConcurrencyPolicy = Literal["merge", "lock"]


@dataclass(eq=False)
class SessionState(Generic[T]):
    """Everything the engine knows about one request's session."""

    data: T
    #: Fields as they were loaded (or as a new session's data encodes); the baseline
    #: against which changes are found at commit.
    snapshot: dict[str, bytes]
    created_at: float
    #: The stored session's id and key; ``None`` for a session not in the store.
    session_id: str | None = None
    key: str | None = None
    #: The cookie (and the record's expiry) are to be renewed at commit.
    reissue: bool = False
    regenerate: bool = False
    #: Key of a record that `destroy` asked to delete at commit.
    destroyed_key: str | None = None
    destroyed: bool = False
    #: Not backed by the store (it was unreachable and the policy is "anonymous").
    detached: bool = False
    #: Loaded by a read-only dependency: never saved, never locked.
    readonly: bool = False
    #: The session lock this request holds (``concurrency="lock"``): its key and token.
    lock_key: str | None = None
    lock_token: str | None = None


class RequestSlot:
    """What the middleware puts in the ASGI scope: the request's session, once loaded."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: SessionState[object] | None = None


def add_vary(headers: MutableHeaders, name: str) -> None:
    """Add ``name`` to the response's ``Vary`` header unless it is already covered."""
    present = b",".join(value for key, value in headers.raw if key == b"vary")
    if not present:
        headers.append("vary", name)
        return
    tokens = {token.strip() for token in present.decode("latin-1").lower().split(",")}
    if name.lower() not in tokens and "*" not in tokens:
        headers.add_vary_header(name)


def _no_store(headers: MutableHeaders) -> None:
    """Keep shared caches from storing a response that hands out a session token."""
    current = headers.get("cache-control", "").lower()
    if "private" not in current and "no-store" not in current:
        headers["cache-control"] = "private, no-store"


class SessionCore(Generic[T]):
    """Frontend + backend + serializer + expiry policy: loads and commits sessions."""

    def __init__(
        self,
        serializer: Serializer[T],
        *,
        frontend: Frontend,
        backend: Backend,
        idle_timeout: float | timedelta = 1800,
        absolute_timeout: float | timedelta | None = None,
        concurrency: ConcurrencyPolicy = "merge",
        on_backend_error: BackendErrorPolicy = "fail",
        lock_timeout: float = 5.0,
        lock_ttl: float = 30.0,
        max_record_bytes: int | None = MAX_RECORD_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(frontend, Frontend):
            raise ConfigurationError(
                f"frontend must be a Frontend such as CookieFrontend(...), not {frontend!r}."
            )
        if not isinstance(backend, Backend):
            raise ConfigurationError(
                f"backend must be a Backend such as MemoryBackend(), not {backend!r}."
            )
        idle = to_seconds(idle_timeout, "idle_timeout")
        absolute = (
            None if absolute_timeout is None else to_seconds(absolute_timeout, "absolute_timeout")
        )
        if absolute is not None and absolute < idle:
            raise ConfigurationError(
                f"absolute_timeout ({absolute:g} s) is shorter than idle_timeout ({idle:g} s), "
                "so the idle timeout could never apply: raise absolute_timeout, lower "
                "idle_timeout, or pass absolute_timeout=None."
            )
        if concurrency not in ("merge", "lock"):
            raise ConfigurationError(f"concurrency={concurrency!r}: use 'merge' or 'lock'.")
        if concurrency == "lock" and not isinstance(backend, SessionLocks):
            raise ConfigurationError(
                f"concurrency='lock' needs a backend with session locks (MemoryBackend, "
                f"RedisBackend); {type(backend).__name__} has none. Use concurrency='merge'."
            )
        if on_backend_error not in ("fail", "anonymous"):
            raise ConfigurationError(
                f"on_backend_error={on_backend_error!r}: use 'fail' (a 503) or 'anonymous'."
            )
        if max_record_bytes is not None and not (
            isinstance(max_record_bytes, int) and max_record_bytes > 0
        ):
            raise ConfigurationError(
                f"max_record_bytes={max_record_bytes!r}: a positive number of bytes, or None."
            )
        self.serializer = serializer
        self.frontend = frontend
        self.backend = backend
        self.idle_timeout = idle
        self.absolute_timeout = absolute
        self.concurrency: ConcurrencyPolicy = concurrency
        self.on_backend_error: BackendErrorPolicy = on_backend_error
        self.locks = backend if isinstance(backend, SessionLocks) else None
        self.lock_timeout = to_seconds(lock_timeout, "lock_timeout")
        self.lock_ttl = to_seconds(lock_ttl, "lock_ttl")
        self.max_record_bytes = max_record_bytes
        self.clock = clock
        #: Locks whose release failed (the store was unreachable): key -> (token, until).
        self._unreleased: dict[str, tuple[str, float]] = {}
        self.scope_key = f"fastapi_session_deps.{id(self):x}"
        #: The sliding lifetime: the idle timeout, or the frontend's shorter token lifetime
        #: (a cookie's max_age), since a client drops its token after that anyway.
        self.lifetime = idle if frontend.max_age is None else min(idle, frontend.max_age)
        self._reissue_after = max(self.lifetime, 0) * REISSUE_FRACTION

    # -- load ------------------------------------------------------------------------------

    def slot(self, connection: HTTPConnection) -> RequestSlot:
        """Return the request's slot, which only the middleware creates."""
        slot = connection.scope.get(self.scope_key)
        if not isinstance(slot, RequestSlot):
            raise MissingMiddlewareError(
                "This app has no session middleware, so sessions could never be saved. Add "
                "`app.add_middleware(sessions.middleware)` after creating the app "
                "(`sessions` being your SessionManager)."
            )
        return slot

    def attach(self, state: SessionState[T]) -> None:
        """Link ``state.data`` back to ``state``; a hook for the public layers."""

    def new_state(self, *, detached: bool = False, readonly: bool = False) -> SessionState[T]:
        """Return the state of a new, empty session."""
        data = self.serializer.new()
        return SessionState(
            data,
            self.serializer.dump(data),
            created_at=self.clock(),
            detached=detached,
            readonly=readonly,
        )

    async def load(self, connection: HTTPConnection, *, readonly: bool = False) -> SessionState[T]:
        """Return the request's session state, loading it from the store.

        Raises:
            BackendUnavailable: the store could not be read.
            SessionBusy: ``concurrency="lock"`` and the lock stayed taken.
        """
        return await self.load_token(self.frontend.read(connection), readonly=readonly)

    async def load_token(
        self, token: VerifiedToken | None, *, readonly: bool = False
    ) -> SessionState[T]:
        """Return the state of the session ``token`` names, or a new one.

        With ``concurrency="lock"``, a writable load first takes the session's lock, which
        the request holds until its commit (or its end). With
        ``on_backend_error="anonymous"``, an unreachable store gives a new session that is
        never saved, instead of an error.

        Raises:
            BackendUnavailable: the store could not be read (policy ``"fail"``).
            SessionBusy: the lock stayed taken for all of ``lock_timeout``.
        """
        try:
            return await self._load_token(token, readonly=readonly)
        except BackendUnavailable as exc:
            if self.on_backend_error != "anonymous":
                raise
            faults.report("Session store unavailable; going on without a session", exc)
            return self.new_state(detached=True, readonly=readonly)

    async def _load_token(self, token: VerifiedToken | None, *, readonly: bool) -> SessionState[T]:
        if token is None or self.clock() - token.issued_at > self.lifetime:
            # No token, or one older than any client may keep it (its Max-Age ran out).
            return self.new_state(readonly=readonly)
        key = token.key
        lock_token = None
        if self.concurrency == "lock" and not readonly:
            lock_token = await self._acquire(key)
        try:
            state = await self._restore(token, key)
        except BaseException:
            if lock_token is not None:
                with anyio.CancelScope(shield=True):
                    await self._release_quietly(key, lock_token)
            raise
        if state is None:
            if lock_token is not None:
                await self._release_quietly(key, lock_token)
            return self.new_state(readonly=readonly)
        state.readonly = readonly
        if lock_token is not None:
            state.lock_key, state.lock_token = key, lock_token
        return state

    async def _acquire(self, key: str) -> str:
        assert self.locks is not None  # noqa: S101 - checked in __init__
        await self._retry_release(key)
        lock_token = secrets.token_urlsafe(16)
        try:
            held = await self.locks.acquire_lock(
                key, lock_token, ttl=self.lock_ttl, wait=self.lock_timeout
            )
        except BaseException:
            # A store that timed out may still have applied the attempt: free the lock
            # now, rather than leave every later request waiting for its TTL.
            with anyio.CancelScope(shield=True):
                await self._release_quietly(key, lock_token)
            raise
        if held:
            return lock_token
        # Covered by the lock-timeout tests; the coverage tracer loses this frame once a
        # cancelled wait inside acquire_lock has resumed it.
        raise SessionBusy(  # pragma: no cover
            f"another request held this session for {self.lock_timeout:g} s"
        )

    async def release(self, state: SessionState[T]) -> None:
        """Release the session lock ``state`` holds, if any. Never raises for a store fault:
        the lock's own expiry frees it then."""
        key, lock_token = state.lock_key, state.lock_token
        if key is None or lock_token is None or self.locks is None:
            return
        state.lock_key = state.lock_token = None
        await self._release_quietly(key, lock_token)

    async def _release_quietly(self, key: str, lock_token: str) -> None:
        """Release a lock; if the store cannot be reached, remember to try again."""
        assert self.locks is not None  # noqa: S101 - only called with locks
        try:
            await self.locks.release_lock(key, lock_token)
        except BackendUnavailable as exc:
            # Left as it is, the lock would keep every request on this session waiting for
            # lock_timeout, then 503, until lock_ttl runs out. The next request of this
            # process for the session releases it first.
            logger.warning("Could not release a session lock (retried on next use): %s", exc)
            self._unreleased[key] = (lock_token, time.monotonic() + self.lock_ttl)
            while len(self._unreleased) > MAX_UNRELEASED:
                del self._unreleased[next(iter(self._unreleased))]

    async def _retry_release(self, key: str) -> None:
        pending = self._unreleased.pop(key, None)
        if pending is not None and pending[1] > time.monotonic():
            await self._release_quietly(key, pending[0])

    def make_writable(self, state: SessionState[T]) -> None:
        """Let a session loaded read-only be saved after all.

        Raises:
            SessionError: under ``concurrency="lock"`` a stored session read without its
                lock cannot become writable.
        """
        if not state.readonly:
            return
        if self.concurrency == "lock" and state.key is not None:
            raise SessionError(
                "This session was loaded read-only (without its lock), so it cannot be "
                "changed in the same request: use the writable dependency throughout, or "
                "read-only throughout."
            )
        state.readonly = False

    async def _restore(self, token: VerifiedToken, key: str) -> SessionState[T] | None:
        now = self.clock()
        age = now - token.issued_at
        reissue = token.rotated or age >= self._reissue_after or age < -MAX_CLOCK_SKEW
        fields = await self.backend.get(key, ttl=self.lifetime if reissue else None)
        if fields is None:
            return None
        size = record_size(fields)
        if self.max_record_bytes is not None and size > self.max_record_bytes:
            # Never written by this library (its commit refuses it): no session, rather
            # than a request that fails for as long as the record lives.
            logger.warning(
                "Discarding a session record of %d bytes, over max_record_bytes=%d",
                size,
                self.max_record_bytes,
            )
            await self.backend.delete(key)
            return None
        try:
            created_at = float(fields[CREATED_FIELD])
            if not math.isfinite(created_at):
                raise ValueError("creation time is not a finite number")
            data = self.serializer.load(fields)
        except (KeyError, ValueError) as exc:
            # Written by an older model or damaged: drop it, so this is logged once and the
            # visitor simply starts afresh.
            reason = exc if isinstance(exc, InvalidSessionData) else "no valid creation time"
            logger.warning("Discarding an undecodable session record: %s", reason)
            await self.backend.delete(key)
            return None
        if self.absolute_timeout is not None and now - created_at >= self.absolute_timeout:
            await self.backend.delete(key)
            return None
        return SessionState(
            data,
            snapshot=fields,
            created_at=created_at,
            session_id=token.session_id,
            key=key,
            reissue=reissue,
        )

    # -- commit ----------------------------------------------------------------------------

    def remaining(self, created_at: float, now: float) -> float:
        """Seconds a session created at ``created_at`` may live from ``now`` if left idle."""
        if self.absolute_timeout is None:
            return self.lifetime
        return min(self.lifetime, created_at + self.absolute_timeout - now)

    async def commit(
        self, state: SessionState[T], headers: MutableHeaders, status: int, scope: Scope
    ) -> None:
        """Save what the request changed and set or clear the cookie, before the response starts.

        Nothing is saved for a 5xx response: the route failed, so its half-made changes must
        not stick. 4xx responses are saved (a failed-login counter must count).

        Raises:
            BackendUnavailable: the store could not be written.
        """
        add_vary(headers, self.frontend.vary)
        try:
            await self._save(state, headers, status, scope)
        finally:
            await self.release(state)

    async def _save(
        self, state: SessionState[T], headers: MutableHeaders, status: int, scope: Scope
    ) -> None:
        if state.detached:
            return
        await self.honour_destroy(state)
        if status >= 500:
            if state.destroyed_key is not None:
                self._clear(headers, scope)
            return
        fields, changed, removed = self._changes(state)
        if state.readonly:
            if changed or removed:
                logger.warning("A read-only session was changed; the change is not saved")
            return
        now = self.clock()
        ttl = self.remaining(state.created_at, now)

        if ttl <= 0:
            # No time left: the absolute timeout ran out while this request ran, or the
            # session's lifetime is zero (a cookie max_age of 0 or less, as Starlette
            # allows). Nothing is kept; a new session's cookie is sent already expired, as
            # Starlette sends it, so the client learns of it and drops it at once.
            if state.key is not None:
                await self.backend.delete(state.key)
            if state.key is None and (changed or removed):
                self._send(headers, new_session_id(), now, ttl, scope)
            elif state.key is not None or state.destroyed:
                self._clear(headers, scope)
            return

        if state.key is None or state.regenerate:
            if state.key is None and not (changed or removed):
                if state.destroyed:
                    self._clear(headers, scope)
                return
            # A new session, or a stored one under a new id: write the whole record.
            self._check_size(fields, state.created_at)
            try:
                session_id = await self._write_new(fields, state.created_at, ttl)
            except BackendUnavailable as exc:
                if state.key is not None or self.on_backend_error != "anonymous":
                    raise
                # "anonymous": a visitor the store cannot take goes on without a session.
                faults.report("Session store unavailable; a new session was not stored", exc)
                return
            if state.key is not None:
                await self.backend.delete(state.key)
            self._send(headers, session_id, now, ttl, scope)
            return

        if changed or removed:
            self._check_size(fields, state.created_at)
            if not await self.backend.update(state.key, changed, removed, ttl=ttl):
                # Destroyed or expired meanwhile, or moved to a new id by a log-in in
                # another request: not brought back. The cookie is left alone, since the
                # browser may already hold that log-in's new one.
                logger.info("Session ended by another request; this request's changes dropped")
                return
        if state.reissue:
            assert state.session_id is not None  # noqa: S101 - set together with key
            self._send(headers, state.session_id, now, ttl, scope)

    async def honour_destroy(self, state: SessionState[T]) -> None:
        """Delete the record `destroy` ended, even if the route failed after it (a 5xx)."""
        if state.destroyed_key is not None:
            await self.backend.delete(state.destroyed_key)

    def _check_size(self, fields: dict[str, bytes], created_at: float) -> None:
        """Refuse a record over ``max_record_bytes``, counted as it would be stored."""
        if self.max_record_bytes is None:
            return
        size = record_size(fields) + len(CREATED_FIELD) + len(to_json(created_at))
        if size > self.max_record_bytes:
            raise SessionTooLarge(size, self.max_record_bytes)

    def _send(
        self, headers: MutableHeaders, session_id: str, now: float, ttl: float, scope: Scope
    ) -> None:
        # Max-Age rounds up, so a session with 0.5 s left is not dropped by the client at
        # once; the server-side expiry stays exact.
        max_age = math.ceil(ttl) if ttl > 0 else math.floor(ttl)
        self.frontend.write(headers, session_id, issued_at=int(now), max_age=max_age, scope=scope)
        _no_store(headers)

    def _clear(self, headers: MutableHeaders, scope: Scope) -> None:
        self.frontend.clear(headers, scope=scope)
        _no_store(headers)

    def _changes(
        self, state: SessionState[T]
    ) -> tuple[dict[str, bytes], dict[str, bytes], list[str]]:
        """The data's fields now, those that differ from the snapshot, and those removed."""
        fields = self.serializer.dump(state.data)
        snapshot = state.snapshot
        changed = {name: raw for name, raw in fields.items() if snapshot.get(name) != raw}
        removed = [
            name
            for name in snapshot
            if name not in fields and not name.startswith(RESERVED_PREFIX)
        ]
        return fields, changed, removed

    async def store_new(self, data: T) -> str:
        """Store ``data`` as a new session, as a commit would, and return its id."""
        now = self.clock()
        return await self._write_new(self.serializer.dump(data), now, self.remaining(now, now))

    async def _write_new(self, fields: dict[str, bytes], created_at: float, ttl: float) -> str:
        """Store ``fields`` as a whole record under a new id, and return the id."""
        session_id = new_session_id()
        fields[CREATED_FIELD] = to_json(created_at)
        await self.backend.set(store_key(session_id), fields, ttl=ttl)
        return session_id

    # -- explicit operations ---------------------------------------------------------------

    def regenerate_state(self, state: SessionState[T]) -> None:
        """Move the session to a new id at commit, keeping its data; the old record goes."""
        self.make_writable(state)
        state.regenerate = True

    def destroy_state(self, state: SessionState[T]) -> None:
        """End the session: its record is deleted at commit and the cookie cleared.

        The data is emptied in place; anything the route stores afterwards starts a new
        session under a new id.
        """
        self.make_writable(state)
        if state.key is not None:
            state.destroyed_key = state.key
        state.key = state.session_id = None
        state.regenerate = state.reissue = False
        state.destroyed = True
        self.serializer.reset(state.data)
        state.snapshot = self.serializer.dump(state.data)
        state.created_at = self.clock()
