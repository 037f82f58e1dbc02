"""Sending a signed-out browser to the log-in page: ``login_url``, ``redirect_to`` and
`local_path`, while scripts keep their 401 and 403."""

from typing import Annotated
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given
from hypothesis import strategies as st

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    CSRFProtection,
    MemoryBackend,
    SessionManager,
    local_path,
)

from .helpers import SECRET
from .support import AppSession

pytestmark = pytest.mark.anyio

BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
SCRIPT = {"accept": "application/json"}


def shop(**manager_options: object) -> tuple[FastAPI, SessionManager[AppSession]]:
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=MemoryBackend(),
        **manager_options,  # type: ignore[arg-type]
    )
    csrf = CSRFProtection(sessions)
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]
    Required = Annotated[AppSession, Depends(sessions.require_session)]
    member = sessions.verifier(lambda s: s.user_id is not None)
    admin = sessions.verifier(lambda s: s.user_id == 1, redirect_to="/admin-login")

    @app.get("/form")
    async def form(session: Session) -> str:
        return csrf.token(session)  # stores a CSRF secret, and nothing of the app's

    @app.post("/visit")
    async def visit(session: Session) -> int:
        session.counter += 1
        return session.counter

    @app.post("/login")
    async def login(session: Session, user: int = 2) -> None:
        await sessions.regenerate(session)
        session.user_id = user

    @app.post("/bind")
    async def bind(session: Session) -> None:
        await sessions.login(session, "ada")  # bound to a user, no field of the app's set

    @app.get("/account")
    async def account(session: Required) -> int:
        return session.counter

    @app.api_route("/orders", methods=["GET", "POST"])
    async def orders(session: Annotated[AppSession, Depends(member)]) -> int | None:
        return session.user_id

    @app.get("/admin")
    async def admin_page(session: Annotated[AppSession, Depends(admin)]) -> str:
        return "admin"

    return app, sessions


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_signed_out_browser_is_sent_to_log_in_and_a_script_gets_401() -> None:
    app, _ = shop(login_url="/login")
    async with client(app) as http:
        page = await http.get("/account", params={"tab": "cart"}, headers=BROWSER)
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Faccount%3Ftab%3Dcart"
        assert page.headers["cache-control"] == "no-store"
        assert (await http.get("/account", headers=SCRIPT)).status_code == 401
        assert (await http.get("/account")).status_code == 401  # no Accept: a script


async def test_a_failed_check_redirects_a_browser_too_and_a_form_post_gets_no_next() -> None:
    app, _ = shop(login_url="/login?from=shop")
    async with client(app) as http:
        await http.post("/visit")  # a session with data, but nobody signed in
        page = await http.get("/orders", headers=BROWSER)
        assert page.headers["location"] == "/login?from=shop&next=%2Forders"
        posted = await http.post("/orders", headers=BROWSER)
        assert (posted.status_code, posted.headers["location"]) == (303, "/login?from=shop")
        assert (await http.get("/orders", headers=SCRIPT)).status_code == 403
        # A verifier's own target wins over the manager's.
        await http.post("/login")
        admin = await http.get("/admin", headers=BROWSER)
        assert admin.headers["location"] == "/admin-login?next=%2Fadmin"
        assert (await http.get("/orders", headers=BROWSER)).json() == 2


async def test_without_login_url_browsers_get_the_status_as_before() -> None:
    app, _ = shop()
    async with client(app) as http:
        assert (await http.get("/account", headers=BROWSER)).status_code == 401
        await http.post("/visit")
        assert (await http.get("/orders", headers=BROWSER)).status_code == 403


async def test_a_session_holding_only_the_librarys_fields_is_no_session() -> None:
    app, _ = shop(login_url="/login")
    async with client(app) as http:
        await http.get("/form")  # its CSRF secret is stored: a session, with nothing in it
        assert "session" in http.cookies
        assert (await http.get("/account", headers=SCRIPT)).status_code == 401
        page = await http.get("/orders", headers=BROWSER)  # 401 first, not the check's 403
        assert page.headers["location"] == "/login?next=%2Forders"
        await http.post("/visit")  # now it holds something of the app's
        assert (await http.get("/account", headers=SCRIPT)).json() == 1


async def test_a_session_bound_to_a_user_counts_even_with_default_data() -> None:
    app, _ = shop(login_url="/login", user_index=True)
    async with client(app) as http:
        await http.post("/bind")
        assert (await http.get("/account", headers=SCRIPT)).json() == 0


@pytest.mark.parametrize(
    "target", ["https://evil.example/login", "//evil.example", "/\\evil.example", "login", ""]
)
def test_a_redirect_target_off_this_site_is_refused_at_start_up(target: str) -> None:
    with pytest.raises(ConfigurationError, match="give a local path"):
        shop(login_url=target)
    _, sessions = shop()
    with pytest.raises(ConfigurationError, match="redirect_to"):
        sessions.verifier(lambda s: True, redirect_to=target)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("/cart?x=1#top", "/cart?x=1#top"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("/ok\\..\\evil", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        ("javascript:alert(1)", "/"),
        ("cart", "/"),
    ],
)
def test_local_path_keeps_only_paths_of_this_site(sent: str | None, kept: str) -> None:
    assert local_path(sent) == kept


@given(st.text())
def test_local_path_never_lets_another_site_through(sent: str) -> None:
    kept = local_path(sent, default="/home")
    parts = urlsplit(kept)
    assert kept == "/home" or kept == sent
    assert kept.startswith("/")
    assert not kept.startswith("//")
    assert parts.scheme == parts.netloc == ""
    assert "\\" not in kept
    assert all(ord(char) >= 0x20 for char in kept)
