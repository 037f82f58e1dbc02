"""The layers of a session read, one at a time: for "where the time goes".

Each route adds one layer to the one before: bare FastAPI; the session middleware on a
route that does not use the session; a trivial async dependency that is an OpenAPI
security scheme, as the session dependency is (FastAPI's own price for Depends); and the
session dependency itself, reading an unchanged session (load and commit). Beside the
dependency, a route taking the `Request` instead, as the peers' routes do to reach
``request.session``: FastAPI's price for that.
"""

from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection, Request

from fastapi_session_deps import CookieFrontend, MemoryBackend, SessionManager, SessionModel

SECRET = "bench-secret-key-0123456789-abcdefghijkl"  # noqa: S105 - a bench key


class UserSession(SessionModel):
    user_id: int | None = None
    counter: int = 0


class Trivial(SecurityBase):
    """A dependency that does nothing but be awaited, as a security scheme."""

    def __init__(self) -> None:
        self.model = APIKey(**{"in": APIKeyIn("cookie")}, name="session")  # type: ignore[arg-type]
        self.scheme_name = "Trivial"

    async def __call__(self, connection: HTTPConnection) -> int:
        return 0


def create_app() -> FastAPI:
    sessions = SessionManager(
        UserSession, frontend=CookieFrontend(SECRET, secure=False), backend=MemoryBackend()
    )
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    trivial = Trivial()

    @app.get("/noop")
    async def noop() -> dict[str, int]:
        return {"counter": 0}

    @app.get("/dependency")
    async def dependency(value: Annotated[int, Depends(trivial)]) -> dict[str, int]:
        return {"counter": value}

    @app.get("/request")
    async def request_parameter(request: Request) -> dict[str, int]:
        return {"counter": 0}

    @app.get("/read")
    async def read(
        session: Annotated[UserSession, Depends(sessions.get_session)],
    ) -> dict[str, int]:
        return {"counter": session.counter}

    @app.post("/login")
    async def login(
        session: Annotated[UserSession, Depends(sessions.get_session)],
    ) -> dict[str, bool]:
        await sessions.regenerate(session)
        session.user_id = 1
        return {"ok": True}

    return app
