"""The helper that sets up a session for a test client without a log-in route."""

import httpx
import pytest

from fastapi_session_deps import HeaderFrontend
from fastapi_session_deps.testing import session_headers

from .helpers import SECRET
from .support import AppSession, ManagerFactory, build_app

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("frontend", ["cookie", "header"])
async def test_a_seeded_session_is_a_real_session(
    make_manager: ManagerFactory, frontend: str
) -> None:
    options = {"frontend": HeaderFrontend(SECRET)} if frontend == "header" else {}
    sessions = make_manager(absolute_timeout=3600, **options)
    app = build_app(sessions)
    headers = await session_headers(sessions, AppSession(user_id=5, cart=["tea"]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        me = await client.get("/me", headers=headers)
        assert me.status_code == 200
        assert (me.json()["user_id"], me.json()["cart"]) == (5, ["tea"])
        await client.post("/incr", headers=headers)  # and it is written back like any other
        assert (await client.get("/me", headers=headers)).json()["counter"] == 1
        assert (await client.get("/me")).status_code == 401  # only with the headers
