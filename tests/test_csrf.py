"""CSRF protection: a synchronizer token bound to the session, and an origin check."""

import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile, WebSocket
from fastapi.responses import HTMLResponse, RedirectResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import fastapi_session_deps.csrf as csrf_module
from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    CSRFError,
    CSRFProtection,
    MemoryBackend,
    SessionError,
    SessionManager,
    SessionMiddleware,
    csrf_error_response,
    csrf_exempt,
    csrf_token,
    destroy_session,
    regenerate_session,
)
from fastapi_session_deps._record import CSRF_FIELD

from .helpers import SECRET, Clock, CountingBackend, SwitchableBackend, call
from .support import AppSession, ManagerFactory, manager_factory

pytestmark = pytest.mark.anyio

TOKEN = re.compile(r'name="csrf_token" value="([A-Za-z0-9_-]{86})"')


def protected_app(sessions: SessionManager[AppSession], **options: Any) -> FastAPI:
    """A typed app with the check on every route, as the docs show it."""
    csrf = CSRFProtection(sessions, **options)
    app = FastAPI(
        dependencies=[Depends(csrf)], exception_handlers={CSRFError: csrf_error_response}
    )
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]

    @app.get("/form", response_class=HTMLResponse)
    async def form(session: Session) -> str:
        return f"<form method=post>{csrf.input(session)}</form>"

    @app.get("/token")
    async def token(session: Session) -> str:
        return csrf.token(session)

    @app.get("/count")
    async def count(session: Annotated[AppSession, Depends(sessions.get_session_readonly)]) -> int:
        return session.counter

    @app.post("/add")
    async def add(session: Session) -> int:
        session.counter += 1
        return session.counter

    @app.post("/named")
    async def named(session: Session, name: Annotated[str, Form()]) -> str:
        session.counter += 1
        return name

    @app.post("/raw")
    async def raw(request: Request, session: Session) -> str:
        session.counter += 1
        return (await request.body()).decode()

    @app.post("/login")
    async def login(session: Session) -> RedirectResponse:
        await sessions.regenerate(session)
        return RedirectResponse("/form", status_code=303)

    @app.post("/logout")
    async def logout(session: Session) -> None:
        await sessions.destroy(session)

    @app.api_route("/peek", methods=["GET", "HEAD", "OPTIONS"])
    async def peek() -> None: ...

    @app.api_route("/item", methods=["POST", "PUT", "PATCH", "DELETE"])
    async def item(request: Request) -> str:
        return request.method

    @app.post("/webhooks/paid")
    async def webhook() -> str:
        return "ok"

    @app.post("/signed")
    @csrf_exempt
    async def signed() -> str:
        return "ok"

    @app.websocket("/live")
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    return app


@pytest.fixture
def on_memory(clock: Clock) -> ManagerFactory:
    return manager_factory(MemoryBackend(clock=clock), clock)


