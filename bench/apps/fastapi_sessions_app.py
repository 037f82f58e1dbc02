"""fastapi-sessions, as its guide shows: cookie frontend, in-memory backend, a verifier."""

from uuid import UUID, uuid4

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi_sessions.backends.implementations import InMemoryBackend
from fastapi_sessions.frontends.implementations import CookieParameters, SessionCookie
from fastapi_sessions.session_verifier import SessionVerifier
from pydantic import BaseModel

SECRET = "bench-secret-key-0123456789-abcdefghijkl"  # noqa: S105 - a bench key


class SessionData(BaseModel):
    user_id: int
    counter: int = 0


class BasicVerifier(SessionVerifier[UUID, SessionData]):
    def __init__(
        self,
        *,
        identifier: str,
        auto_error: bool,
        backend: InMemoryBackend[UUID, SessionData],
        auth_http_exception: HTTPException,
    ) -> None:
        self._identifier = identifier
        self._auto_error = auto_error
        self._backend = backend
        self._auth_http_exception = auth_http_exception

    @property
    def identifier(self) -> str:
        return self._identifier

    @property
    def backend(self) -> InMemoryBackend[UUID, SessionData]:
        return self._backend

    @property
    def auto_error(self) -> bool:
        return self._auto_error

    @property
    def auth_http_exception(self) -> HTTPException:
        return self._auth_http_exception

    def verify_session(self, model: SessionData) -> bool:
        return True


def create_app() -> FastAPI:
    cookie = SessionCookie(
        cookie_name="cookie",
        identifier="general_verifier",
        auto_error=True,
        secret_key=SECRET,
        cookie_params=CookieParameters(),
    )
    backend = InMemoryBackend[UUID, SessionData]()
    verifier = BasicVerifier(
        identifier="general_verifier",
        auto_error=True,
        backend=backend,
        auth_http_exception=HTTPException(status_code=403, detail="invalid session"),
    )
    app = FastAPI()

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read", dependencies=[Depends(cookie)])
    async def read(data: SessionData = Depends(verifier)) -> dict[str, int]:  # noqa: B008
        return {"counter": data.counter}

    @app.post("/incr")
    async def incr(
        session_id: UUID = Depends(cookie),  # noqa: B008
        data: SessionData = Depends(verifier),  # noqa: B008
    ) -> dict[str, int]:
        data.counter += 1
        await backend.update(session_id, data)
        return {"counter": data.counter}

    @app.post("/login")
    async def login(response: Response) -> dict[str, bool]:
        session = uuid4()
        await backend.create(session, SessionData(user_id=1))
        cookie.attach_to_response(response, session)
        return {"ok": True}

    return app
