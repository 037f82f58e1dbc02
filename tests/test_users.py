"""A user's sessions: log-in binds, list, revoke one, revoke all but the current one.

On every store that keeps an index of users' sessions, through the typed API and
``request.session``, with the test's clock.
"""

import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    FunctionBackend,
    MemoryBackend,
    RedisBackend,
    SessionError,
    SessionEvent,
    SessionIndex,
    SessionManager,
    SessionMiddleware,
    SQLBackend,
    login_session,
    user_sessions,
)
from fastapi_session_deps._record import (
    ADDRESS_FIELD,
    AGENT_FIELD,
    CREATED_FIELD,
    OWNER_FIELD,
    SEEN_FIELD,
)
from fastapi_session_deps.backends.memory import MAX_STRAY_ENTRIES
from fastapi_session_deps.users import session_handle

from .helpers import SECRET, Clock, CountingBackend, http_scope
from .support import (
    WITH_THE_SERVICE,
    AppSession,
    ManagerFactory,
    PassTime,
    each_store,
    inner_store,
    manager_factory,
    open_store,
)

pytestmark = pytest.mark.anyio


# Every store, the session service included.
backend = pytest.fixture(params=WITH_THE_SERVICE, name="backend")(each_store)


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
    async def devices(
        session: Required, user: str = "alice", offset: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        found = await sessions.users.list(user, current=session, offset=offset, limit=limit)
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

    @app.get("/whom")
    async def whom(session: Session) -> str | None:
        return sessions.user_of(session)

    @app.post("/count")
    async def count(session: Session) -> dict[str, int]:
        session.counter += 1
        return {"counter": session.counter}

    return app


@pytest.fixture
def on_memory(clock: Clock) -> ManagerFactory:
    """Managers on a memory store, for what does not depend on the store."""
    return manager_factory(MemoryBackend(clock=clock), clock)


@pytest.fixture
def memory_sessions(on_memory: ManagerFactory) -> SessionManager[AppSession]:
    return on_memory(user_index=True, record_client=True)


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


async def test_user_of_reads_back_whom_the_log_in_bound(device: Any) -> None:
    bob = await device("Firefox", user="bob")
    assert (await bob.get("/whom")).json() == "bob"
    await bob.post("/regenerate")
    assert (await bob.get("/whom")).json() == "bob"  # a new id keeps its owner
    await bob.post("/logout")
    assert (await bob.get("/whom")).json() is None


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


async def test_a_thousand_sessions_of_one_user_are_listed_a_page_in_one_store_call(
    sessions: SessionManager[AppSession], counting: Any, clock: Clock
) -> None:
    # 999 sessions written straight into the store that holds them (behind the service,
    # for the session service), as log-ins would write them; one more by a real log-in.
    store = inner_store(counting)
    assert isinstance(store, SessionIndex)
    fields = {OWNER_FIELD: b'"busy"', CREATED_FIELD: str(clock()).encode()}
    for index in range(999):
        key = f"{index:064d}"
        await store.index_add("busy", key, ttl=1800)
        await store.set(key, fields, ttl=1800)
    app = devices_app(sessions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    clock.advance(1)  # the log-in comes after the others
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/login", params={"user": "busy"})).status_code == 200
        counting.reset()
        first = (await client.get("/devices", params={"user": "busy"})).json()
        assert counting.calls["index_page"] == 1  # a page of 100 by default
        assert len(first) == 100
        assert first[0]["current"]  # the latest to expire, and the most recently seen
        second = (await client.get("/devices", params={"user": "busy", "offset": 100})).json()
        assert {d["handle"] for d in first}.isdisjoint(d["handle"] for d in second)
        counting.reset()
        listed = (await client.get("/devices", params={"user": "busy", "limit": 1000})).json()
    assert len(listed) == 1000
    assert sum(d["current"] for d in listed) == 1
    assert counting.calls["index_page"] == 1
    assert len({d["handle"] for d in listed}) == 1000


async def test_request_session_logs_in_and_lists_through_the_middleware(clock: Clock) -> None:
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
    on_memory: ManagerFactory,
) -> None:
    sessions = on_memory()
    app = devices_app(sessions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/login")).status_code == 500
    with pytest.raises(ConfigurationError, match="user_index=True"):
        await sessions.users.list("alice")


async def test_record_client_needs_the_index(on_memory: ManagerFactory) -> None:
    with pytest.raises(ConfigurationError, match="record_client=True needs user_index=True"):
        on_memory(record_client=True)


async def test_users_must_be_non_empty_strings(
    memory_sessions: SessionManager[AppSession],
) -> None:
    with pytest.raises(SessionError, match="non-empty string"):
        await memory_sessions.users.list("")


def test_a_handle_is_a_digest_of_the_store_key_not_the_key() -> None:
    key = "a" * 64
    assert session_handle(key) == session_handle(key) != session_handle("b" * 64)
    assert key not in session_handle(key)
    assert len(session_handle(key)) == 22


@pytest.mark.parametrize("user", ["", "x" * 256, 42])
async def test_a_log_in_takes_a_user_name_of_up_to_255_characters(
    memory_sessions: SessionManager[AppSession], user: Any
) -> None:
    app = FastAPI()
    app.add_middleware(memory_sessions.middleware)

    @app.post("/login")
    async def login(session: Annotated[AppSession, Depends(memory_sessions.get_session)]) -> None:
        with pytest.raises(SessionError, match="at most 255 characters"):
            await memory_sessions.login(session, user)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/login")).status_code == 200


# -- the index, store by store ---------------------------------------------------------------

FIELD_VALUES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"null", b"1e999", b'"x"', b"[]", b"{}", b"-1", b"true", b'"\\ud800"']),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    created=FIELD_VALUES,
    seen=FIELD_VALUES,
    owner=st.one_of(st.just(b'"alice"'), FIELD_VALUES),
    ip=FIELD_VALUES,
    agent=FIELD_VALUES,
)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_damaged_library_fields_never_break_a_listing(
    anyio_backend: str, created: bytes, seen: bytes, owner: bytes, ip: bytes, agent: bytes
) -> None:
    backend = MemoryBackend()
    events: list[SessionEvent] = []

    async def record(event: SessionEvent) -> None:
        events.append(event)

    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(secret_key=SECRET),
        backend=backend,
        user_index=True,
        on_event=record,
    )
    fields = {
        CREATED_FIELD: created,
        SEEN_FIELD: seen,
        OWNER_FIELD: owner,
        ADDRESS_FIELD: ip,
        AGENT_FIELD: agent,
        "counter": b"1",
    }
    await backend.index_add("alice", "k" * 64, ttl=60)
    await backend.set("k" * 64, fields, ttl=60)
    listed = await sessions.users.list("alice")
    assert len(listed) <= 1
    for info in listed:  # only a record that names alice and has a creation time is listed
        assert owner == b'"alice"'
        assert math.isfinite(info.created_at)
        assert math.isfinite(info.last_seen)
        assert info.ip is None or isinstance(info.ip, str)
    # Logging out everywhere ends every record that names alice, listable or not.
    named = owner == b'"alice"'
    assert await sessions.users.revoke_all("alice") == int(named)
    assert (await backend.get("k" * 64) is None) == named
    assert [event.kind for event in events] == ["revoked"] * named


