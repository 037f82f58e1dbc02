"""Frontends are OpenAPI security schemes, shown on the routes that use a session."""

import httpx
import pytest

from fastapi_session_deps import CookieFrontend, HeaderFrontend, MemoryBackend, SessionManager

from .helpers import SECRET
from .support import AppSession, build_app

pytestmark = pytest.mark.anyio

SESSION_ROUTES = {("/read", "get"), ("/me", "get"), ("/read-only", "get"), ("/incr", "post")}


@pytest.mark.parametrize(
    ("frontend", "name", "scheme"),
    [
        (
            CookieFrontend(SECRET, cookie_name="sid"),
            "SessionCookie",
            {"in": "cookie", "name": "sid"},
        ),
        (HeaderFrontend(SECRET), "SessionHeader", {"in": "header", "name": "X-Session-Token"}),
    ],
)
async def test_the_schema_lists_the_scheme_on_session_routes_only(
    frontend: CookieFrontend | HeaderFrontend, name: str, scheme: dict[str, str]
) -> None:
    sessions = SessionManager(AppSession, frontend=frontend, backend=MemoryBackend())
    app = build_app(sessions)
    checked = sessions.verifier(lambda s: True)

    from typing import Annotated

    from fastapi import Depends

    @app.get("/checked")
    async def checked_route(session: Annotated[AppSession, Depends(checked)]) -> None:
        return None

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        schema = (await client.get("/openapi.json")).json()
    listed = schema["components"]["securitySchemes"][name]
    assert listed["type"] == "apiKey"
    assert {key: listed[key] for key in ("in", "name")} == scheme
    for route, method in [*SESSION_ROUTES, ("/checked", "get")]:
        assert schema["paths"][route][method]["security"] == [{name: []}], route
    for route, method in [("/noop", "get"), ("/request-only", "get")]:
        assert "security" not in schema["paths"][route][method], route
    # The scheme is documentation only: it adds no parameter a client must send.
    for parameter in schema["paths"]["/read"]["get"].get("parameters", []):
        assert parameter["name"] != "session_scheme"


async def test_a_frontend_without_a_scheme_adds_no_security() -> None:
    import inspect
    from collections.abc import Iterator

    from starlette.datastructures import MutableHeaders
    from starlette.requests import HTTPConnection
    from starlette.types import Scope

    from fastapi_session_deps import Frontend

    class Silent(Frontend):
        vary = "X-Nothing"

        def read_tokens(self, connection: HTTPConnection) -> Iterator[str]:
            return iter(())

        def send_token(
            self, headers: MutableHeaders, token: str, *, max_age: int, scope: Scope
        ) -> None:
            pass

        def clear_token(self, headers: MutableHeaders, *, scope: Scope) -> None:
            pass

        def token_headers(self, token: str) -> dict[str, str]:
            return {}

    sessions = SessionManager(
        AppSession, frontend=Silent(SECRET, namespace="silent"), backend=MemoryBackend()
    )
    assert list(inspect.signature(sessions.get_session).parameters) == ["connection"]
    app = build_app(sessions)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        schema = (await client.get("/openapi.json")).json()
        assert "securitySchemes" not in schema.get("components", {})
        assert (await client.get("/read")).json()["counter"] == 0
