"""Flash messages: added in one request, shown once in the next, on both APIs."""

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from fastapi_session_deps import (
    MemoryBackend,
    SessionError,
    SessionManager,
    SessionMiddleware,
    flash,
    get_flashed_messages,
    login_session,
)
from fastapi_session_deps._record import FLASH_FIELD

from .helpers import SECRET, Clock
from .support import AppSession, ManagerFactory

pytestmark = pytest.mark.anyio


def flashing_app(sessions: SessionManager[AppSession]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]

    @app.post("/save")
    async def save(session: Session) -> RedirectResponse:
        session.counter += 1
        flash(session, "Saved.", "success")
        flash(session, "Check your e-mail.")
        return RedirectResponse("/", status_code=303)

    @app.post("/login")
    async def login(session: Session) -> RedirectResponse:
        await sessions.regenerate(session)
        flash(session, "Welcome back.")
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(session: Session) -> RedirectResponse:
        await sessions.destroy(session)
        flash(session, "You have been logged out.")
        return RedirectResponse("/", status_code=303)

    @app.get("/")
    async def home(session: Session) -> list[list[str]]:
        return [[m.category, m.text] for m in get_flashed_messages(session)]

    @app.get("/counter")
    async def counter(session: Session) -> int:
        return session.counter

    return app


@pytest.fixture
def counted(make_manager: ManagerFactory) -> SessionManager[AppSession]:
    return make_manager()


async def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_message_survives_the_redirect_and_is_shown_once(
    counted: SessionManager[AppSession], counting: Any
) -> None:
    async with await client_for(flashing_app(counted)) as client:
        counting.reset()
        shown = await client.post("/save", follow_redirects=True)
        assert shown.json() == [["success", "Saved."], ["info", "Check your e-mail."]]
        # the change and the messages: one write; showing them: one read and one write
        assert counting.calls["set"] + counting.calls["update"] == 2
        counting.reset()
        assert (await client.get("/")).json() == []  # once only
        assert counting.total == 1  # nothing waiting: a read, and no write
        assert (await client.get("/counter")).json() == 1


async def test_messages_survive_a_log_in_and_follow_a_log_out(
    counted: SessionManager[AppSession],
) -> None:
    async with await client_for(flashing_app(counted)) as client:
        await client.post("/save")
        before = client.cookies["session"]
        shown = await client.post("/login", follow_redirects=True)
        assert client.cookies["session"] != before  # a new id, the messages kept
        assert [text for _, text in shown.json()] == [
            "Saved.",
            "Check your e-mail.",
            "Welcome back.",
        ]
        await client.post("/save")
        shown = await client.post("/logout", follow_redirects=True)
        assert shown.json() == [["info", "You have been logged out."]]  # the old ones went
        assert (await client.get("/counter")).json() == 0


async def test_request_session_flashes_too(clock: Clock) -> None:
    app = FastAPI()
    app.add_middleware(
        SessionMiddleware, secret_key=SECRET, backend=MemoryBackend(clock=clock), user_index=True
    )

    @app.post("/login")
    async def login(request: Request) -> RedirectResponse:
        await login_session(request, "ada")
        flash(request.session, "Logged in.")
        return RedirectResponse("/", status_code=303)

    @app.get("/")
    async def home(request: Request) -> list[str]:
        return [message.text for message in get_flashed_messages(request.session)]

    async with await client_for(app) as client:
        assert (await client.post("/login", follow_redirects=True)).json() == ["Logged in."]
        assert (await client.get("/")).json() == []


async def test_a_flash_alone_is_saved_though_the_app_reads_nothing(clock: Clock) -> None:
    # The session is taken from the scope, as Starlette before 0.39 hands it out: nothing
    # marks it accessed, yet the message (a field of the library's own) must be stored.
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET, backend=MemoryBackend(clock=clock))

    @app.post("/note")
    async def note(request: Request) -> RedirectResponse:
        flash(request.scope["session"], "Noted.")
        return RedirectResponse("/", status_code=303)

    @app.get("/")
    async def home(request: Request) -> list[str]:
        return [message.text for message in get_flashed_messages(request.session)]

    async with await client_for(app) as client:
        assert (await client.post("/note", follow_redirects=True)).json() == ["Noted."]
        assert (await client.get("/")).json() == []


async def test_at_most_twenty_messages_wait_and_long_ones_are_cut(
    counted: SessionManager[AppSession],
) -> None:
    app = FastAPI()
    app.add_middleware(counted.middleware)

    @app.post("/many")
    async def many(session: Annotated[AppSession, Depends(counted.get_session)]) -> None:
        for index in range(25):
            flash(session, f"{index}" + "x" * 2000, "c" * 100)

    @app.get("/")
    async def home(session: Annotated[AppSession, Depends(counted.get_session)]) -> list[Any]:
        return [[m.category, m.text] for m in get_flashed_messages(session)]

    async with await client_for(app) as client:
        await client.post("/many")
        shown = (await client.get("/")).json()
    assert len(shown) == 20
    assert shown[0][1].startswith("5x")
    assert {len(text) for _, text in shown} == {1000}
    assert {category for category, _ in shown} == {"c" * 40}


def test_only_a_session_object_takes_messages() -> None:
    with pytest.raises(SessionError, match="Pass the session"):
        flash(object(), "hello")
    with pytest.raises(SessionError, match="must be strings"):
        flash(object(), 42)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    raw=st.one_of(
        st.binary(max_size=60),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3),
            max_leaves=8,
        ).map(lambda value: __import__("json").dumps(value).encode()),
    )
)
async def test_a_damaged_flash_field_shows_nothing_never_an_error(raw: bytes) -> None:
    backend = MemoryBackend()
    sessions = SessionManager(
        AppSession,
        frontend=__import__("fastapi_session_deps").CookieFrontend(SECRET, secure=False),
        backend=backend,
    )
    app = flashing_app(sessions)
    async with await client_for(app) as client:
        await client.post("/save")
        ((_, entry),) = backend._records.items()
        entry[FLASH_FIELD] = raw
        shown = await client.get("/")
    assert shown.status_code == 200
    assert all(isinstance(text, str) for _, text in shown.json())


async def test_a_message_flashed_before_a_log_in_is_shown_after_it(
    make_manager: ManagerFactory,
) -> None:
    sessions = make_manager(user_index=True)
    app = FastAPI()
    app.add_middleware(sessions.middleware)

    @app.post("/login")
    async def login(session: Annotated[AppSession, Depends(sessions.get_session)]) -> None:
        flash(session, "Password accepted.")
        await sessions.login(session, "ada")
        flash(session, "Welcome, Ada.")

    @app.get("/")
    async def home(session: Annotated[AppSession, Depends(sessions.get_session)]) -> list[str]:
        return [message.text for message in get_flashed_messages(session)]

    async with await client_for(app) as client:
        await client.post("/login")
        assert (await client.get("/")).json() == ["Password accepted.", "Welcome, Ada."]
    (info,) = await sessions.users.list("ada")
    assert info.user == "ada"
