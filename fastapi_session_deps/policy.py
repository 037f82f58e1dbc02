"""`SessionPolicy`: every setting of how sessions live, in one frozen, validated object.

`SessionManager` and `SessionMiddleware` take these settings as keyword arguments and build
the policy from them; ``sessions.policy`` shows the result. A new setting is a field here
(and a key of `PolicySettings`, which types those keyword arguments), nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Literal, TypedDict

from ._record import MAX_RECORD_BYTES
from ._time import to_seconds
from .exceptions import ConfigurationError
from .telemetry import Telemetry

__all__ = [
    "BackendErrorPolicy",
    "ConcurrencyPolicy",
    "EventKind",
    "PolicySettings",
    "SessionEvent",
    "SessionLifetime",
    "SessionPolicy",
]

BackendErrorPolicy = Literal["fail", "anonymous"]
ConcurrencyPolicy = Literal["merge", "lock"]
#: What can happen to a session, as `SessionEvent.kind` names it.
EventKind = Literal["created", "regenerated", "destroyed", "revoked", "expired"]


@dataclass(frozen=True)
class SessionEvent:
    """Something that happened to a session, for ``on_event``. Never the id or a token.

    Attributes:
        kind: ``"created"`` (a new session stored), ``"regenerated"`` (moved to a new id,
            a log-in included), ``"destroyed"`` (ended by `destroy`), ``"revoked"`` (ended
            from a list of a user's sessions) or ``"expired"`` (found past its absolute
            timeout when it was read: detected, not announced the instant it happens).
        handle: the session's public handle (after a regeneration, the new one).
        user: the user the session is bound to, if any.
        at: when it happened (the policy's clock).
        previous: for ``"regenerated"``, the handle it had before.
        created_at: when the session began, if known.
        ip: the client's address at log-in, when ``record_client`` recorded it.
        user_agent: the client's user agent at log-in, likewise.
    """

    kind: EventKind
    handle: str
    user: str | None
    at: float
    previous: str | None = None
    created_at: float | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class SessionLifetime:
    """How long one session lives (`SessionManager.lifetime`): the app's settings, or
    what a route chose for it with `SessionManager.set_lifetime`, within the app's bounds.

    Attributes:
        idle_timeout: seconds of inactivity after which it ends.
        absolute_timeout: seconds after its creation at which it ends; ``None`` for none.
        persistent: whether its cookie outlives the browser (carries a ``Max-Age``).
        chosen: whether a route chose it (``False``: the app's settings).
        seconds_left: seconds it has left if it is not used again after this request.
    """

    idle_timeout: float
    absolute_timeout: float | None
    persistent: bool
    chosen: bool
    seconds_left: float


@dataclass(frozen=True)
class SessionPolicy:
    """How sessions live: timeouts, concurrency, locks, size and clock.

    Attributes:
        idle_timeout: seconds (or a timedelta) of inactivity after which a session ends.
        absolute_timeout: seconds (or a timedelta) after its creation at which a session
            ends however active it is; ``None`` for no limit. At least ``idle_timeout``.
        max_idle_timeout: the longest idle timeout a route may give one session with
            `SessionManager.set_lifetime` (a "Keep me signed in" box); ``None`` (the
            default): ``idle_timeout``, so that a route can only shorten it.
        max_absolute_timeout: the longest absolute timeout a route may give one session;
            ``None`` (the default): ``absolute_timeout`` (and then, if that is ``None``,
            no limit). At least ``max_idle_timeout``.
        concurrency: how concurrent requests on one session combine.

            - ``"merge"`` (the default): a save writes only the top-level fields the request
              changed, merged into the stored record, so requests that change different
              fields never undo each other. Two requests that change the *same* field: the
              last save wins.
            - ``"lock"``: a request that loads the session writable holds the session's
              lock until its commit, so requests on one session run one after the other and
              no update is lost. Read-only dependencies never take it.
        on_backend_error: ``"fail"`` answers 503 with ``Retry-After`` when the store cannot
            be reached; ``"anonymous"`` lets the request go on with a new session that is
            not saved (for read-mostly apps).
        lock_timeout: with ``"lock"``, seconds a request waits for the lock before it is
            answered 503 with ``Retry-After``.
        lock_ttl: with ``"lock"``, seconds after which a lock frees itself even if its holder
            never released it (a crashed process). Keep it above your slowest request.
        max_record_bytes: the largest a session's stored record may be, in bytes (64 KiB by
            default; ``None`` for no limit). A change that would make it larger is not
            saved: the response becomes a 500, and the log names the limit. A larger
            record read from the store is no session.
        cleanup_interval: seconds (or a timedelta) between two deletions of expired records
            by the app's lifespan, in every worker (`Backend.delete_expired`); ``None``, the
            default, for none: run ``python -m fastapi_session_deps cleanup`` from cron
            instead. Only stores that keep expired records (`SQLBackend`) need either.
        user_index: keep an index of each user's sessions, so that a user's sessions can be
            listed and revoked (`SessionManager.login`, `SessionManager.users`).
            Needs a backend that implements `SessionIndex`. Off by default.
        record_client: with ``user_index``, record the client's address and user agent at
            log-in, to show in the list of a user's sessions. Off by default: they are
            personal data.
        max_user_sessions: with ``user_index``, the most sessions one user may have at
            once: a log-in past it ends the user's sessions that would expire first (the
            least recently used), announced as ``"revoked"``. ``None`` (the default): no
            limit.
        on_event: an async function called with a `SessionEvent` when a session is
            created, regenerated, destroyed or revoked, or found expired. It runs in the
            request, after the store has done its part; an exception from it is logged and
            never fails the request.
        telemetry: OpenTelemetry metrics and spans (`fastapi_session_deps.telemetry`),
            opt-in: ``True`` records them through the global providers (it needs
            ``opentelemetry-api``: the ``otel`` extra, or a FastAPI recent enough to depend
            on it), a `Telemetry` through providers of your own. Off by default: the store
            is then called directly.
        clock: seconds since the epoch; tests may pass a fake one.

    Raises:
        ConfigurationError: a value out of range, or an unknown policy name.
    """

    idle_timeout: float = 1800.0
    absolute_timeout: float | None = None
    max_idle_timeout: float | None = None
    max_absolute_timeout: float | None = None
    concurrency: ConcurrencyPolicy = "merge"
    on_backend_error: BackendErrorPolicy = "fail"
    lock_timeout: float = 5.0
    lock_ttl: float = 30.0
    max_record_bytes: int | None = MAX_RECORD_BYTES
    cleanup_interval: float | None = None
    user_index: bool = False
    record_client: bool = False
    max_user_sessions: int | None = None
    on_event: Callable[[SessionEvent], Awaitable[None]] | None = None
    telemetry: bool | Telemetry = False
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        # Durations arrive as seconds or timedeltas; the policy keeps seconds.
        idle = to_seconds(self.idle_timeout, "idle_timeout")
        absolute = (
            None
            if self.absolute_timeout is None
            else to_seconds(self.absolute_timeout, "absolute_timeout")
        )
        if absolute is not None and absolute < idle:
            raise ConfigurationError(
                f"absolute_timeout ({absolute:g} s) is shorter than idle_timeout ({idle:g} s), "
                "so the idle timeout could never apply: raise absolute_timeout, lower "
                "idle_timeout, or pass absolute_timeout=None."
            )
        self._check_maxima(idle, absolute)
        if self.concurrency not in ("merge", "lock"):
            raise ConfigurationError(f"concurrency={self.concurrency!r}: use 'merge' or 'lock'.")
        if self.on_backend_error not in ("fail", "anonymous"):
            raise ConfigurationError(
                f"on_backend_error={self.on_backend_error!r}: use 'fail' (a 503) or 'anonymous'."
            )
        _check_count("max_record_bytes", self.max_record_bytes, "bytes")
        self._check_user_index()
        if not isinstance(self.telemetry, bool | Telemetry):
            raise ConfigurationError(
                f"telemetry must be True, False or a Telemetry, not {self.telemetry!r}."
            )
        if self.on_event is not None and not callable(self.on_event):
            raise ConfigurationError(f"on_event must be an async function, not {self.on_event!r}.")
        if not callable(self.clock):
            raise ConfigurationError(f"clock must be a function, not {self.clock!r}.")
        object.__setattr__(self, "idle_timeout", idle)
        object.__setattr__(self, "absolute_timeout", absolute)
        object.__setattr__(self, "lock_timeout", to_seconds(self.lock_timeout, "lock_timeout"))
        object.__setattr__(self, "lock_ttl", to_seconds(self.lock_ttl, "lock_ttl"))
        if self.cleanup_interval is not None:
            interval = to_seconds(self.cleanup_interval, "cleanup_interval")
            object.__setattr__(self, "cleanup_interval", interval)

    def _check_maxima(self, idle: float, absolute: float | None) -> None:
        """Resolve and check the bounds of the lifetimes routes may choose."""
        longest_idle = (
            idle
            if self.max_idle_timeout is None
            else to_seconds(self.max_idle_timeout, "max_idle_timeout")
        )
        longest_absolute = (
            absolute
            if self.max_absolute_timeout is None
            else to_seconds(self.max_absolute_timeout, "max_absolute_timeout")
        )
        if longest_idle < idle:
            raise ConfigurationError(
                f"max_idle_timeout ({longest_idle:g} s) is shorter than idle_timeout "
                f"({idle:g} s): it bounds what a route may choose, so raise it, or leave it "
                "out to bound routes by idle_timeout."
            )
        if longest_absolute is not None and absolute is not None and longest_absolute < absolute:
            raise ConfigurationError(
                f"max_absolute_timeout ({longest_absolute:g} s) is shorter than "
                f"absolute_timeout ({absolute:g} s): raise it, or leave it out."
            )
        if longest_absolute is not None and longest_absolute < longest_idle:
            which = "max_absolute_timeout" if self.max_absolute_timeout else "absolute_timeout"
            raise ConfigurationError(
                f"max_idle_timeout ({longest_idle:g} s) is longer than the longest absolute "
                f"timeout a session may have ({which}, {longest_absolute:g} s), so no session "
                f"could be given it: pass max_absolute_timeout of at least {longest_idle:g} s."
            )
        object.__setattr__(self, "max_idle_timeout", longest_idle)
        object.__setattr__(self, "max_absolute_timeout", longest_absolute)

    def _check_user_index(self) -> None:
        """The settings of the index of users' sessions, which the others need."""
        for name in ("user_index", "record_client"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be True or False.")
        _check_count("max_user_sessions", self.max_user_sessions, "sessions")
        for name in ("record_client", "max_user_sessions"):
            if getattr(self, name) not in (None, False) and not self.user_index:
                raise ConfigurationError(f"{name}={getattr(self, name)!r} needs user_index=True.")

    @classmethod
    def from_settings(cls, settings: PolicySettings) -> SessionPolicy:
        """The policy the keyword arguments of a constructor describe.

        Raises:
            ConfigurationError: an unknown setting, or a value out of range.
        """
        unknown = set(settings) - POLICY_SETTINGS
        if unknown:
            raise ConfigurationError(f"Unknown session settings: {', '.join(sorted(unknown))}.")
        # Durations may come as timedeltas, which __post_init__ turns into seconds.
        return cls(**settings)  # type: ignore[arg-type]


def _check_count(name: str, value: object, unit: str) -> None:
    """Refuse ``value`` unless it is ``None`` or a positive whole number (of ``unit``)."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    if value is not None and not (whole and value > 0):  # type: ignore[operator]
        raise ConfigurationError(f"{name}={value!r}: a positive number of {unit}, or None.")


class PolicySettings(TypedDict, total=False):
    """The keyword arguments that make a `SessionPolicy` (each field, by name)."""

    idle_timeout: float | timedelta
    absolute_timeout: float | timedelta | None
    max_idle_timeout: float | timedelta | None
    max_absolute_timeout: float | timedelta | None
    concurrency: ConcurrencyPolicy
    on_backend_error: BackendErrorPolicy
    lock_timeout: float | timedelta
    lock_ttl: float | timedelta
    max_record_bytes: int | None
    cleanup_interval: float | timedelta | None
    user_index: bool
    record_client: bool
    max_user_sessions: int | None
    on_event: Callable[[SessionEvent], Awaitable[None]] | None
    telemetry: bool | Telemetry
    clock: Callable[[], float]


#: The names of the policy's settings.
POLICY_SETTINGS = frozenset(field.name for field in fields(SessionPolicy))