@pytest.fixture
async def client(on_memory: ManagerFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = protected_app(on_memory(), exempt=["/webhooks/"])
    async with client_for(app) as client:
        yield client


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def page_token(client: httpx.AsyncClient, path: str = "/form") -> str:
    page = await client.get(path)
    assert page.status_code == 200
    found = TOKEN.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_the_token_is_stored_once_and_read_without_a_write_on_each_store(
    make_manager: ManagerFactory, counting: Any
) -> None:
    """On every store: the first page stores the secret with the session; later pages
    only read it (a fresh mask each time); a log-in replaces it; a log-out drops it."""
    async with client_for(protected_app(make_manager())) as client:
        first = await page_token(client)
        assert counting.calls["set"] == 1
        counting.reset()
        second = await page_token(client)
        assert second != first  # masked afresh
        assert dict(counting.calls) == {"get": 1}  # a read, no write
        for token in (first, second):
            assert (await client.post("/add", data={"csrf_token": token})).status_code == 200
        assert (await client.post("/add")).status_code == 403

        await client.post("/login", data={"csrf_token": second})
        refused = await client.post("/add", data={"csrf_token": second})
        assert refused.status_code == 403
        assert "does not match" in refused.json()["detail"]
        fresh = await page_token(client)
        assert (await client.post("/add", data={"csrf_token": fresh})).json() == 3

        assert (await client.post("/logout", headers={"X-CSRF-Token": fresh})).status_code == 200
        ended = await client.post("/add", data={"csrf_token": fresh})
        assert ended.status_code == 403
        assert "expired" in ended.json()["detail"]


async def test_a_public_page_stores_a_session_per_visitor_unless_anonymous_is_origin(
    clock: Clock,
) -> None:
    # The default: a page with a form stores a session (its secret) for every visitor.
    store = MemoryBackend(clock=clock)
    async with client_for(protected_app(manager_factory(store, clock)())) as client:
        await page_token(client)
    assert len(store._records) == 1

    store = MemoryBackend(clock=clock)
    own = {"origin": "http://testserver"}
    app = protected_app(manager_factory(store, clock)(), anonymous="origin")
    async with client_for(app) as client:
        page = await client.get("/form")
        assert page.text == "<form method=post></form>"  # no token, and nothing stored
        assert (await client.get("/token")).json() == ""  # for scripts, none either
        assert "set-cookie" not in page.headers
        assert len(store._records) == 0
        # Posting it needs the browser's word that it comes from this site.
        for elsewhere in ({"sec-fetch-site": "cross-site"}, {"origin": "https://evil.example"}):
            assert (await client.post("/add", headers=elsewhere)).status_code == 403
        assert (await client.post("/add")).status_code == 403  # no word at all
        assert len(store._records) == 0
        assert (await client.post("/add", headers=own)).json() == 1  # stored from now on
        # A stored session needs its token, as usual, whatever the browser says.
        refused = await client.post("/add", headers={"sec-fetch-site": "same-origin"})
        assert refused.status_code == 403
        token = await page_token(client)
        assert (await client.post("/add", headers={**own, "X-CSRF-Token": token})).json() == 2


def test_anonymous_is_token_or_origin() -> None:
    with pytest.raises(ConfigurationError, match="anonymous='cookie'"):
        CSRFProtection(anonymous="cookie")  # type: ignore[arg-type]


async def test_forms_urlencoded_and_multipart_and_the_header_all_carry_it(
    client: httpx.AsyncClient,
) -> None:
    token = await page_token(client)
    assert (await client.post("/add", data={"csrf_token": token})).json() == 1
    multipart = await client.post("/add", data={"csrf_token": token}, files={"f": b"x"})
    assert multipart.json() == 2
    assert (await client.post("/add", headers={"X-CSRF-Token": token})).json() == 3
    # HTMX sends it from hx-headers, with the form fields in the body
    htmx = await client.post(
        "/add", headers={"X-CSRF-Token": token, "HX-Request": "true"}, data={"q": "1"}
    )
    assert htmx.json() == 4
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert (await client.request(method, "/item")).status_code == 403
        allowed = await client.request(method, "/item", headers={"X-CSRF-Token": token})
        assert allowed.json() == method


async def test_the_route_still_reads_its_form_and_its_body(client: httpx.AsyncClient) -> None:
    token = await page_token(client)
    named = await client.post("/named", data={"csrf_token": token, "name": "Ada"})
    assert named.json() == "Ada"  # FastAPI's Form parameter, parsed before the check
    raw = await client.post("/raw", data={"csrf_token": token, "x": "1"})
    assert raw.json() == f"csrf_token={token}&x=1"  # the body, read by the check, kept
    assert (await client.post("/named", data={"name": "Ada"})).status_code == 403


async def test_a_broken_multipart_body_is_a_400_never_an_error(client: httpx.AsyncClient) -> None:
    await page_token(client)
    answer = await client.post(
        "/add",
        content=b"--b\r\nContent-Disposition: form-data\r\n\r\nno name and no end",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 400  # Starlette's answer to a broken form


async def test_without_python_multipart_only_the_header_carries_a_multipart_token(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await page_token(client)
    monkeypatch.setattr(csrf_module, "MULTIPART_PARSER", False)
    form = await client.post("/add", data={"csrf_token": token}, files={"f": b"x"})
    assert form.status_code == 403
    header = await client.post("/add", headers={"X-CSRF-Token": token}, files={"f": b"x"})
    assert header.status_code == 200


async def test_safe_methods_need_no_token_and_load_nothing(clock: Clock) -> None:
    counting = CountingBackend(MemoryBackend(clock=clock))
    async with client_for(protected_app(manager_factory(counting, clock)())) as client:
        await page_token(client)
        counting.reset()
        for method in ("GET", "HEAD", "OPTIONS"):
            assert (await client.request(method, "/peek")).status_code == 200
        assert counting.total == 0


async def test_each_refusal_names_its_reason_and_never_the_token(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert "expired" in (await client.post("/add")).json()["detail"]  # no session at all
    token = await page_token(client)
    assert "no CSRF token" in (await client.post("/add")).json()["detail"]
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    caplog.clear()
    with caplog.at_level(logging.WARNING, "fastapi_session_deps.csrf"):
        bad = await client.post("/add", headers={"X-CSRF-Token": wrong})
    assert bad.status_code == 403
    assert bad.headers["cache-control"] == "no-store"
    assert [record.reason for record in caplog.records] == ["bad token"]  # type: ignore[attr-defined]
    assert wrong not in caplog.text
    assert token not in caplog.text
    assert (await client.get("/count")).json() == 0  # nothing was changed


async def test_a_browser_gets_a_page_and_a_script_gets_json(client: httpx.AsyncClient) -> None:
    html_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    page = await client.post("/add", headers={"Accept": html_accept})
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Request refused</h1>" in page.text
    assert "reload the page" in page.text
    for accept in ("application/json", "*/*", "application/problem+json", "text/plain", ""):
        answer = await client.post("/add", headers={"Accept": accept})
        assert answer.status_code == 403
        assert answer.json()["detail"].startswith("CSRF check failed.")


async def test_without_the_handler_fastapi_answers_json(on_memory: ManagerFactory) -> None:
    sessions = on_memory()
    app = FastAPI(dependencies=[Depends(CSRFProtection(sessions))])
    app.add_middleware(sessions.middleware)

    @app.post("/")
    async def home() -> None: ...

    async with client_for(app) as client:
        answer = await client.post("/", headers={"Accept": "text/html"})
    assert answer.status_code == 403
    assert answer.json() == {
        "detail": "CSRF check failed. The form has expired: the session it belongs to has ended."
    }


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"Origin": "http://testserver"}, True),
        ({"Origin": "http://TestServer:80"}, True),
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": "https://testserver"}, False),  # another scheme is another origin
        ({"Origin": "http://testserver:8080"}, False),
        ({"Origin": "null"}, False),  # a sandboxed frame, a data: page
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://proxy-rewrote-host"}, True),
        ({"Sec-Fetch-Site": "none"}, True),  # typed into the address bar
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://sub.testserver"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Referer": "http://testserver/form"}, True),
        ({"Referer": "http://evil.example/attack"}, False),
        ({"Referer": "not a url"}, False),
        ({"Origin": "http://testserver:99999"}, False),  # not a port
        ({"Origin": "http://[::1"}, False),
        ({"Origin": "https://admin.example"}, True),  # trusted
        ({"Origin": "https://admin.example", "Sec-Fetch-Site": "cross-site"}, True),
        ({"Referer": "https://admin.example:443/page"}, True),
        ({}, True),  # no browser headers: not a browser, the token decides
    ],
)
async def test_the_origin_layer_turns_away_other_sites_even_with_the_token(
    on_memory: ManagerFactory, headers: dict[str, str], allowed: bool
) -> None:
    app = protected_app(on_memory(), trusted_origins=["https://admin.example"])
    async with client_for(app) as client:
        token = await page_token(client)
        answer = await client.post("/add", headers={"X-CSRF-Token": token, **headers})
    assert answer.status_code == (200 if allowed else 403)
    if not allowed:
        assert "another site" in answer.json()["detail"]


