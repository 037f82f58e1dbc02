"""Shared fixtures: the clock, the store under test, and a ready-made app."""

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    MemoryBackend,
    SessionManager,
    SessionModel,
)

from .helpers import SECRET, Clock, CountingBackend


class AppSession(SessionModel):
    user_id: int | None = None
    counter: int = 0
    cart: list[str] = []
    prefs: dict[str, str] = {}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory"])
def backend(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Backend]:
    """Every store the behaviour suite runs against, on the test's clock where it has one."""
    if request.param == "memory":
        yield MemoryBackend(clock=clock)
    else:  # pragma: no cover - further stores join this list
        raise AssertionError(request.param)


@pytest.fixture
def counting(backend: Backend) -> CountingBackend:
    return CountingBackend(backend)


ManagerFactory = Callable[..., SessionManager[AppSession]]


@pytest.fixture
def make_manager(counting: CountingBackend, clock: Clock) -> ManagerFactory:
    """Build a manager on the counting store and the test clock; keywords override."""

    def factory(**options: Any) -> SessionManager[AppSession]:
        frontend_options = options.pop("frontend_options", {})
        options.setdefault(
            "frontend", CookieFrontend(secret_key=SECRET, secure=False, **frontend_options)
        )
        options.setdefault("backend", counting)
        options.setdefault("clock", clock)
        return SessionManager(AppSession, **options)

    return factory


def build_app(sessions: SessionManager[AppSession]) -> FastAPI:
    """An app whose routes exercise every part of the typed API."""
    app = FastAPI(lifespan=sessions.lifespan)
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]
    Required = Annotated[AppSession, Depends(sessions.require_session)]

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(session: Session) -> dict[str, Any]:
        return session.model_dump()

    @app.get("/me")
    async def me(session: Required) -> dict[str, Any]:
        return session.model_dump()

    @app.post("/login")
    async def login(session: Session, user_id: int = 1) -> dict[str, bool]:
        await sessions.regenerate(session)
        session.user_id = user_id
        return {"ok": True}

    @app.post("/incr")
    async def incr(session: Session) -> dict[str, int]:
        session.counter += 1
        return {"counter": session.counter}

    @app.post("/cart")
    async def cart(session: Session, item: str) -> list[str]:
        session.cart.append(item)
        return session.cart

    @app.post("/logout")
    async def logout(session: Session, note: str | None = None) -> dict[str, bool]:
        await sessions.destroy(session)
        if note is not None:
            session.prefs["note"] = note
        return {"ok": True}

    @app.post("/fail")
    async def fail(session: Session, status: int = 500) -> JSONResponse:
        session.counter += 100
        return JSONResponse({"failed": True}, status_code=status)

    @app.post("/crash")
    async def crash(session: Session) -> None:
        session.counter += 1000
        raise RuntimeError("route failed")

    @app.get("/request-only")
    async def request_only(request: Request) -> dict[str, str]:
        return {"path": request.url.path}

    return app


@pytest.fixture
def manager(make_manager: ManagerFactory) -> SessionManager[AppSession]:
    return make_manager(idle_timeout=1800, absolute_timeout=86400)


@pytest.fixture
def app(manager: SessionManager[AppSession]) -> FastAPI:
    return build_app(manager)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
