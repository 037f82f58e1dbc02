"""The session engine shared by the typed API and the `request.session` middleware.

One request's session goes through three steps:

1. **load** (when a dependency first asks for it, or up front for ``request.session``):
   verify the token the frontend carries, read the record, check its absolute age and
   decode it; anything missing, expired, tampered with or undecodable gives a new, empty
   session;
2. the route reads and changes the data, and may `regenerate` or `destroy` it;
3. **commit** (in the middleware, when the response starts, before the status line goes
   out): decide from the session's state what to store and what to tell the client, do
   it, and release the session's lock.

A session's state is small and explicit (`SessionState`): where it came from (a verified
token, or nothing), how it may be used (`Use`), what happens to it at commit (`Fate`), and
the lock it holds.

Idle expiry is the store's TTL, refreshed together with the token only when due: once the
token in hand is more than a tenth of the lifetime old. That keeps an unchanged session at
a single store read per request, with no write and no Set-Cookie, while both the token and
the record still slide forward with activity.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar, cast

import anyio
from pydantic_core import to_json
from starlette.datastructures import MutableHeaders
from starlette.types import Scope

from ._faults import faults
from ._locks import HeldLock, LockKeeper
from ._record import (
    CREATED_FIELD,
    CREATED_SIZE,
    LIFETIME_FIELD,
    RESERVED_PREFIX,
    SEEN_FIELD,
    RecordFacts,
    StoredLifetime,
    carried_fields,
    declared,
    lifetime_field,
    lifetime_of,
    log_in_fields,
    moved,
    owner_of,
    record_size,
)
from ._time import in_words, to_seconds
from .backends.base import Backend, EndedRecord, SessionIndex, SessionLocks, backend_name
from .exceptions import (
    BackendUnavailable,
    ConfigurationError,
    InvalidSessionData,
    SessionBusy,
    SessionError,
    SessionTooLarge,
)
from .frontends.base import Frontend
from .policy import EventKind, SessionEvent, SessionLifetime, SessionPolicy
from .serializers import Serializer
from .signing import VerifiedToken, new_session_id, session_handle, store_key
from .telemetry import InstrumentedStore, telemetry_for

T = TypeVar("T")

logger = logging.getLogger("fastapi_session_deps")

#: The token and the record's expiry are renewed once a token is this share of the
#: lifetime old, so a visitor is logged out after between 90 % and 100 % of it idle.
REISSUE_FRACTION = 0.1
#: A token stamped more than this many seconds in the future (servers whose clocks
#: disagree) is re-issued at once, so it slides like any other.
MAX_CLOCK_SKEW = 60.0
#: Tokens are stamped in whole seconds, rounded down: a token is up to this much younger
#: than its stamp says.
STAMP_RESOLUTION = 1.0
#: The most entries of a user's index read in one store call.
USER_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long one session lives, as the engine applies it: the app's settings, or what a
    route chose for it (`SessionEngine.choose_lifetime`) within the app's bounds.

    Attributes:
        sliding: seconds of inactivity after which it ends (the idle timeout, or the
            frontend's shorter ``max_age``).
        absolute: seconds after its creation at which it ends; ``None`` for no limit.
        persistent: whether its token outlives the client's session; ``None``: as the
            frontend does.
        mark: what its tokens say of it (`VerifiedToken.lifetime`): ``None`` when it
            slides as the app's sessions do.
    """

    sliding: float
    absolute: float | None
    persistent: bool | None
    mark: int | None


class Use(enum.Enum):
    """How a loaded session may be used."""

    #: Saved at commit.
    WRITABLE = "writable"
    #: Loaded by a read-only dependency: never saved, never locked.
    READ_ONLY = "read-only"
    #: Not backed by the store (unreachable, under ``on_backend_error="anonymous"``).
    UNSAVED = "unsaved"


class Fate(enum.Enum):
    """What happens to a session at commit."""

    #: Save what changed: merged into the stored record, or a new record if it has none.
    KEEP = "keep"
    #: The same, and re-issue the token and the record's expiry (the token is due).
    RENEW = "renew"
    #: Write the whole record under a new id and delete the old one (`regenerate`).
    MOVE = "move"
    #: Delete the stored record and clear the token (`destroy`); data stored after that
    #: starts a new session.
    END = "end"