async def test_a_request_without_a_host_is_from_no_origin_of_ours(
    on_memory: ManagerFactory,
) -> None:
    app = protected_app(on_memory())
    answer = await call(app, "/add", "POST", [(b"origin", b"http://testserver")])
    assert answer.status == 403
    assert b"another site" in answer.body


async def test_the_origin_layer_can_be_turned_off(on_memory: ManagerFactory) -> None:
    async with client_for(protected_app(on_memory(), check_origin=False)) as client:
        token = await page_token(client)
        answer = await client.post(
            "/add", headers={"X-CSRF-Token": token, "Origin": "http://elsewhere"}
        )
        assert answer.status_code == 200
        assert (
            await client.post("/add", headers={"Origin": "http://elsewhere"})
        ).status_code == 403


async def test_the_origin_of_an_https_request_behind_its_host_header(
    on_memory: ManagerFactory,
) -> None:
    app = protected_app(on_memory(frontend=CookieFrontend(SECRET)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as client:
        token = await page_token(client)
        same = await client.post(
            "/add", headers={"X-CSRF-Token": token, "Origin": "https://shop.example"}
        )
        assert same.status_code == 200
        downgraded = await client.post(
            "/add", headers={"X-CSRF-Token": token, "Origin": "http://shop.example"}
        )
        assert downgraded.status_code == 403


async def test_exempt_routes_by_path_and_by_decorator(client: httpx.AsyncClient) -> None:
    assert (await client.post("/webhooks/paid", headers={"Origin": "https://psp"})).json() == "ok"
    assert (await client.post("/signed")).json() == "ok"


async def test_a_router_protects_only_its_routes(on_memory: ManagerFactory) -> None:
    sessions = on_memory()
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    forms = APIRouter(dependencies=[Depends(CSRFProtection(sessions))])

    @forms.post("/checked")
    async def checked() -> None: ...

    @app.post("/api")
    async def api() -> str:
        return "open"

    app.include_router(forms)
    async with client_for(app) as client:
        assert (await client.post("/checked")).status_code == 403
        assert (await client.post("/api")).json() == "open"


async def test_request_session_gets_the_same_protection(clock: Clock) -> None:
    csrf = CSRFProtection(field_name="_token", header_name="X-XSRF-Token")
    app = FastAPI(dependencies=[Depends(csrf)])
    app.add_middleware(SessionMiddleware, secret_key=SECRET, backend=MemoryBackend(clock=clock))

    @app.get("/form", response_class=HTMLResponse)
    async def form(request: Request) -> str:
        request.session.setdefault("visits", 0)
        return f"<form>{csrf.input(request.session)}</form><i>{csrf.token(request.session)}</i>"

    @app.post("/add")
    async def add(request: Request) -> int:
        request.session["visits"] += 1
        return int(request.session["visits"])

    @app.post("/login")
    async def login(request: Request) -> None:
        await regenerate_session(request)

    @app.post("/logout")
    async def logout(request: Request) -> None:
        await destroy_session(request)

    async with client_for(app) as client:
        page = (await client.get("/form")).text
        field = re.search(r'name="_token" value="([^"]+)"', page)
        shown = re.search(r"<i>([^<]+)</i>", page)
        assert field is not None
        assert shown is not None
        assert (await client.post("/add", data={"_token": field.group(1)})).json() == 1
        assert (await client.post("/add", headers={"X-XSRF-Token": shown.group(1)})).json() == 2
        assert (await client.post("/add", data={"csrf_token": field.group(1)})).status_code == 403
        await client.post("/login", data={"_token": field.group(1)})
        assert (await client.post("/add", data={"_token": field.group(1)})).status_code == 403
        page = (await client.get("/form")).text
        fresh = re.search(r'name="_token" value="([^"]+)"', page)
        assert fresh is not None
        assert (await client.post("/logout", data={"_token": fresh.group(1)})).status_code == 200
        assert (await client.post("/add", data={"_token": fresh.group(1)})).status_code == 403


async def test_request_session_loaded_late_answers_503_while_the_store_is_down(
    clock: Clock,
) -> None:
    store = SwitchableBackend(MemoryBackend(clock=clock))
    csrf = CSRFProtection()
    app = FastAPI(dependencies=[Depends(csrf)])
    app.add_middleware(SessionMiddleware, secret_key=SECRET, backend=store, autoload=False)

    @app.get("/form")
    async def form(request: Request) -> str:
        from fastapi_session_deps import load_session

        return csrf.token(await load_session(request))

    @app.post("/add")
    async def add() -> None: ...

    async with client_for(app) as client:
        token = (await client.get("/form")).json()
        store.down.add("get")
        answer = await client.post("/add", headers={"X-CSRF-Token": token})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"


async def test_under_the_lock_policy_the_check_holds_the_route_s_lock(
    on_memory: ManagerFactory,
) -> None:
    sessions = on_memory(concurrency="lock")
    async with client_for(protected_app(sessions)) as client:
        token = await page_token(client)
        assert (await client.post("/add", data={"csrf_token": token})).json() == 1
        assert (await client.post("/add", data={"csrf_token": token})).json() == 2
        assert (await client.get("/count")).json() == 2


async def test_a_log_in_gives_no_token_to_a_session_that_had_none(clock: Clock) -> None:
    backend = MemoryBackend(clock=clock)
    sessions = manager_factory(backend, clock)()
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]

    @app.post("/start")
    async def start(session: Session) -> None:
        session.counter = 1

    @app.post("/login")
    async def login(session: Session) -> None:
        await sessions.regenerate(session)

    async with client_for(app) as client:
        await client.post("/start")
        before = client.cookies["session"]
        await client.post("/login")
        assert client.cookies["session"] != before
    ((_, entry),) = backend._records.items()
    assert CSRF_FIELD not in entry


async def test_a_read_only_page_of_a_locked_session_without_a_token_says_what_to_do(
    on_memory: ManagerFactory,
) -> None:
    sessions = on_memory(concurrency="lock")
    app = FastAPI()
    app.add_middleware(sessions.middleware)

    @app.post("/start")
    async def start(session: Annotated[AppSession, Depends(sessions.get_session)]) -> None:
        session.counter = 1

    @app.get("/form")
    async def form(
        session: Annotated[AppSession, Depends(sessions.get_session_readonly)],
    ) -> str:
        return csrf_token(session)

    async with client_for(app) as client:
        await client.post("/start")
        with pytest.raises(SessionError, match="loaded read-only"):
            await client.get("/form")


def test_a_websocket_from_another_site_is_closed(on_memory: ManagerFactory) -> None:
    app = protected_app(on_memory())
    with TestClient(app) as client:
        with client.websocket_connect("/live", headers={"Origin": "http://testserver"}) as ws:
            assert ws.receive_text() == "hello"
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/live", headers={"Origin": "http://evil.example"}),
        ):
            pass  # pragma: no cover - the handshake is refused
        assert closed.value.code == 1008


