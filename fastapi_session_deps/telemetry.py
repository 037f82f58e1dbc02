"""OpenTelemetry metrics and traces, opt-in: ``telemetry=True`` in the session settings (with
``opentelemetry-api`` installed: the ``otel`` extra), or a `Telemetry` of one's own.

Off (the default), nothing here runs: the engine holds ``None`` instead of a `Telemetry`
and calls its store directly. On, the engine calls its store through
`InstrumentedStore`, which times each call into a histogram and a span, and counts loads,
commits, lifecycle events and "retry later" answers. The API alone records nothing: an
app that configures the OpenTelemetry SDK (a ``MeterProvider``, a ``TracerProvider``)
gets the data.

No attribute ever holds a token, a session id, a store key, a user or a stored value:
only the store's class name, the operation, outcomes and error kinds.

=============================  ==========  ==================================================
instrument                     kind        attributes
=============================  ==========  ==================================================
``session.loads``              counter     ``session.outcome``: stored, new, unsaved
``session.commits``            counter     ``session.fate``: keep, renew, move, end
``session.events``             counter     ``session.event``: created, regenerated,
                                           destroyed, revoked, expired
``session.unavailable``        counter     ``session.reason``: store, busy (each "retry
                                           later": a 503, or a WebSocket closed 1013)
``session.store.duration``     histogram   ``session.store``, ``session.operation``,
                                           ``session.outcome``: ok, or the error's kind;
                                           for ``acquire_lock``, ``session.lock.held``
``session.store.errors``       counter     ``session.store``, ``session.operation``,
                                           ``error.type``
=============================  ==========  ==================================================

Spans: ``session.store <operation>`` (kind CLIENT) around each store call, children of
the request's span when an ASGI instrumentation made one, with the same attributes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Collection, Mapping
from typing import Any, TypeVar, cast

from .backends.base import (
    Backend,
    EndBatch,
    EndedRecord,
    Progress,
    SessionIndex,
    SessionLocks,
    StoreStats,
    UserRecord,
    backend_name,
)
from .exceptions import BackendError, BackendUnavailable, MissingDependencyError

try:  # the `otel` extra
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - the test environment has it; see test_telemetry
    otel_metrics = otel_trace = None  # type: ignore[assignment]

__all__ = ["InstrumentedStore", "Telemetry", "telemetry_for"]

R = TypeVar("R")

#: The instrumentation scope's name (the library's logger's, too).
SCOPE = "fastapi_session_deps"
#: The store calls that are measured.
OPERATIONS = (
    "get",
    "set",
    "update",
    "delete",
    "replace_unchanged",
    "delete_expired",
    "acquire_lock",
    "release_lock",
    "index_add",
    "index_remove",
    "index_list",
    "index_keys",
    "index_page",
    "index_end",
    "index_end_some",
)


class Telemetry:
    """The library's instruments, made once from the global meter and tracer providers."""

    _shared: Telemetry | None = None

    def __init__(
        self, *, meter_provider: Any | None = None, tracer_provider: Any | None = None
    ) -> None:
        """Instruments from the given providers, or from the global ones (what
        ``telemetry=True`` uses, made once)."""
        if not available():
            raise MissingDependencyError.of("Telemetry", "otel", "opentelemetry-api")
        meter = otel_metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.tracer = otel_trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self.client_kind = otel_trace.SpanKind.CLIENT
        self.error_status = otel_trace.Status(otel_trace.StatusCode.ERROR)
        self.loads = meter.create_counter(
            "session.loads", unit="{load}", description="Sessions loaded, by outcome."
        )
        self.commits = meter.create_counter(
            "session.commits", unit="{commit}", description="Sessions committed, by fate."
        )
        self.events = meter.create_counter(
            "session.events",
            unit="{event}",
            description="Sessions created, regenerated, destroyed, revoked, found expired.",
        )
        self.unavailable = meter.create_counter(
            "session.unavailable",
            unit="{response}",
            description="Requests answered 503: the store unavailable, or the session busy.",
        )
        self.store_duration = meter.create_histogram(
            "session.store.duration", unit="s", description="Session store calls."
        )
        self.store_errors = meter.create_counter(
            "session.store.errors", unit="{error}", description="Failed store calls, by kind."
        )

    @classmethod
    def shared(cls) -> Telemetry:
        """The instruments, made on first use (after the app set its providers up)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared


def available() -> bool:
    """Whether ``opentelemetry-api`` is installed."""
    return otel_metrics is not None


def telemetry_for(setting: bool | Telemetry) -> Telemetry | None:
    """The instruments for a policy's ``telemetry`` setting: ``False`` (none), ``True``
    (the global providers'; an error without the package), or a `Telemetry` of its own."""
    if isinstance(setting, Telemetry):
        return setting
    if not setting:
        return None
    if not available():
        raise MissingDependencyError.of("telemetry=True", "otel", "opentelemetry-api")
    return Telemetry.shared()


class InstrumentedStore(Backend, SessionLocks, SessionIndex):
    """The engine's view of its store, with each call timed, traced and its failures
    counted. Lock and index calls are only made when the store has them."""

    def __init__(self, inner: Backend, telemetry: Telemetry) -> None:
        self.inner = inner
        self.telemetry = telemetry
        self.name = backend_name(inner)
        # Made once per operation, not per call: span names and attribute sets.
        self._spans = {operation: f"session.store {operation}" for operation in OPERATIONS}
        self._attributes: dict[str, dict[str, Any]] = {
            operation: {"session.store": self.name, "session.operation": operation}
            for operation in OPERATIONS
        }
        self._ok: dict[str, dict[str, Any]] = {
            operation: {**attributes, "session.outcome": "ok"}
            for operation, attributes in self._attributes.items()
        }

    async def _call(self, operation: str, call: Awaitable[R]) -> R:
        telemetry = self.telemetry
        attributes = self._attributes[operation]
        # Not made the current span: a store call has no children, and attaching a
        # context costs more than the span. Its parent is the request's current span.
        span = telemetry.tracer.start_span(
            self._spans[operation], kind=telemetry.client_kind, attributes=attributes
        )
        started = time.perf_counter()
        try:
            result = await call
            if operation == "acquire_lock":
                span.set_attribute("session.lock.held", bool(result))
        except (BackendUnavailable, BackendError) as exc:
            kind = type(exc).__name__
            span.set_status(telemetry.error_status)  # no exception event: it may quote
            span.set_attribute("error.type", kind)
            telemetry.store_errors.add(1, {**attributes, "error.type": kind})
            telemetry.store_duration.record(
                time.perf_counter() - started, {**attributes, "session.outcome": kind}
            )
            raise
        finally:
            span.end()
        if operation == "acquire_lock":
            measured = {**self._ok[operation], "session.lock.held": bool(result)}
        else:
            measured = self._ok[operation]
        telemetry.store_duration.record(time.perf_counter() - started, measured)
        return result

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        return await self._call("get", self.inner.get(key, ttl=ttl))

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        await self._call("set", self.inner.set(key, fields, ttl=ttl))

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        return await self._call(
            "update", self.inner.update(key, changed, removed, ttl=ttl, exact=exact)
        )

    async def delete(self, key: str) -> bool | None:
        return await self._call("delete", self.inner.delete(key))

    async def replace_unchanged(
        self, key: str, replacements: Mapping[str, tuple[bytes, bytes]]
    ) -> None:
        await self._call("replace_unchanged", self.inner.replace_unchanged(key, replacements))

    async def delete_expired(
        self, *, batch_size: int = 1000, progress: Progress | None = None
    ) -> int:
        return await self._call(
            "delete_expired", self.inner.delete_expired(batch_size=batch_size, progress=progress)
        )

    async def stats(self, *, top: int = 10) -> StoreStats | None:
        return await self.inner.stats(top=top)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        locks = cast("SessionLocks", self.inner)
        return await self._call("acquire_lock", locks.acquire_lock(key, token, ttl=ttl, wait=wait))

    async def release_lock(self, key: str, token: str) -> None:
        locks = cast("SessionLocks", self.inner)
        await self._call("release_lock", locks.release_lock(key, token))

    async def index_add(self, user: str, key: str, *, ttl: float) -> None:
        index = cast("SessionIndex", self.inner)
        await self._call("index_add", index.index_add(user, key, ttl=ttl))

    async def index_remove(self, user: str, keys: Collection[str]) -> None:
        index = cast("SessionIndex", self.inner)
        await self._call("index_remove", index.index_remove(user, keys))

    async def index_list(self, user: str) -> list[UserRecord]:
        index = cast("SessionIndex", self.inner)
        return await self._call("index_list", index.index_list(user))

    async def index_keys(self, user: str, *, offset: int = 0, limit: int = 1000) -> list[str]:
        index = cast("SessionIndex", self.inner)
        return await self._call("index_keys", index.index_keys(user, offset=offset, limit=limit))

    async def index_page(
        self, user: str, *, offset: int = 0, limit: int = 100
    ) -> list[UserRecord]:
        index = cast("SessionIndex", self.inner)
        return await self._call("index_page", index.index_page(user, offset=offset, limit=limit))

    async def index_end_some(
        self, user: str, *, keep: Collection[str] = (), after: str | None = None, limit: int = 1000
    ) -> EndBatch:
        index = cast("SessionIndex", self.inner)
        return await self._call(
            "index_end_some", index.index_end_some(user, keep=keep, after=after, limit=limit)
        )

    async def index_end(self, user: str, keys: Collection[str]) -> list[EndedRecord]:
        index = cast("SessionIndex", self.inner)
        return await self._call("index_end", index.index_end(user, keys))
