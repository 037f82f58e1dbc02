"""fastapi-session-deps, as its README shows: a typed model through Depends()."""

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    MemoryBackend,
    RedisBackend,
    SessionManager,
    SessionModel,
)

SECRET = "bench-secret-key-0123456789-abcdefghijkl"  # noqa: S105 - a bench key


class UserSession(SessionModel):
    user_id: int | None = None
    counter: int = 0


def telemetry(kind: str) -> Any:
    """Off (the default), on with the OpenTelemetry API alone ("api": no SDK, every call a
    no-op), or on with the SDK recording everything ("sdk": metrics read by an in-memory
    reader, spans batched to an exporter that drops them)."""
    if kind == "api":
        return True
    if kind != "sdk":
        return False
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from fastapi_session_deps.telemetry import Telemetry

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return Telemetry(meter_provider=meter_provider, tracer_provider=tracer_provider)


def create_app() -> FastAPI:
    redis_url = os.environ.get("BENCH_REDIS_URL")
    options = {}
    if os.environ.get("BENCH_PARSER") == "python":  # redis-py's own parser, not hiredis
        from redis._parsers import _AsyncRESP2Parser

        options["parser_class"] = _AsyncRESP2Parser
    sql_url = os.environ.get("BENCH_SQL_URL")
    backend: Backend
    if sql_url:  # the table is made by the bench before the app starts
        from fastapi_session_deps import SQLBackend

        backend = SQLBackend.from_url(sql_url)
    elif redis_url:
        backend = RedisBackend.from_url(redis_url, **options)
    else:
        backend = MemoryBackend()
    if os.environ.get("BENCH_ENCRYPTION_KEY"):  # every stored value sealed with AES-GCM
        from fastapi_session_deps import EncryptedBackend

        backend = EncryptedBackend(backend, keys=[os.environ["BENCH_ENCRYPTION_KEY"]])
    sessions = SessionManager(
        UserSession,
        telemetry=telemetry(os.environ.get("BENCH_TELEMETRY", "")),
        frontend=CookieFrontend(SECRET, secure=False),
        backend=backend,
        concurrency=os.environ.get("BENCH_POLICY", "merge"),  # type: ignore[arg-type]
        user_index=bool(os.environ.get("BENCH_USER_INDEX")),
    )
    app = FastAPI(lifespan=sessions.lifespan)
    app.add_middleware(sessions.middleware)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(session: Session) -> dict[str, int]:
        return {"counter": session.counter}

    @app.post("/incr")
    async def incr(session: Session) -> dict[str, int]:
        session.counter += 1
        return {"counter": session.counter}

    @app.post("/login")
    async def login(session: Session) -> dict[str, bool]:
        if sessions.policy.user_index:  # bound to its user, and in the user's index
            await sessions.login(session, "bench-user")
        else:
            await sessions.regenerate(session)
        session.user_id = 1
        return {"ok": True}

    return app