def test_the_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="can't be empty"):
        CSRFProtection(field_name="")
    with pytest.raises(ConfigurationError, match=r"trusted_origins: 'admin\.example'"):
        CSRFProtection(trusted_origins=["admin.example"])
    with pytest.raises(ConfigurationError, match=r"trusted_origins: 'ftp://files'"):
        CSRFProtection(trusted_origins=["ftp://files"])
    with pytest.raises(ConfigurationError, match=r"exempt: '\(' is not a path.*re\.compile"):
        CSRFProtection(exempt=["("])
    with pytest.raises(ConfigurationError, match="exempt: 5 is neither a string nor"):
        CSRFProtection(exempt=[5])  # type: ignore[list-item]
    for setting in ("max_body_bytes", "max_fields"):
        with pytest.raises(ConfigurationError, match=f"{setting} must be a positive number"):
            CSRFProtection(**{setting: 0})
    with pytest.raises(SessionError, match="Pass the session"):
        csrf_token({})


def test_the_token_helpers_are_html_for_templates() -> None:
    from markupsafe import Markup, escape

    token = csrf_module.CSRFToken('<input type="hidden">')
    assert escape(token) == Markup('<input type="hidden">')  # inserted as it is


# -- fuzzing ---------------------------------------------------------------------------------

SENT = st.one_of(
    st.text(max_size=120),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=90
    ),
    st.text(alphabet="A-_", min_size=86, max_size=86),
    st.binary(max_size=100).map(lambda raw: raw.decode("latin-1")),
)


