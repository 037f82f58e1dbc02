"""The floor of a typed log-in with the secure defaults: their own work, and nothing else.

One pure ASGI middleware and one dependency, inline, with none of the library's
machinery (no session state, no policy, no size limit, no store interface, no error
handling): the route gets a new model through ``Depends()`` (a security scheme, as the
session dependency is, so that OpenAPI lists it), and when the response starts the
middleware does what a new session needs under this library's defaults:

- a new id (`new_session_id`) and its hash as the store key (`store_key`);
- the model's fields as JSON, each on its own, with the creation time, in a dict;
- the token signed with the same HMAC (`TokenSigner`), sent in a ``Set-Cookie``;
- ``Vary: Cookie`` and ``Cache-Control: private, no-store``.

What a log-in through the library costs beyond this row is the library's own price; what
this row costs beyond Starlette's and starsessions' log-ins is the price of the API
(``Depends()``) and of the defaults they do without.
"""

import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from pydantic_core import to_json
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_session_deps import SessionModel
from fastapi_session_deps.signing import TokenSigner, new_session_id, store_key

SECRET = "bench-secret-key-0123456789-abcdefghijkl"  # noqa: S105 - a bench key
LIFETIME = 1800
SLOT = "bench.login_floor"
COOKIE = f"; HttpOnly; Max-Age={LIFETIME}; Path=/; SameSite=lax".encode()


class UserSession(SessionModel):
    user_id: int | None = None
    counter: int = 0


class Floor:
    """The middleware: a new session's record and token, written as the response starts."""

    def __init__(self, app: ASGIApp, records: dict[str, tuple[dict[str, bytes], float]]):
        self.app = app
        self.records = records
        self.signer = TokenSigner(SECRET)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot: list[UserSession] = []
        scope[SLOT] = slot

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start" and slot:
                headers = message.setdefault("headers", [])
                headers.append((b"vary", b"Cookie"))
                now = time.time()
                session_id = new_session_id()
                fields = {name: to_json(value) for name, value in slot[0].model_dump().items()}
                fields["\x00created"] = to_json(now)
                self.records[store_key(session_id)] = (fields, now + LIFETIME)
                token = self.signer.sign(session_id, int(now))
                headers.append((b"set-cookie", b"session=" + token.encode() + COOKIE))
                headers.append((b"cache-control", b"private, no-store"))
            await send(message)

        await self.app(scope, receive, send_with_session)


class NewSession(SecurityBase):
    """The dependency: a new session for the route, left in the middleware's slot."""

    def __init__(self) -> None:
        self.model = APIKey(**{"in": APIKeyIn("cookie")}, name="session")  # type: ignore[arg-type]
        self.scheme_name = "Session"

    async def __call__(self, connection: HTTPConnection) -> UserSession:
        slot: list[UserSession] = connection.scope[SLOT]
        slot.append(UserSession())
        return slot[0]


def create_app() -> FastAPI:
    records: dict[str, Any] = {}
    app = FastAPI()
    app.add_middleware(Floor, records=records)
    Session = Annotated[UserSession, Depends(NewSession())]

    @app.post("/login")
    async def login(session: Session) -> dict[str, bool]:
        session.user_id = 1
        return {"ok": True}

    return app