async def test_past_its_absolute_timeout_a_session_is_not_listed(
    make_manager: ManagerFactory, pass_time: PassTime
) -> None:
    sessions = make_manager(idle_timeout=600, absolute_timeout=1000, user_index=True)
    app = devices_app(sessions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        listed = (await client.get("/devices")).json()
        assert listed[0]["expires_at"] == pytest.approx(listed[0]["created_at"] + 600)
        await pass_time(500)
        assert (await client.get("/me")).status_code == 200  # renewed: 600 s more idle
        listed = (await client.get("/devices")).json()
        assert listed[0]["expires_at"] == pytest.approx(listed[0]["created_at"] + 1000)
        await pass_time(550)
        assert await sessions.users.list("alice") == []


async def test_current_must_be_a_session_object(
    memory_sessions: SessionManager[AppSession],
) -> None:
    with pytest.raises(SessionError, match="session object"):
        await memory_sessions.users.list("alice", current=object())


@pytest.mark.parametrize("setting", ["user_index", "record_client"])
async def test_the_index_settings_are_booleans(on_memory: ManagerFactory, setting: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{setting} must be True or False"):
        on_memory(**{setting: "yes"})


async def test_the_memory_index_forgets_users_whose_sessions_are_all_gone(clock: Clock) -> None:
    backend = MemoryBackend(max_sessions=None, clock=clock)
    for n in range(MAX_STRAY_ENTRIES):
        await backend.index_add(f"user-{n}", f"key-{n}", ttl=10)
    await backend.index_remove("nobody", ["key-0"])
    clock.advance(11)  # every entry is past its time, and none has a record
    await backend.set("live", {"x": b"1"}, ttl=60)
    await backend.index_add("last", "live", ttl=60)
    assert list(backend._users) == ["last"]
    assert [key for key, _, _ in await backend.index_list("last")] == ["live"]


async def test_a_redis_index_of_another_type_is_deleted_not_an_error(
    request: pytest.FixtureRequest, clock: Clock
) -> None:
    async with open_store("redis", request, clock) as store:
        assert isinstance(store, RedisBackend)
        assert await store.index_list("alice") == []  # no index at all
        await store.index_remove("alice", [])  # nothing to remove: no call
        await store.client.set(store.index_key("alice"), b"not a sorted set")
        assert await store.index_list("alice") == []
        assert await store.client.exists(store.index_key("alice")) == 0
        await store.client.set(store.index_key("alice"), b"not a sorted set")
        await store.index_remove("alice", ["k"])
        assert await store.client.exists(store.index_key("alice")) == 0
        await store.client.set(store.index_key("alice"), b"not a sorted set")
        await store.index_add("alice", "k", ttl=60)
        assert await store.client.type(store.index_key("alice")) == b"zset"


@pytest.mark.parametrize("store_name", ["sqlite", "postgres", "mariadb"])
async def test_a_damaged_sql_row_is_left_out_of_a_listing(
    request: pytest.FixtureRequest, clock: Clock, store_name: str
) -> None:
    async with open_store(store_name, request, clock) as store:
        assert isinstance(store, SQLBackend)
        await store.set("good", {"\x00user": b'"alice"', "\x00created": b"1"}, ttl=60)
        await store.set("owner-damaged", {"\x00user": b"not json"}, ttl=60)
        table = store.table
        async with store.engine.begin() as connection:
            await connection.execute(
                table.insert().values(
                    id_hash="bad", data=[], meta={}, expires_at=clock() + 60, user_id="alice"
                )
            )
            owners = dict(
                (await connection.execute(sa.select(table.c.id_hash, table.c.user_id))).all()
            )
        assert owners["owner-damaged"] is None
        assert [key for key, _, _ in await store.index_list("alice")] == ["good"]


async def test_a_record_the_store_keeps_past_the_absolute_timeout_is_not_listed(
    make_manager: ManagerFactory, counting: Any, clock: Clock
) -> None:
    # A renewal whose write failed can leave a record in the store past its session's end.
    sessions = make_manager(idle_timeout=600, absolute_timeout=1000, user_index=True)
    fields = {OWNER_FIELD: b'"alice"', CREATED_FIELD: str(clock() - 1500).encode()}
    await counting.index_add("alice", "k" * 64, ttl=600)
    await counting.set("k" * 64, fields, ttl=600)
    assert await sessions.users.list("alice") == []
    assert await sessions.users.revoke_all("alice") == 1  # and it can still be ended


# -- lifecycle events ------------------------------------------------------------------------


async def test_each_event_fires_once_with_the_handle_and_never_a_token(
    make_manager: ManagerFactory, pass_time: PassTime
) -> None:
    events: list[SessionEvent] = []

    async def record(event: SessionEvent) -> None:
        events.append(event)

    sessions = make_manager(
        idle_timeout=600,
        absolute_timeout=1200,
        user_index=True,
        record_client=True,
        on_event=record,
    )
    app = devices_app(sessions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as phone,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as laptop,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as tablet,
    ):
        await phone.post("/login")  # a new session, logged in: created
        await laptop.post("/login")
        await tablet.post("/login")
        assert [e.kind for e in events] == ["created"] * 3
        await laptop.post("/regenerate")
        await laptop.post("/revoke-others")  # phone and tablet
        await laptop.post("/logout")
        await phone.post("/count")  # an anonymous session: created
        for _ in range(2):
            await pass_time(500)
            await phone.get("/me")  # renewed by the read alone: not an event
        await pass_time(300)  # past the absolute timeout, with the record still there
        assert (await phone.get("/me")).status_code == 401
    kinds = [e.kind for e in events]
    assert kinds == ["created"] * 3 + ["regenerated"] + ["revoked"] * 2 + [
        "destroyed",
        "created",
        "expired",
    ]
    regenerated = events[3]
    assert regenerated.previous == events[1].handle != regenerated.handle
    assert {e.handle for e in events[4:6]} == {events[0].handle, events[2].handle}
    assert events[6].handle == regenerated.handle
    assert [e.user for e in events] == ["alice"] * 7 + [None, None]
    # With the session's metadata: when it began, and the client it was created by.
    assert {e.ip for e in events[:7]} == {"127.0.0.1"}
    assert all(e.user_agent and e.user_agent.startswith("python-httpx/") for e in events[:7])
    assert (events[8].ip, events[8].user_agent) == (None, None)  # anonymous: not recorded
    assert events[4].created_at in {events[0].at, events[2].at}  # a revoked one's start
    assert events[3].created_at == events[1].at  # a regeneration keeps the creation time
    assert events[8].created_at == events[7].at
    assert events[8].handle == events[7].handle
    tokens = "".join(c.value or "" for c in [*phone.cookies.jar, *laptop.cookies.jar])
    assert not any(e.handle in tokens for e in events)


async def test_a_failing_hook_is_logged_and_the_request_goes_on(
    on_memory: ManagerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(event: SessionEvent) -> None:
        raise RuntimeError("the audit log is down")

    sessions = on_memory(user_index=True, on_event=broken)
    app = devices_app(sessions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/login")).status_code == 200
        assert (await client.get("/me")).status_code == 200
    assert "The on_event hook failed on a 'created' event" in caplog.text


async def test_on_event_must_be_callable(on_memory: ManagerFactory) -> None:
    with pytest.raises(ConfigurationError, match="on_event must be an async function"):
        on_memory(on_event="audit")


async def test_a_client_without_address_or_agent_is_recorded_as_unknown(
    memory_sessions: SessionManager[AppSession],
) -> None:
    app = devices_app(memory_sessions)
    scope = http_scope("/login", "POST")
    scope["client"] = None  # a server on a Unix socket
    cookies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        cookies.extend(v for k, v in message.get("headers", []) if k == b"set-cookie")

    await app(scope, receive, send)
    (info,) = await memory_sessions.users.list("alice")
    assert (info.ip, info.user_agent) == (None, None)
    assert cookies


async def test_an_owned_record_regenerated_without_the_index_stays_out_of_it(
    make_manager: ManagerFactory, counting: Any
) -> None:
    indexed = make_manager(user_index=True)
    plain = make_manager()  # the same store, user_index off (turned off after a deploy)
    transport = httpx.ASGITransport(app=devices_app(indexed))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        cookie = dict(client.cookies)
    (before,) = await indexed.users.list("alice")
    transport = httpx.ASGITransport(app=devices_app(plain))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies=cookie
    ) as client:
        counting.reset()
        assert (await client.post("/regenerate")).status_code == 200
        assert (await client.get("/me")).json() == {"counter": 1}
    assert counting.calls["index_add"] == 0
    # The old one left with its record. (On SQL the new record's user_id column, which is
    # the index there, still names alice.)
    assert before.handle not in {info.handle for info in await indexed.users.list("alice")}


async def test_an_index_entry_whose_record_is_not_written_yet_is_not_listed(
    clock: Clock,
) -> None:
    backend = MemoryBackend(clock=clock)
    await backend.index_add("alice", "pending", ttl=60)
    assert await backend.index_list("alice") == []
    assert list(backend._users["alice"]) == ["pending"]  # kept: its record may be on its way


async def test_past_max_user_sessions_a_log_in_ends_the_least_recently_used(
    make_manager: ManagerFactory, pass_time: PassTime
) -> None:
    events: list[SessionEvent] = []

    async def record(event: SessionEvent) -> None:
        events.append(event)

    sessions = make_manager(user_index=True, max_user_sessions=3, on_event=record)
    transport = httpx.ASGITransport(app=devices_app(sessions), raise_app_exceptions=False)
    devices = [
        httpx.AsyncClient(transport=transport, base_url="http://testserver") for _ in range(5)
    ]
    for device in devices:
        assert (await device.post("/login")).status_code == 200
        await pass_time(1)  # each log-in later than the one before
    assert [(await device.get("/me")).status_code for device in devices] == [401] * 2 + [200] * 3
    assert len(await sessions.users.list("alice")) == 3
    revoked = [event for event in events if event.kind == "revoked"]
    assert len(revoked) == 2
    assert {event.user for event in revoked} == {"alice"}
    assert all(event.created_at is not None for event in revoked)  # with the record's facts
    # Binding an already bound session again adds none: nothing more is ended.
    assert (await devices[4].post("/regenerate")).status_code == 200
    assert len(await sessions.users.list("alice")) == 3
    for device in devices:
        await device.aclose()


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3"])
def test_max_user_sessions_is_a_positive_whole_number(clock: Clock, value: object) -> None:
    with pytest.raises(ConfigurationError, match="max_user_sessions"):
        manager_factory(MemoryBackend(clock=clock), clock)(
            user_index=True, max_user_sessions=value
        )
    with pytest.raises(ConfigurationError, match="max_user_sessions=3 needs user_index=True"):
        manager_factory(MemoryBackend(clock=clock), clock)(max_user_sessions=3)


class OnlyTheAbstractIndex(CountingBackend):
    """A store of one's own that implements only what `SessionIndex` requires: the bounded
    operations fall back on the protocol's defaults, built on `index_list`."""

    index_keys = SessionIndex.index_keys  # type: ignore[assignment]
    index_page = SessionIndex.index_page  # type: ignore[assignment]
    index_end = SessionIndex.index_end  # type: ignore[assignment]


async def test_a_store_with_only_the_abstract_index_methods_still_pages_and_revokes(
    clock: Clock,
) -> None:
    store = OnlyTheAbstractIndex(MemoryBackend(clock=clock))
    sessions = manager_factory(store, clock)(user_index=True, max_user_sessions=4)
    transport = httpx.ASGITransport(app=devices_app(sessions), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as mine:
        for _ in range(5):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
                await other.post("/login")
            clock.advance(1)
        await mine.post("/login")
        listed = await sessions.users.list("alice", limit=2)
        assert len(listed) == 2
        assert len(await sessions.users.list("alice")) == 4  # the limit kept
        assert await sessions.users.revoke("alice", listed[1].handle)
        assert await sessions.users.revoke_all("alice", keep=None) == 3
        assert (await mine.get("/me")).status_code == 401
    assert store.calls["index_list"] > 0  # through the defaults


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, "10"), (1.5, 10)])
async def test_a_page_is_asked_for_with_whole_numbers(
    on_memory: ManagerFactory, offset: object, limit: object
) -> None:
    sessions = on_memory()
    with pytest.raises(SessionError, match="offset must be 0 or more and limit more than 0"):
        await sessions.users.list("alice", offset=offset, limit=limit)  # type: ignore[arg-type]