async def test_every_single_character_substitution_of_the_token_is_refused(
    client: httpx.AsyncClient,
) -> None:
    token = await page_token(client)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in range(len(token)):
        for other in alphabet.replace(token[position], "")[::13]:  # 5 of the 63, each place
            forged = token[:position] + other + token[position + 1 :]
            answer = await client.post("/add", headers={"X-CSRF-Token": forged})
            assert answer.status_code == 403, (position, other)
    assert (await client.post("/add", headers={"X-CSRF-Token": token})).json() == 1


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sent=SENT, where=st.sampled_from(["form", "header", "multipart"]))
async def test_any_token_sent_is_a_403_never_an_error(
    client: httpx.AsyncClient, sent: str, where: str
) -> None:
    await page_token(client)
    if where == "header":
        try:
            answer = await client.post("/add", headers={"X-CSRF-Token": sent})
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            return  # not a header a client can send
    elif where == "form":
        answer = await client.post("/add", data={"csrf_token": sent})
    else:
        answer = await client.post("/add", data={"csrf_token": sent}, files={"f": b"x"})
    assert answer.status_code == 403


@settings(max_examples=50, deadline=None)
@given(raw=st.binary(max_size=120) | st.text(max_size=60).map(lambda text: f'"{text}"'.encode()))
async def test_a_damaged_stored_secret_refuses_forms_and_pages_make_a_new_one(raw: bytes) -> None:
    backend = MemoryBackend()
    sessions = manager_factory(backend, Clock())()
    async with client_for(protected_app(sessions)) as client:
        old = await page_token(client)
        ((_, entry),) = backend._records.items()
        entry[CSRF_FIELD] = raw
        answer = await client.post("/add", data={"csrf_token": old})
        assert answer.status_code == 403
        fresh = await page_token(client)
        assert (await client.post("/add", data={"csrf_token": fresh})).status_code == 200