@dataclass(eq=False, slots=True)
class SessionState(Generic[T]):
    """Everything the engine knows about one request's session."""

    engine: SessionEngine[T]
    data: T
    #: Fields as loaded (or as a new session's data encodes): what commit compares with.
    snapshot: dict[str, bytes]
    created_at: float
    #: The stored session this is, as its verified token; ``None`` for one not stored.
    origin: VerifiedToken | None = None
    #: What the serializer needs to tell an unchanged session quickly (its `unchanged`).
    memo: object = None
    use: Use = Use.WRITABLE
    fate: Fate = Fate.KEEP
    lock: HeldLock | None = None
    #: The reserved fields the session carries with it (`_record.RESERVED_FIELDS`: the
    #: owner, what was recorded at log-in, flash messages, the CSRF secret), its creation
    #: time aside. Never changed in place: a change replaces the dict.
    meta: dict[str, bytes] | None = None
    #: ``meta`` as loaded: while ``meta`` is this very object, the reserved fields are
    #: unchanged.
    loaded_meta: dict[str, bytes] | None = None
    #: The stored record as it was read (never changed), for its owner, its index entry
    #: and its events when it goes.
    stored: dict[str, bytes] | None = None
    #: The record's expiry is to be set to exactly the session's lifetime at commit, even
    #: if that is sooner than the store has it (its lifetime changed); otherwise a commit
    #: only ever pushes it later, so that a request that loaded the session before another
    #: one gave it a longer life does not cut it short.
    exact_expiry: bool = False

    @property
    def stored_owner(self) -> str | None:
        """The user the stored record is bound to, if any."""
        return owner_of(self.stored)

    @property
    def owner(self) -> str | None:
        """The user the session is bound to, if any."""
        return owner_of(self.meta)

    def library_fields(self) -> dict[str, bytes]:
        """The reserved fields this session will be stored with: for its events."""
        return {**(self.meta or {}), CREATED_FIELD: to_json(self.created_at)}

    def reserved(self, name: str) -> bytes | None:
        """The value of the reserved field ``name`` the session carries, if any."""
        return self.meta.get(name) if self.meta else None

    def set_reserved(self, name: str, value: bytes | None) -> None:
        """Give the reserved field ``name`` a new value (``None``: drop it), saved with the
        session's commit.

        Raises:
            ValueError: ``name`` has no row in `_record.RESERVED_FIELDS`, so a regeneration
                would not know what to do with it.
        """
        declared(name)
        meta = {other: raw for other, raw in (self.meta or {}).items() if other != name}
        if value is not None:
            meta[name] = value
        self.meta = meta or None


