"""OpenTelemetry: metrics and spans collected with the SDK's in-memory reader and exporter."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import fastapi_session_deps.telemetry as telemetry_module
from fastapi_session_deps import (
    ConfigurationError,
    MemoryBackend,
    MissingDependencyError,
    SessionManager,
)
from fastapi_session_deps.telemetry import InstrumentedStore, Telemetry

from .helpers import Clock, SwitchableBackend
from .support import AppSession, build_app, manager_factory

pytestmark = pytest.mark.anyio


@dataclass
class Collected:
    telemetry: Telemetry
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """Each data point of the instrument ``name``: its attributes and its value (a sum,
        or a histogram's count)."""
        found = []
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            found.append((dict(point.attributes), value or point.count))
        return found

    def count(self, name: str, **attributes: Any) -> int:
        return sum(
            value
            for found, value in self.points(name)
            if all(found.get(key) == wanted for key, wanted in attributes.items())
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def collected() -> Iterator[Collected]:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(
        meter_provider=MeterProvider(metric_readers=[reader]), tracer_provider=tracer_provider
    )
    yield Collected(telemetry, reader, exporter, tracer_provider)
    tracer_provider.shutdown()


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_a_session_s_life_is_counted_and_timed(collected: Collected, clock: Clock) -> None:
    sessions = manager_factory(MemoryBackend(clock=clock), clock)(telemetry=collected.telemetry)
    async with client_for(build_app(sessions)) as client:
        await client.post("/login")
        await client.get("/read")
        await client.post("/incr")
        await client.get("/noop")
        await client.post("/logout")
        token = client.cookies.get("session")

    assert collected.count("session.loads", **{"session.outcome": "new"}) == 1
    assert collected.count("session.loads", **{"session.outcome": "stored"}) == 3
    assert collected.count("session.commits") == 4  # /noop loads nothing, commits nothing
    assert collected.count("session.commits", **{"session.fate": "move"}) == 1
    assert collected.count("session.commits", **{"session.fate": "end"}) == 1
    # the log-in of a visitor new to the site stores a new session: "created"
    assert collected.count("session.events", **{"session.event": "created"}) == 1
    assert collected.count("session.events", **{"session.event": "regenerated"}) == 0
    assert collected.count("session.events", **{"session.event": "destroyed"}) == 1
    for operation in ("get", "set", "update", "delete"):
        assert collected.count("session.store.duration", **{"session.operation": operation})
    assert collected.count("session.store.errors") == 0
    assert collected.count("session.unavailable") == 0

    # Never a token, an id, a store key or a value: only names, kinds and outcomes.
    points = collected.points("session.store.duration")
    values = {str(v) for attributes, _ in points for v in attributes.values()}
    values |= {str(v) for span in collected.spans() for v in (span.attributes or {}).values()}
    assert values <= {"MemoryBackend", "get", "set", "update", "delete", "ok", "True", "False"}
    assert token is None or all(token not in value for value in values)


async def test_a_new_session_is_an_event_and_store_calls_are_children_of_the_request(
    collected: Collected, clock: Clock
) -> None:
    sessions = manager_factory(MemoryBackend(clock=clock), clock)(telemetry=collected.telemetry)
    tracer = collected.tracer_provider.get_tracer("test")
    async with client_for(build_app(sessions)) as client:
        with tracer.start_as_current_span("POST /incr") as request_span:
            await client.post("/incr")
    assert collected.count("session.events", **{"session.event": "created"}) == 1
    (store_span,) = [s for s in collected.spans() if s.name.startswith("session.store")]
    assert store_span.name == "session.store set"
    assert store_span.kind is SpanKind.CLIENT
    assert store_span.parent is not None
    assert store_span.parent.span_id == request_span.get_span_context().span_id
    assert store_span.attributes == {
        "session.store": "MemoryBackend",
        "session.operation": "set",
    }


async def test_a_store_failure_is_an_error_a_failed_span_and_a_503(
    collected: Collected, clock: Clock
) -> None:
    store = SwitchableBackend(MemoryBackend(clock=clock))
    sessions = manager_factory(store, clock)(telemetry=collected.telemetry)
    async with client_for(build_app(sessions)) as client:
        await client.post("/login")
        store.down.add("get")
        assert (await client.get("/read")).status_code == 503
        store.down.clear()
        store.down.add("update")
        assert (await client.post("/incr")).status_code == 503
    assert collected.count("session.unavailable", **{"session.reason": "store"}) == 2
    errors = collected.points("session.store.errors")
    assert sorted(attributes["session.operation"] for attributes, _ in errors) == [
        "get",
        "update",
    ]
    assert {attributes["error.type"] for attributes, _ in errors} == {"BackendUnavailable"}
    assert {attributes["session.store"] for attributes, _ in errors} == {"SwitchableBackend"}
    failed = [s for s in collected.spans() if s.status.status_code is StatusCode.ERROR]
    assert [s.name for s in failed] == ["session.store get", "session.store update"]
    assert all(not s.events for s in failed)  # no exception message recorded: it may quote


async def test_lock_waits_are_timed_and_a_busy_session_is_counted(
    collected: Collected, clock: Clock
) -> None:
    sessions = manager_factory(MemoryBackend(clock=clock), clock)(
        telemetry=collected.telemetry, concurrency="lock", lock_timeout=0.05
    )
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    release, holding = anyio.Event(), anyio.Event()
    Session = Annotated[AppSession, Depends(sessions.get_session)]

    @app.post("/start")
    async def start(session: Session) -> None:
        session.counter = 1

    @app.post("/hold")
    async def hold(session: Session) -> None:
        holding.set()
        await release.wait()  # keeps the session's lock until the test lets go

    @app.post("/incr")
    async def incr(session: Session) -> None:
        session.counter += 1

    async with client_for(app) as client:
        await client.post("/start")
        async with anyio.create_task_group() as group:
            group.start_soon(client.post, "/hold")
            await holding.wait()
            busy = await client.post("/incr")  # waits lock_timeout, then gives up
            release.set()
        assert busy.status_code == 503
        assert (await client.post("/incr")).status_code == 200
    assert collected.count("session.unavailable", **{"session.reason": "busy"}) == 1
    acquired = {"session.operation": "acquire_lock", "session.lock.held": True}
    assert collected.count("session.store.duration", **acquired) == 2  # /hold, the last /incr
    refused = {"session.operation": "acquire_lock", "session.lock.held": False}
    assert collected.count("session.store.duration", **refused) == 1  # waited, in vain
    spans = [s for s in collected.spans() if s.name == "session.store acquire_lock"]
    assert sorted((s.attributes or {})["session.lock.held"] for s in spans) == [False, True, True]
    assert collected.count("session.store.duration", **{"session.operation": "release_lock"})


async def test_with_telemetry_off_the_same_life_and_failures_record_nothing(
    collected: Collected, clock: Clock
) -> None:
    """The default path: loads, commits, events and 503s go on without instruments."""
    store = SwitchableBackend(MemoryBackend(clock=clock))
    sessions = manager_factory(store, clock)()  # off: the default
    async with client_for(build_app(sessions)) as client:
        await client.post("/login")
        assert (await client.post("/incr")).json() == {"counter": 1}
        await client.post("/logout")
        await client.post("/login")
        store.down.add("get")
        assert (await client.get("/read")).status_code == 503
        store.down = {"update"}
        assert (await client.post("/incr")).status_code == 503
    assert collected.points("session.loads") == []


async def test_telemetry_is_off_unless_asked_for(clock: Clock) -> None:
    factory = manager_factory(MemoryBackend(clock=clock), clock)
    for off in (factory(), factory(telemetry=False)):  # the package is installed here
        assert off.engine.telemetry is None
        assert off.engine.store is off.backend  # called directly: nothing in between
    on = factory(telemetry=True)
    assert isinstance(on.engine.store, InstrumentedStore)
    assert on.engine.telemetry is Telemetry.shared()
    with pytest.raises(ConfigurationError, match="telemetry must be True, False or a Telemetry"):
        factory(telemetry="yes")


def test_without_the_package_telemetry_true_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setattr(telemetry_module, "otel_metrics", None)
    factory = manager_factory(MemoryBackend(clock=clock), clock)
    absent: SessionManager[AppSession] = factory()
    assert absent.engine.store is absent.backend
    with pytest.raises(MissingDependencyError, match="fastapi-session-deps\\[otel\\]"):
        factory(telemetry=True)
    with pytest.raises(MissingDependencyError, match="opentelemetry-api"):
        Telemetry()


async def test_the_instrumented_store_passes_cleanup_stats_and_index_calls_through(
    collected: Collected, clock: Clock
) -> None:
    inner = MemoryBackend(clock=clock)
    store = InstrumentedStore(inner, collected.telemetry)
    await store.index_add("ada", "k", ttl=60)
    await store.set("k", {"\x00user": b'"ada"'}, ttl=60)
    assert [key for key, _, _ in await store.index_list("ada")] == ["k"]
    counted = await store.stats()
    assert counted is not None
    assert counted.top_users == [("ada", 1)]
    assert await store.index_keys("ada") == ["k"]
    assert [key for key, _, _ in await store.index_page("ada")] == ["k"]
    await store.replace_unchanged("k", {"\x00user": (b'"ada"', b'"ada"')})
    await store.index_remove("ada", ["k"])
    await store.index_add("ada", "k", ttl=60)
    assert await store.index_end("ada", ["gone"]) == []
    assert await store.index_end_some("ada", limit=5) == ([("k", {"\x00user": b'"ada"'})], None)
    await store.set("old", {}, ttl=60)
    clock.advance(120)
    assert await store.delete_expired() == 1
    await store.aclose()
    operations = {a["session.operation"] for a, _ in collected.points("session.store.duration")}
    assert operations == {
        "index_add",
        "set",
        "index_list",
        "index_keys",
        "index_page",
        "replace_unchanged",
        "index_remove",
        "index_end",
        "index_end_some",
        "delete_expired",
    }