# -- what the check reads of a body is bounded -------------------------------------------------


async def test_a_form_body_over_the_limit_is_refused_before_it_is_read(
    client: httpx.AsyncClient,
) -> None:
    await page_token(client)  # a session with a secret: the body is where the token is
    flood = b"a&" * (1024 * 1024)  # two million empty fields, 2 MB, no header token
    refused = await client.post("/raw", content=flood, headers=FORM)
    assert refused.status_code == 413
    assert "send the token in the header" in refused.json()["detail"]
    assert (await client.get("/count")).json() == 0  # the route never ran


async def test_a_body_without_a_length_is_read_no_further_than_the_limit(
    on_memory: ManagerFactory,
) -> None:
    app = protected_app(on_memory(), max_body_bytes=64 * 1024)
    async with client_for(app) as client:
        token = await page_token(client)
        sent: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length
            for _ in range(128):  # 8 MB, if it were all read
                sent.append(1)
                yield b"x" * 65536

        refused = await client.post("/raw", content=chunks(), headers=FORM)
        assert refused.status_code == 413
        assert len(sent) <= 3  # stopped at the limit, not at the end
        small = await client.post("/raw", content=f"csrf_token={token}&n=1", headers=FORM)
        assert small.status_code == 200
        assert small.json() == f"csrf_token={token}&n=1"  # the route still reads it