class RequestSlot:
    """What the middleware puts in the ASGI scope: the request's session, once loaded."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: SessionState[Any] | None = None


#: Each live session object -> its state, for `regenerate`, `destroy` and the helpers of
#: ``request.session``. Entries are added at load and removed by the middleware when the
#: request ends, so they live exactly as long as their request.
_registry: dict[int, SessionState[Any]] = {}


def state_of(data: object) -> SessionState[Any] | None:
    """The state of a session object handed out by a dependency or the middleware."""
    state = _registry.get(id(data))
    return state if state is not None and state.data is data else None


def bound_state(session: object) -> SessionState[Any]:
    """The state of a session a helper (`flash`, `csrf_token`) was given, or an error
    naming what to pass instead."""
    state = state_of(session)
    if state is None:
        raise SessionError(
            "Pass the session a dependency gave, or request.session once it is loaded."
        )
    return state


def _check_wiring(frontend: object, backend: object, policy: SessionPolicy) -> None:
    """Refuse a frontend, a backend or a policy the others cannot serve."""
    if not isinstance(frontend, Frontend):
        raise ConfigurationError(
            f"frontend must be a Frontend such as CookieFrontend(...), not {frontend!r}."
        )
    if not isinstance(backend, Backend):
        raise ConfigurationError(
            f"backend must be a Backend such as MemoryBackend(), not {backend!r}."
        )
    if policy.concurrency == "lock" and not isinstance(backend, SessionLocks):
        raise ConfigurationError(
            f"concurrency='lock' needs a backend with session locks (MemoryBackend, "
            f"RedisBackend); {type(backend).__name__} has none. Use concurrency='merge'."
        )
    longest, cookie = cast("float", policy.max_idle_timeout), frontend.max_age
    if cookie is not None and longest > max(policy.idle_timeout, cookie):
        raise ConfigurationError(
            f"max_idle_timeout ({in_words(longest)}) is longer than the frontend's max_age "
            f"({in_words(cookie)}), which every token outlives no more than: raise max_age, "
            "or pass max_age=None (each token then lasts as its session does), or lower "
            "max_idle_timeout."
        )
    if policy.user_index and not isinstance(backend, SessionIndex):
        raise ConfigurationError(
            f"user_index=True needs a backend that keeps an index of each user's sessions "
            f"(MemoryBackend, RedisBackend, SQLBackend, HTTPBackend); "
            f"{type(backend).__name__} has none."
        )


class SessionEngine(Generic[T]):
    """Frontend + backend + serializer + policy: loads and commits sessions.

    Held (not inherited) by `SessionManager` and `SessionMiddleware`.
    """

    def __init__(
        self,
        serializer: Serializer[T],
        *,
        frontend: Frontend,
        backend: Backend,
        policy: SessionPolicy,
    ) -> None:
        _check_wiring(frontend, backend, policy)
        #: The instruments (OpenTelemetry), or ``None``: then the store is called directly.
        self.telemetry = telemetry_for(policy.telemetry)  # True without the package: raises
        #: What the engine calls: the store, or the store through its instruments.
        self.store: Backend = (
            backend if self.telemetry is None else InstrumentedStore(backend, self.telemetry)
        )
        self.serializer = serializer
        self.frontend = frontend
        self.backend = backend
        self.policy = policy
        #: The session locks requests take, under ``concurrency="lock"``.
        self.locking = (
            LockKeeper(cast("SessionLocks", self.store), policy, self._log_extra)
            if policy.concurrency == "lock"
            else None
        )
        self.index = cast("SessionIndex", self.store) if policy.user_index else None
        self.scope_key = f"fastapi_session_deps.{id(self):x}"
        #: The sliding lifetime: the idle timeout, or the frontend's shorter token lifetime
        #: (a cookie's max_age), since a client drops its token after that anyway.
        self.lifetime = self._sliding(policy.idle_timeout)
        #: The longest sliding lifetime a route may give a session (`set_lifetime`).
        self.longest_lifetime = self._sliding(cast("float", policy.max_idle_timeout))
        #: How a session lives that was given no lifetime of its own.
        self.default_lifetime = Lifetime(self.lifetime, policy.absolute_timeout, None, None)
        self._lifetimes: dict[bytes, Lifetime] = {}
        #: Whether anything hears of events (a hook, or the instruments): if not, none is
        #: built.
        self._listening = policy.on_event is not None or self.telemetry is not None
        # A new session's fields, when every new session's are the same (no default drawn
        # from a factory that varies): computed once, not per request. Never mutated.
        first, second = serializer.dump(serializer.new()), serializer.dump(serializer.new())
        self._empty = first if first == second else None

    def _sliding(self, idle: float) -> float:
        """The sliding lifetime of an idle timeout: the frontend's ``max_age`` if shorter,
        since a client drops its token after that anyway."""
        limit = self.frontend.max_age
        return idle if limit is None else min(idle, limit)

    # -- lifetimes -------------------------------------------------------------------------------

    def lifetime_of(self, meta: Mapping[str, bytes] | None) -> Lifetime:
        """How a session whose reserved fields are ``meta`` lives: as a route chose
        (`LIFETIME_FIELD`), within the app's bounds as they are now, or by the settings."""
        raw = meta.get(LIFETIME_FIELD) if meta else None
        if raw is None:
            return self.default_lifetime
        known = self._lifetimes.get(raw)
        if known is None:
            known = self._bounded(lifetime_of(raw))
            if len(self._lifetimes) >= 256:
                self._lifetimes.clear()
            self._lifetimes[raw] = known
        return known

    def _bounded(self, chosen: StoredLifetime | None) -> Lifetime:
        """A stored choice held to the app's bounds, which may have been lowered since it
        was made; ``None`` (a damaged field) is the app's settings."""
        if chosen is None:
            return self.default_lifetime
        policy = self.policy
        sliding = self._sliding(min(chosen.idle, cast("float", policy.max_idle_timeout)))
        absolute, longest = chosen.absolute, policy.max_absolute_timeout
        if longest is not None:
            absolute = longest if absolute is None else min(absolute, longest)
        mark = None if sliding == self.lifetime else max(math.ceil(sliding), 1)
        return Lifetime(sliding, absolute, chosen.persistent, mark)

    def choose_lifetime(
        self,
        state: SessionState[T],
        *,
        idle: float | timedelta | None,
        absolute: float | timedelta | Literal["default"] | None,
        persistent: bool | None,
    ) -> None:
        """Give the session its own lifetime from now on, kept in its record (see
        `SessionManager.set_lifetime`); the arguments ``None``/``"default"`` stand for
        the app's settings.

        Raises:
            ConfigurationError: a duration beyond the app's bounds, or not a duration.
        """
        policy = self.policy
        idle_s = policy.idle_timeout if idle is None else to_seconds(idle, "idle")
        if absolute == "default":
            absolute_s = policy.absolute_timeout
        else:
            absolute_s = None if absolute is None else to_seconds(absolute, "absolute")
        if persistent is not None and not isinstance(persistent, bool):
            raise ConfigurationError(
                f"persistent must be True, False or None, not {persistent!r}."
            )
        keep = self.frontend.persistent if persistent is None else persistent
        _check_within(idle_s, absolute_s, policy)
        chosen = StoredLifetime(idle_s, absolute_s, keep)
        same = idle_s == policy.idle_timeout and absolute_s == policy.absolute_timeout
        raw = None if same and keep == self.frontend.persistent else lifetime_field(chosen)
        self.make_writable(state)
        if raw == state.reserved(LIFETIME_FIELD):
            return  # as it was: nothing to store
        state.set_reserved(LIFETIME_FIELD, raw)
        state.exact_expiry = True  # this request knows the new lifetime: it sets it
        if state.fate is Fate.KEEP:
            state.fate = Fate.RENEW  # a new token, with the new lifetime and Max-Age

    def describe_lifetime(self, state: SessionState[T]) -> SessionLifetime:
        """How long the session of ``state`` lives, for the app to show."""
        lifetime = self.lifetime_of(state.meta)
        persistent = (
            self.frontend.persistent if lifetime.persistent is None else lifetime.persistent
        )
        left = self.remaining(state.created_at, self.policy.clock(), lifetime)
        return SessionLifetime(
            idle_timeout=lifetime.sliding,
            absolute_timeout=lifetime.absolute,
            persistent=persistent,
            chosen=lifetime is not self.default_lifetime,
            seconds_left=max(left, 0.0),
        )

    # -- the registry --------------------------------------------------------------------------

    def bind(self, state: SessionState[T]) -> None:
        """Make ``state`` findable from its session object (see `state_of`)."""
        _registry[id(state.data)] = state

    @staticmethod
    def forget(state: SessionState[Any]) -> None:
        """Forget ``state`` at the end of its request."""
        _registry.pop(id(state.data), None)

    # -- load ------------------------------------------------------------------------------------

    def holds_nothing(self, state: SessionState[T]) -> bool:
        """Whether the stored session ``state`` was loaded from holds nothing of the app's:
        its data as a new session's, no user bound, only the library's own fields (a CSRF
        secret, flash messages). `require_session` takes it for no session."""
        stored = state.stored
        if stored is None or self._empty is None or owner_of(stored) is not None:
            return False
        data = {name: raw for name, raw in stored.items() if name[:1] != RESERVED_PREFIX}
        return data == self._empty

    def new_state(self, use: Use = Use.WRITABLE) -> SessionState[T]:
        """Return the state of a new, empty session."""
        data = self.serializer.new()
        snapshot = self._empty if self._empty is not None else self.serializer.dump(data)
        return SessionState(self, data, snapshot, created_at=self.policy.clock(), use=use)

    async def load(self, token: VerifiedToken | None, *, readonly: bool) -> SessionState[T]:
        """Return the state of the session ``token`` names, or of a new one.

        With ``concurrency="lock"``, a writable load first takes the session's lock, which
        the request holds until its commit (or its end). With
        ``on_backend_error="anonymous"``, an unreachable store gives a new session that is
        never saved, instead of an error.

        Raises:
            BackendUnavailable: the store could not be read (policy ``"fail"``).
            SessionBusy: the lock stayed taken for all of ``lock_timeout``.
        """
        use = Use.READ_ONLY if readonly else Use.WRITABLE
        try:
            if token is None or self._too_old(token, self._token_lifetime(token)):
                # No token, or one older than any client may keep it (its Max-Age ran out).
                state = self.new_state(use)
            elif self.locking is not None and use is Use.WRITABLE:
                state = await self._load_locked(self.locking, token, use)
            else:
                state = await self._restore(token, use) or self.new_state(use)
        except SessionBusy:
            self._unavailable("busy")
            raise
        except BackendUnavailable as exc:
            if self.policy.on_backend_error != "anonymous":
                self._unavailable("store")
                raise
            faults.report("Session store unavailable; going on without a session", exc)
            state = self.new_state(Use.UNSAVED)
        self.bind(state)
        if self.telemetry is not None:
            outcome = (
                "unsaved" if state.use is Use.UNSAVED else "stored" if state.origin else "new"
            )
            self.telemetry.loads.add(1, {"session.outcome": outcome})
        return state

    async def _load_locked(
        self, locking: LockKeeper, token: VerifiedToken, use: Use
    ) -> SessionState[T]:
        lock = await locking.acquire(token.key)
        try:
            state = await self._restore(token, use)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await lock.release()
            raise
        if state is None:
            await lock.release()
            return self.new_state(use)
        state.lock = lock
        return state

    def _token_lifetime(self, token: VerifiedToken) -> float:
        """The sliding lifetime ``token`` was issued for, within the app's bounds."""
        if token.lifetime is None:
            return self.lifetime
        return min(float(token.lifetime), self.longest_lifetime)

    def _too_old(self, token: VerifiedToken, lifetime: float) -> bool:
        """Whether ``token`` is older than a client may keep one of a session that slides
        by ``lifetime``: the lifetime, and the stamp's resolution, so that no session is
        refused before its deadline (the store's exact expiry decides within it). A
        lifetime of zero or less (a cookie that expires at once) stores nothing: no token
        of it is worth a read."""
        age = self.policy.clock() - token.issued_at
        return age > (lifetime + STAMP_RESOLUTION if lifetime > 0 else lifetime)

    async def _restore(self, token: VerifiedToken, use: Use) -> SessionState[T] | None:
        now = self.policy.clock()
        age = now - token.issued_at
        expected = self._token_lifetime(token)
        renew = token.rotated or age >= expected * REISSUE_FRACTION or age < -MAX_CLOCK_SKEW
        fields = await self.store.get(token.key, ttl=expected if renew else None)
        if fields is None:
            return None
        state = self._decode(token, fields, use, Fate.RENEW if renew else Fate.KEEP)
        if state is None:
            await self.store.delete(token.key)  # drop it: logged once, then gone
            return None
        lifetime = self.lifetime_of(state.meta)
        if lifetime.mark != token.lifetime:
            # The token was issued for another lifetime than the record now has (another
            # request chose one meanwhile, or the app's bounds were lowered): the record
            # decides, and the commit sets its expiry and sends a token that says so.
            if self._too_old(token, lifetime.sliding):
                return None
            state.fate, state.exact_expiry = Fate.RENEW, True
        absolute = lifetime.absolute
        if absolute is not None and now - state.created_at >= absolute:
            await self._delete_stored(state, token.key, "expired")
            return None
        return state

    def _decode(
        self, token: VerifiedToken, fields: dict[str, bytes], use: Use, fate: Fate
    ) -> SessionState[T] | None:
        """The state of a stored record, or ``None`` (logged) if it is no session any more."""
        limit = self.policy.max_record_bytes
        size = record_size(fields)
        if limit is not None and size > limit:
            # Never written by this library (its commit refuses it): no session, rather
            # than a request that fails for as long as the record lives.
            logger.warning(
                "Discarding a session record of %d bytes, over max_record_bytes=%d",
                size,
                limit,
                extra=self._log_extra("record_oversized", token.key),
            )
            return None
        try:
            created_at = float(fields[CREATED_FIELD])
            if not math.isfinite(created_at):
                raise ValueError("creation time is not a finite number")
            data, memo = self.serializer.load_for_change_check(fields)
        except (KeyError, ValueError) as exc:
            # Written by an older model or damaged: the visitor simply starts afresh.
            reason = exc if isinstance(exc, InvalidSessionData) else "no valid creation time"
            logger.warning(
                "Discarding an undecodable session record: %s",
                reason,
                extra=self._log_extra("record_undecodable", token.key),
            )
            return None
        meta = carried_fields(fields)
        return SessionState(
            self,
            data,
            fields,
            created_at,
            origin=token,
            memo=memo,
            use=use,
            fate=fate,
            meta=meta,
            loaded_meta=meta,
            stored=fields,
        )

    # -- explicit operations ---------------------------------------------------------------------

    def make_writable(self, state: SessionState[T]) -> None:
        """Let a session loaded read-only be saved after all.

        Raises:
            SessionError: under ``concurrency="lock"`` a stored session read without its
                lock cannot become writable.
        """
        if state.use is not Use.READ_ONLY:
            return
        if self.policy.concurrency == "lock" and state.origin is not None:
            raise SessionError(
                "This session was loaded read-only (without its lock), so it cannot be "
                "changed in the same request: use the writable dependency throughout, or "
                "read-only throughout."
            )
        state.use = Use.WRITABLE

    def regenerate(self, state: SessionState[T]) -> None:
        """Move the session to a new id at commit, keeping its data; the old record goes.
        Its reserved fields go as `_record.RESERVED_FIELDS` says."""
        self.make_writable(state)
        if state.fate is not Fate.END:  # an ended session has nothing left to move
            state.fate = Fate.MOVE
        if state.meta:
            state.meta = moved(state.meta, log_in=False)

    def log_in(
        self,
        state: SessionState[T],
        user: str,
        *,
        address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        """Bind the session to ``user`` and move it to a new id at commit (a log-in: the
        fixation defence and the binding in one step). The client's ``address`` and
        ``user_agent`` are recorded when the policy says so (``record_client``)."""
        if self.index is None:
            raise ConfigurationError(
                "Binding sessions to users needs user_index=True in the session settings."
            )
        if not self.policy.record_client:
            address = user_agent = None
        written = log_in_fields(user, address, user_agent)
        self.make_writable(state)
        state.fate = Fate.MOVE  # even a session ended earlier in this request
        state.meta = {**(moved(state.meta, log_in=True) or {}), **written}

    def destroy(self, state: SessionState[T]) -> None:
        """End the session: its record is deleted at commit and the token cleared.

        The data is emptied in place; anything the route stores afterwards starts a new
        session under a new id.
        """
        self.make_writable(state)
        state.fate = Fate.END
        state.meta = None
        state.exact_expiry = False
        self.serializer.reset(state.data)
        state.snapshot = self.serializer.dump(state.data)
        state.created_at = self.policy.clock()

    async def store_new(self, data: T) -> str:
        """Store ``data`` as a new session, as a commit would, and return its id."""
        now = self.policy.clock()
        fields = self.serializer.dump(data)
        return (await self._write_new(fields, now, self.remaining(now, now)))[0]

    # -- commit ----------------------------------------------------------------------------------

    def remaining(self, created_at: float, now: float, lifetime: Lifetime | None = None) -> float:
        """Seconds a session created at ``created_at`` may live from ``now`` if left idle,
        by its ``lifetime`` (the app's settings if not given)."""
        lifetime = lifetime or self.default_lifetime
        absolute = lifetime.absolute
        if absolute is None:
            return lifetime.sliding
        return min(lifetime.sliding, created_at + absolute - now)

    async def commit(
        self, state: SessionState[T], headers: MutableHeaders, status: int, scope: Scope
    ) -> None:
        """Save what the request changed and send or clear the token, before the response
        starts; then release the session's lock.

        A 5xx response saves nothing (the route failed: its half-made changes must not
        stick), except that a session it ended stays ended. 4xx responses are saved (a
        failed-login counter must count).

        Raises:
            BackendUnavailable: the store could not be written.
            SessionTooLarge: the record would exceed ``max_record_bytes``.
        """
        self.frontend.add_vary(headers)
        if self.telemetry is not None:
            self.telemetry.commits.add(1, {"session.fate": state.fate.value})
        unchanged: bool | None = None  # not asked yet
        if (
            state.fate is Fate.KEEP
            and state.lock is None
            and state.meta is state.loaded_meta
            and state.origin is not None
            and state.use is not Use.UNSAVED
            and self.lifetime_of(state.meta).absolute is None
        ):
            unchanged = self.serializer.unchanged(state.data, state.memo)
            if unchanged:
                # A stored session only read, its expiry not due: nothing to store or send.
                return
        try:
            await self._save(state, headers, status, scope, unchanged)
        except BackendUnavailable:
            self._unavailable("store")
            raise
        finally:
            if state.lock is not None:
                await self.release(state)

    def _log_extra(self, event: str, key: str | None) -> dict[str, str]:
        """The stable fields of a log record about a session: never its token or key."""
        extra = {"event": event, "store": backend_name(self.backend)}
        if key is not None:
            extra["handle"] = session_handle(key)
        return extra

    def _unavailable(self, reason: Literal["store", "busy"]) -> None:
        """Count a "retry later" answer (the caller raises it on)."""
        if self.telemetry is not None:
            self.telemetry.unavailable.add(1, {"session.reason": reason})

    async def abandon(self, state: SessionState[T]) -> None:
        """The request failed before its response started: save nothing, but a session it
        ended stays ended, and its lock is released."""
        try:
            if state.fate is Fate.END and state.origin is not None:
                await self._delete_stored(state, state.origin.key, "destroyed")
        finally:
            await self.release(state)

    async def _delete_stored(
        self, state: SessionState[T], key: str, event: EventKind | None = None
    ) -> bool | None:
        """Delete the stored record ``key``, take it out of its owner's index, and tell
        ``on_event`` why, if it is an ``event``; return whether it was still live (``None``:
        the store cannot tell)."""
        live = await self.store.delete(key)
        if self.index is not None and state.stored_owner is not None:
            await self.index.index_remove(state.stored_owner, [key])
        if event is not None and self._listening:
            await self.emit(event, key, state.stored or {})
        return live

    async def _save(
        self,
        state: SessionState[T],
        headers: MutableHeaders,
        status: int,
        scope: Scope,
        unchanged: bool | None,
    ) -> None:
        if state.use is Use.UNSAVED:
            return
        ended = state.fate is Fate.END
        if ended and state.origin is not None:
            await self._delete_stored(state, state.origin.key, "destroyed")  # even on a 5xx
        if status >= 500:
            if ended:
                self._clear(headers, scope)
            return
        fields, changed, removed = self._changes(state, unchanged)
        if state.use is Use.READ_ONLY:
            if changed or removed:
                logger.warning(
                    "A read-only session was changed; the change is not saved",
                    extra=self._log_extra(
                        "readonly_changed", None if state.origin is None else state.origin.key
                    ),
                )
            return
        # The record this session still is: none if it was never stored, or was ended.
        stored = None if ended else state.origin
        now = self.policy.clock()
        lifetime = self.lifetime_of(state.meta)
        ttl = self.remaining(state.created_at, now, lifetime)
        if ttl <= 0:
            await self._end_now(state, stored, bool(changed or removed), now, ttl, headers, scope)
        elif stored is None or state.fate is Fate.MOVE:
            await self._save_whole(
                state, stored, fields, bool(changed or removed), now, ttl, headers, scope
            )
        else:
            await self._save_changes(
                state, stored, fields, changed, removed, now, ttl, headers, scope
            )

    async def _end_now(
        self,
        state: SessionState[T],
        stored: VerifiedToken | None,
        dirty: bool,
        now: float,
        ttl: float,
        headers: MutableHeaders,
        scope: Scope,
    ) -> None:
        """No time left: the absolute timeout ran out while this request ran, or the
        session's lifetime is zero (a cookie max_age of 0 or less, as Starlette allows).
        Nothing is kept; a new session's token is sent already expired, as Starlette sends
        it, so the client learns of it and drops it at once."""
        if stored is not None:
            await self._delete_stored(state, stored.key, "expired")
            self._clear(headers, scope)
        elif dirty:
            self._send(headers, new_session_id(), now, ttl, scope, state)
        elif state.fate is Fate.END:
            self._clear(headers, scope)

    async def _save_whole(
        self,
        state: SessionState[T],
        stored: VerifiedToken | None,
        fields: dict[str, bytes],
        dirty: bool,
        now: float,
        ttl: float,
        headers: MutableHeaders,
        scope: Scope,
    ) -> None:
        """A new session (stored only if the route filled it), or a stored one moving to
        a new id: the whole record under a new id, then the old record deleted.

        A move stands only if the old record was still live when it was deleted (one
        atomic step in the store): a log-out or a revocation that ended it while this
        request ran is final, so the new record is deleted again and its token never sent.
        The browser's token is left as it is: dead already, or a newer one another request
        of this browser was given (two log-ins at once). Writing first means that a store
        failing on the write leaves the session as it was.
        """
        if stored is None and not dirty:
            if state.fate is Fate.END:
                self._clear(headers, scope)
            return
        self._check_size(fields)
        try:
            session_id, new_key = await self._write_new(fields, state.created_at, ttl, state.meta)
        except BackendUnavailable as exc:
            if stored is not None or self.policy.on_backend_error != "anonymous":
                raise
            # "anonymous": a visitor the store cannot take goes on without a session.
            faults.report("Session store unavailable; a new session was not stored", exc)
            return
        if stored is not None and await self._delete_stored(state, stored.key) is False:
            await self.store.delete(new_key)  # no one holds its id: it goes unseen
            owner = state.owner
            if owner is not None and self.index is not None:
                await self.index.index_remove(owner, [new_key])
            logger.info(
                "Session ended by another request; this request's move to a new id dropped",
                extra=self._log_extra("changes_dropped", stored.key),
            )
            return
        owner = state.owner
        if owner is not None and owner != state.stored_owner:  # a log-in: one more session
            await self._keep_to_the_limit(owner, new_key)
        if self._listening:
            previous = None if stored is None else stored.key
            await self.emit(
                "created" if stored is None else "regenerated",
                new_key,
                state.library_fields(),
                previous=previous,
            )
        self._send(headers, session_id, now, ttl, scope, state)

    async def _save_changes(
        self,
        state: SessionState[T],
        stored: VerifiedToken,
        fields: dict[str, bytes],
        changed: dict[str, bytes],
        removed: list[str],
        now: float,
        ttl: float,
        headers: MutableHeaders,
        scope: Scope,
    ) -> None:
        """A stored session staying under its id: merge what changed into the record, and
        re-issue the token when it is due."""
        index, owner = self.index, state.owner
        if index is not None and owner is not None and state.fate is Fate.RENEW:
            # The index keeps the session as long as the record; the record says when it
            # was last seen. Only when the expiry is renewed, so reads stay one call.
            changed[SEEN_FIELD] = to_json(now)
            await index.index_add(owner, stored.key, ttl=ttl)
        if changed or removed or state.exact_expiry:
            self._check_size(fields)
            exact = state.exact_expiry
            if not await self.store.update(stored.key, changed, removed, ttl=ttl, exact=exact):
                # Destroyed or expired meanwhile, or moved to a new id by a log-in in
                # another request: not brought back. The token is left alone, since the
                # client may already hold that log-in's new one.
                logger.info(
                    "Session ended by another request; this request's changes dropped",
                    extra=self._log_extra("changes_dropped", stored.key),
                )
                return
        if state.fate is Fate.RENEW:
            self._send(headers, stored.session_id, now, ttl, scope, state)

    def _changes(
        self, state: SessionState[T], unchanged: bool | None
    ) -> tuple[dict[str, bytes], dict[str, bytes], list[str]]:
        """The data's fields now, and the fields (the reserved ones included) that differ
        from the record as loaded, and those removed. ``unchanged`` is the serializer's
        answer if the commit already asked it."""
        snapshot = state.snapshot
        if unchanged is None:
            unchanged = self.serializer.unchanged(state.data, state.memo)
        if unchanged:
            # The common case of a session only read: one call of the serializer says so.
            fields = {name: raw for name, raw in snapshot.items() if name[:1] != RESERVED_PREFIX}
            changed: dict[str, bytes] = {}
            removed: list[str] = []
        else:
            fields = self.serializer.dump(state.data)
            changed = {name: raw for name, raw in fields.items() if snapshot.get(name) != raw}
            removed = [
                name
                for name in snapshot
                if name not in fields and not name.startswith(RESERVED_PREFIX)
            ]
        if state.meta is not state.loaded_meta or state.snapshot is not state.stored:
            # The reserved fields were replaced since the load (an owner bound, flash
            # messages added or shown): add those that changed.
            now, then = state.meta or {}, carried_fields(snapshot) or {}
            if now != then:
                changed.update({name: raw for name, raw in now.items() if then.get(name) != raw})
                removed.extend(name for name in then if name not in now)
        return fields, changed, removed

    def _check_size(self, fields: dict[str, bytes]) -> None:
        """Refuse a record over ``max_record_bytes``, as it would be stored (its creation
        time counted at the most it can take)."""
        limit = self.policy.max_record_bytes
        if limit is not None:
            size = record_size(fields) + CREATED_SIZE
            if size > limit:
                raise SessionTooLarge(size, limit)

    async def _write_new(
        self,
        fields: dict[str, bytes],
        created_at: float,
        ttl: float,
        meta: dict[str, bytes] | None = None,
    ) -> tuple[str, str]:
        """Store ``fields`` (and ``meta``) as a whole record under a new id, and return the
        id and its store key. A record with an owner goes into the owner's index first, so
        that no owned record is ever missing from it."""
        session_id = new_session_id()
        key = store_key(session_id)
        fields[CREATED_FIELD] = to_json(created_at)
        if meta:
            fields.update(meta)
            owner = owner_of(meta)
            if owner is not None and self.index is not None:
                fields[SEEN_FIELD] = to_json(self.policy.clock())
                await self.index.index_add(owner, key, ttl=ttl)
        await self.store.set(key, fields, ttl=ttl)
        return session_id, key

    def _send(
        self,
        headers: MutableHeaders,
        session_id: str,
        now: float,
        ttl: float,
        scope: Scope,
        state: SessionState[T],
    ) -> None:
        # Max-Age rounds up, so a session with 0.5 s left is not dropped by the client at
        # once; the server-side expiry stays exact.
        max_age = math.ceil(ttl) if ttl > 0 else math.floor(ttl)
        lifetime = self.lifetime_of(state.meta)
        self.frontend.write(
            headers,
            session_id,
            issued_at=int(now),
            max_age=max_age,
            scope=scope,
            lifetime=lifetime.mark,
            persistent=lifetime.persistent,
        )
        _no_store(headers)

    def _clear(self, headers: MutableHeaders, scope: Scope) -> None:
        self.frontend.clear(headers, scope=scope)
        _no_store(headers)

    # -- events ----------------------------------------------------------------------------------

    async def emit(
        self,
        kind: EventKind,
        key: str,
        fields: Mapping[str, bytes],
        previous: str | None = None,
    ) -> None:
        """Tell ``on_event`` that ``kind`` happened to the session stored under ``key``,
        with what its reserved ``fields`` say of it; a hook that fails is logged, never the
        request's failure."""
        if self.telemetry is not None:
            self.telemetry.events.add(1, {"session.event": kind})
        hook = self.policy.on_event
        if hook is None:
            return
        facts = RecordFacts.of(fields)
        event = SessionEvent(
            kind=kind,
            handle=session_handle(key),
            user=facts.user,
            at=self.policy.clock(),
            previous=None if previous is None else session_handle(previous),
            created_at=facts.created_at,
            ip=facts.ip,
            user_agent=facts.user_agent,
        )
        try:
            await hook(event)
        except Exception:
            logger.exception(
                "The on_event hook failed on a %r event",
                kind,
                extra=self._log_extra("event_hook_failed", key),
            )

    async def end_sessions(self, user: str, keys: Collection[str]) -> int:
        """End those of ``keys`` that are ``user``'s sessions (their records deleted, and
        out of the index), announce each as ``"revoked"``, and return how many."""
        index = cast("SessionIndex", self.index)  # the callers checked
        return await self.announce_ended(user, await index.index_end(user, keys))

    async def announce_ended(self, user: str, ended: list[EndedRecord]) -> int:
        """Announce each session the index ended as ``"revoked"``; return how many."""
        if self._listening:
            for key, facts in ended:
                await self.emit("revoked", key, facts)
        return len(ended)

    async def _keep_to_the_limit(self, user: str, new_key: str) -> None:
        """Past ``max_user_sessions``, end the user's sessions that would expire first,
        never the one just logged in."""
        limit, index = self.policy.max_user_sessions, self.index
        if limit is None or index is None:
            return
        keys = await index.index_keys(user, limit=limit + USER_PAGE)
        others = [key for key in keys if key != new_key]
        if len(others) >= limit:
            await self.end_sessions(user, others[limit - 1 :])

    async def release(self, state: SessionState[T]) -> None:
        """Release the session lock ``state`` holds, if any. Never raises for a store fault."""
        lock, state.lock = state.lock, None
        if lock is not None:
            await lock.release()


def _check_within(idle: float, absolute: float | None, policy: SessionPolicy) -> None:
    """Refuse a lifetime a route chose beyond the app's bounds."""
    longest_idle, longest_absolute = policy.max_idle_timeout, policy.max_absolute_timeout
    if longest_idle is not None and idle > longest_idle:
        raise ConfigurationError(
            f"idle={in_words(idle)} is longer than the app allows a session "
            f"(max_idle_timeout, {in_words(longest_idle)}): ask for less, or raise "
            "max_idle_timeout in the session settings."
        )
    if longest_absolute is not None and (absolute is None or absolute > longest_absolute):
        asked = "no absolute timeout" if absolute is None else f"absolute={in_words(absolute)}"
        raise ConfigurationError(
            f"{asked} is longer than the app allows a session (max_absolute_timeout, "
            f"{in_words(longest_absolute)}): ask for less, or raise max_absolute_timeout "
            "in the session settings."
        )
    if absolute is not None and absolute < idle:
        raise ConfigurationError(
            f"absolute={in_words(absolute)} is shorter than idle={in_words(idle)}, so the "
            "idle timeout could never apply: pass a longer absolute=, or a shorter idle=."
        )


def _no_store(headers: MutableHeaders) -> None:
    """Keep shared caches from storing a response that hands out a session token."""
    raw = headers.raw
    for index, (name, value) in enumerate(raw):
        if name == b"cache-control":
            current = value.lower()
            if b"private" not in current and b"no-store" not in current:
                raw[index] = (name, _NO_STORE)
            return
    raw.append((b"cache-control", _NO_STORE))


_NO_STORE = b"private, no-store"
