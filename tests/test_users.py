"""A user's sessions: log-in binds, list, revoke one, revoke all but the current one.

On every store that keeps an index of users' sessions, through the typed API and
``request.session``, with the test's clock.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    FunctionBackend,
    SessionError,
    SessionManager,
    SessionMiddleware,
    login_session,
    user_sessions,
)
from fastapi_session_deps.users import session_handle

from .conftest import AppSession, ManagerFactory, PassTime
from .helpers import SECRET, Clock

pytestmark = pytest.mark.anyio


def devices_app(sessions: SessionManager[AppSession]) -> FastAPI:
    app = FastAPI(lifespan=sessions.lifespan)
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]
    Required = Annotated[AppSession, Depends(sessions.require_session)]

    @app.post("/login")
    async def login(session: Session, request: Request, user: str = "alice") -> dict[str, bool]:
        await sessions.login(session, user, request)
        session.counter = 1
        return {"ok": True}

    @app.get("/devices")
    async def devices(session: Required, user: str = "alice") -> list[dict[str, Any]]:
        found = await sessions.users.list(user, current=session)
        return [info.__dict__ for info in found]

    @app.post("/revoke")
    async def revoke(session: Required, handle: str, user: str = "alice") -> dict[str, bool]:
        return {"revoked": await sessions.users.revoke(user, handle)}

    @app.post("/revoke-others")
    async def revoke_others(session: Required, user: str = "alice") -> dict[str, int]:
        return {"revoked": await sessions.users.revoke_all(user, keep=session)}

    @app.post("/logout")
    async def logout(session: Session) -> dict[str, bool]:
        await sessions.destroy(session)
        return {"ok": True}

    @app.post("/regenerate")
    async def regenerate(session: Session) -> dict[str, bool]:
        await sessions.regenerate(session)
        return {"ok": True}

    @app.get("/me")
    async def me(session: Required) -> dict[str, int]:
        return {"counter": session.counter}

    return app


@pytest.fixture
def sessions(make_manager: ManagerFactory) -> SessionManager[AppSession]:
    return make_manager(idle_timeout=1800, user_index=True, record_client=True)


@pytest.fixture
async def device(sessions: SessionManager[AppSession]) -> AsyncIterator[Any]:
    """A factory of logged-in clients ("devices") of one app."""
    app = devices_app(sessions)
    clients: list[httpx.AsyncClient] = []

    async def make(agent: str, user: str = "alice") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"user-agent": agent}
        )
        clients.append(client)
        assert (await client.post("/login", params={"user": user})).status_code == 200
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_two_devices_are_listed_and_revoking_one_leaves_the_other(
    device: Any, clock: Clock
) -> None:
    phone = await device("Phone/1.0")
    clock.advance(5)
    laptop = await device("Laptop/2.0")
    listed = (await laptop.get("/devices")).json()
    assert [d["user_agent"] for d in listed] == ["Laptop/2.0", "Phone/1.0"]  # newest first
    assert [d["current"] for d in listed] == [True, False]
    assert all(d["user"] == "alice" and d["ip"] == "127.0.0.1" for d in listed)
    assert listed[1]["created_at"] == listed[0]["created_at"] - 5
    assert all(d["expires_at"] == pytest.approx(d["last_seen"] + 1800) for d in listed)
    phone_handle = listed[1]["handle"]
    assert len(phone_handle) == 22
    assert phone_handle not in phone.cookies.values()

    assert (await laptop.post("/revoke", params={"handle": phone_handle})).json() == {
        "revoked": True
    }
    assert (await phone.get("/me")).status_code == 401  # its next request is anonymous
    assert (await laptop.get("/me")).json() == {"counter": 1}
    assert [d["user_agent"] for d in (await laptop.get("/devices")).json()] == ["Laptop/2.0"]
    again = await laptop.post("/revoke", params={"handle": phone_handle})
    assert again.json() == {"revoked": False}


async def test_log_out_everywhere_else_keeps_only_the_current_session(device: Any) -> None:
    others = [await device(f"Device/{n}") for n in range(3)]
    mine = await device("Mine/1.0")
    bob = await device("Bob/1.0", user="bob")
    assert (await mine.post("/revoke-others")).json() == {"revoked": 3}
    for other in others:
        assert (await other.get("/me")).status_code == 401
    assert (await mine.get("/me")).status_code == 200
    assert [d["user_agent"] for d in (await mine.get("/devices")).json()] == ["Mine/1.0"]
    assert (await bob.get("/me")).status_code == 200  # another user's sessions stay


async def test_a_user_can_only_revoke_sessions_of_their_own(device: Any) -> None:
    alice = await device("Alice/1.0")
    bob = await device("Bob/1.0", user="bob")
    bobs = (await bob.get("/devices", params={"user": "bob"})).json()[0]["handle"]
    refused = await alice.post("/revoke", params={"handle": bobs})  # named under alice
    assert refused.json() == {"revoked": False}
    assert (await bob.get("/me")).status_code == 200


async def test_expired_and_ended_sessions_leave_the_listing(
    device: Any, pass_time: PassTime
) -> None:
    old = await device("Old/1.0")
    await pass_time(1000)
    ended = await device("Ended/1.0")
    kept = await device("Kept/1.0")
    assert (await ended.post("/logout")).status_code == 200
    assert {d["user_agent"] for d in (await kept.get("/devices")).json()} == {
        "Old/1.0",
        "Kept/1.0",
    }
    await pass_time(1000)  # the old one's idle timeout has passed; the kept one's not
    assert [d["user_agent"] for d in (await kept.get("/devices")).json()] == ["Kept/1.0"]
    assert (await old.get("/me")).status_code == 401


async def test_regenerate_keeps_the_owner_and_replaces_the_listed_session(device: Any) -> None:
    laptop = await device("Laptop/2.0")
    before = (await laptop.get("/devices")).json()
    assert (await laptop.post("/regenerate")).status_code == 200
    after = (await laptop.get("/devices")).json()
    assert len(before) == len(after) == 1
    assert after[0]["handle"] != before[0]["handle"]
    assert after[0]["user_agent"] == "Laptop/2.0"
    assert after[0]["current"]


async def test_renewal_moves_last_seen_and_keeps_the_session_listed(
    device: Any, pass_time: PassTime
) -> None:
    laptop = await device("Laptop/2.0")
    first = (await laptop.get("/devices")).json()[0]
    for _ in range(4):  # past the idle timeout in all, but never idle for long
        await pass_time(600)
        assert (await laptop.get("/me")).status_code == 200
    listed = (await laptop.get("/devices")).json()
    assert len(listed) == 1
    assert listed[0]["last_seen"] == pytest.approx(first["last_seen"] + 2400)
    assert listed[0]["created_at"] == first["created_at"]


async def test_a_thousand_sessions_of_one_user_are_listed_in_one_store_call(
    sessions: SessionManager[AppSession], counting: Any
) -> None:
    app = devices_app(sessions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(1000):
            client.cookies.clear()
            assert (await client.post("/login", params={"user": "busy"})).status_code == 200
        counting.reset()
        listed = (await client.get("/devices", params={"user": "busy"})).json()
    assert len(listed) == 1000
    assert sum(d["current"] for d in listed) == 1
    assert counting.calls["index_list"] == 1
    assert len({d["handle"] for d in listed}) == 1000


async def test_request_session_logs_in_and_lists_through_the_middleware(clock: Clock) -> None:
    from fastapi_session_deps import MemoryBackend

    app = FastAPI()
    app.add_middleware(
        SessionMiddleware,
        secret_key=SECRET,
        backend=MemoryBackend(clock=clock),
        user_index=True,
        clock=clock,
    )

    @app.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        await login_session(request, "carol")
        request.session["name"] = "Carol"
        return {"ok": True}

    @app.get("/devices")
    async def devices(request: Request) -> list[dict[str, Any]]:
        users = await user_sessions(request)
        return [info.__dict__ for info in await users.list("carol", current=request.session)]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        listed = (await client.get("/devices")).json()
    assert len(listed) == 1
    assert listed[0]["current"]
    assert listed[0]["user"] == "carol"
    assert listed[0]["ip"] is None  # record_client is off


def test_a_store_without_an_index_is_refused_at_configuration(clock: Clock) -> None:
    async def nothing(*_: Any) -> None:
        return None

    with pytest.raises(ConfigurationError, match="user_index=True needs a backend"):
        SessionManager(
            AppSession,
            frontend=CookieFrontend(secret_key=SECRET),
            backend=FunctionBackend(nothing, nothing, nothing),
            user_index=True,
        )


async def test_logging_in_without_the_index_names_the_setting(
    make_manager: ManagerFactory,
) -> None:
    sessions = make_manager()
    app = devices_app(sessions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/login")).status_code == 500
    with pytest.raises(ConfigurationError, match="user_index=True"):
        await sessions.users.list("alice")


async def test_record_client_needs_the_index(make_manager: ManagerFactory) -> None:
    with pytest.raises(ConfigurationError, match="record_client=True needs user_index=True"):
        make_manager(record_client=True)


async def test_users_must_be_non_empty_strings(sessions: SessionManager[AppSession]) -> None:
    with pytest.raises(SessionError, match="non-empty string"):
        await sessions.users.list("")


def test_a_handle_is_a_digest_of_the_store_key_not_the_key() -> None:
    key = "a" * 64
    assert session_handle(key) == session_handle(key) != session_handle("b" * 64)
    assert key not in session_handle(key)
    assert len(session_handle(key)) == 22


@pytest.mark.parametrize("user", ["", "x" * 256, 42])
async def test_a_log_in_takes_a_user_name_of_up_to_255_characters(
    sessions: SessionManager[AppSession], user: Any
) -> None:
    app = FastAPI()
    app.add_middleware(sessions.middleware)

    @app.post("/login")
    async def login(session: Annotated[AppSession, Depends(sessions.get_session)]) -> None:
        with pytest.raises(SessionError, match="at most 255 characters"):
            await sessions.login(session, user)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/login")).status_code == 200