async def test_a_form_of_more_fields_than_the_limit_is_refused_unparsed(
    client: httpx.AsyncClient,
) -> None:
    token = await page_token(client)
    many = "&".join(["a"] * 1000 + [f"csrf_token={token}"])  # 1,001 fields, 40 KB
    refused = await client.post("/raw", content=many, headers=FORM)
    assert refused.status_code == 400
    assert "more than 1000 form fields" in refused.json()["detail"]
    enough = "&".join(["a"] * 999 + [f"csrf_token={token}"])
    assert (await client.post("/raw", content=enough, headers=FORM)).status_code == 200


async def test_a_large_multipart_body_without_the_header_token_is_refused_unread(
    client: httpx.AsyncClient,
) -> None:
    token = await page_token(client)
    upload = {"file": ("big.bin", b"\0" * (12 * 1024 * 1024))}
    refused = await client.post("/raw", data={"csrf_token": token}, files=upload)
    assert refused.status_code == 413
    with_header = await client.post("/add", files=upload, headers={"X-CSRF-Token": token})
    assert with_header.status_code == 200


async def test_a_route_s_own_file_parameter_is_parsed_by_fastapi_first(
    on_memory: ManagerFactory,
) -> None:
    sessions = on_memory()
    csrf = CSRFProtection(sessions)
    app = FastAPI(dependencies=[Depends(csrf)])
    app.add_middleware(sessions.middleware)

    @app.get("/form", response_class=HTMLResponse)
    async def form(session: Annotated[AppSession, Depends(sessions.get_session)]) -> str:
        return f"<form method=post>{csrf.input(session)}</form>"

    @app.post("/upload")
    async def upload(file: Annotated[UploadFile, File()]) -> int:
        return len(await file.read())

    async with client_for(app) as client:
        token = await page_token(client)
        big = {"file": ("big.bin", b"\0" * (3 * 1024 * 1024))}  # over the limit: spooled
        sent = await client.post("/upload", data={"csrf_token": token}, files=big)
    assert sent.json() == 3 * 1024 * 1024


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- exempt paths end at a segment boundary ----------------------------------------------------


async def test_an_exempt_path_exempts_its_own_segment_and_below_never_a_longer_name(
    on_memory: ManagerFactory,
) -> None:
    app = protected_app(on_memory(), exempt=["/item", re.compile(r"/hooks/v\d+/")])

    @app.post("/item/{name}")
    async def nested(name: str) -> str:
        return name

    @app.post("/items")
    async def longer() -> str:
        return "not exempt"

    @app.post("/hooks/v2/paid")
    async def hook() -> str:
        return "ok"

    async with client_for(app) as client:
        assert (await client.post("/item")).status_code == 200
        assert (await client.post("/item/tea")).status_code == 200
        assert (await client.post("/items")).status_code == 403  # was exempt as a regex
        assert (await client.post("/hooks/v2/paid")).status_code == 200


def test_without_the_origin_layer_a_websocket_from_another_site_is_let_in(
    on_memory: ManagerFactory,
) -> None:
    # As the check_origin docstring says: the origin layer is the WebSocket's only check.
    assert "WebSocket handshakes alike" in (CSRFProtection.__doc__ or "")
    app = protected_app(on_memory(), check_origin=False)
    with TestClient(app) as client:
        headers = {"Origin": "http://evil.example"}
        with client.websocket_connect("/live", headers=headers) as websocket:
            assert websocket.receive_text() == "hello"
