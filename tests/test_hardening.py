"""Regressions of the hardening review: no lock-outs, bounded records, and the attacks a
session library must hold against. Each test names its row; each runs on every store the
row applies to (the ``backend`` fixture here: memory, Redis, Redis Cluster, and the session
service over HTTP on memory and on Redis).
"""

import logging
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    HeaderFrontend,
    MemoryBackend,
    RedisBackend,
    SessionManager,
    SessionMiddleware,
    load_session,
)
from fastapi_session_deps._faults import faults
from fastapi_session_deps.signing import TokenSigner, new_session_id, store_key

from .helpers import OLD_SECRET, SECRET, Clock, CountingBackend, call, cookie_header
from .support import (
    WITH_THE_SERVICE,
    AppSession,
    ManagerFactory,
    StoreRecords,
    build_app,
    each_store,
)
from .test_manager import app_with_a_slow_route, session_id_of

pytestmark = pytest.mark.anyio


# Every store, the session service included.
backend = pytest.fixture(params=WITH_THE_SERVICE, name="backend")(each_store)


def redis_of(backend: Backend) -> RedisBackend:
    store = backend.inner if isinstance(backend, CountingBackend) else backend
    store = getattr(store, "served", store)
    if not isinstance(store, RedisBackend):
        pytest.skip("a Redis-only row: the other stores have no key types")
    return store


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


# -- row 1: a key of the wrong type is no session, not 503 forever ---------------------------


@pytest.mark.parametrize("kind", ["string", "list", "set"])
async def test_a_record_of_the_wrong_type_is_no_session_and_deleted(
    app: FastAPI, backend: Backend, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = redis_of(backend)
    login = await call(app, "/login", "POST")
    headers = cookie_header(login.cookie() or "")
    name = store.redis_key(store_key(session_id_of(login.cookie())))
    await store.client.delete(name)
    await {
        "string": lambda: store.client.set(name, "not a hash"),
        "list": lambda: store.client.rpush(name, "a", "b"),
        "set": lambda: store.client.sadd(name, "a"),
    }[kind]()
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        me = await call(app, "/me", headers=headers)
    assert me.status == 401  # no session: never a 503
    assert await store.client.exists(name) == 0  # and the damaged key is gone
    assert "not a Redis hash" in caplog.text
    assert "not a hash" not in caplog.text.replace("not a Redis hash", "")
    assert (await call(app, "/login", "POST", headers=headers)).status == 200


async def test_a_record_turned_to_another_type_during_a_request_drops_the_change(
    manager: SessionManager[AppSession], backend: Backend
) -> None:
    store = redis_of(backend)
    app, loaded, release = app_with_a_slow_route(manager)
    async with client_of(app) as client:
        await client.post("/login")
        name = store.redis_key(store_key(session_id_of(client.cookies["session"])))
        async with anyio.create_task_group() as group:
            group.start_soon(client.post, "/slow-incr")
            await loaded.wait()
            await store.client.delete(name)
            await store.client.set(name, "garbage")
            release.set()
        assert await store.client.exists(name) == 0
        assert (await client.get("/me")).status_code == 401


# -- row 2: many fields are written in chunks ---------------------------------------------------


async def test_a_record_with_thousands_of_fields_is_written_read_and_merged(
    backend: Backend,
) -> None:
    fields = {f"f{index}": b"1" for index in range(12_000)}
    await backend.set("many", fields, ttl=60)
    assert await backend.get("many") == fields
    assert await backend.get("many", ttl=60) == fields
    changed = {f"n{index}": b"2" for index in range(9_000)}
    removed = [f"f{index}" for index in range(9_000)]
    assert await backend.update("many", changed, removed, ttl=60)
    record = await backend.get("many")
    assert record is not None
    assert len(record) == 12_000
    assert record["n8999"] == b"2"
    assert "f0" not in record


async def test_thousands_of_keys_in_request_session_are_saved(backend: Backend) -> None:
    async def fill(request: Request) -> JSONResponse:
        request.session.update({f"k{index}": 1 for index in range(8_000)})
        return JSONResponse({})

    async def count(request: Request) -> JSONResponse:
        return JSONResponse({"keys": len(request.session)})

    app = Starlette(
        routes=[Route("/fill", fill, methods=["POST"]), Route("/count", count)],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, backend=backend)],
    )
    async with client_of(app) as client:
        assert (await client.post("/fill")).status_code == 200
        assert (await client.get("/count")).json() == {"keys": 8_000}
        assert (await client.post("/fill")).status_code == 200  # and merged again


async def test_a_failing_script_is_a_server_error_not_retry_shortly(redis_url: str) -> None:
    from fastapi_session_deps import BackendError, BackendUnavailable

    backend = RedisBackend.from_url(redis_url)
    broken = backend.client.register_script("return redis.call('NO-SUCH-COMMAND')")
    with pytest.raises(BackendError) as caught:
        await backend._call("update", lambda: broken(keys=["k"]))
    assert not isinstance(caught.value, BackendUnavailable)
    await backend.aclose()


# -- row 3: one size limit, checked at commit; a larger record read is no session -----------


def size_app(sessions: SessionManager[AppSession]) -> FastAPI:
    app = build_app(sessions)

    @app.post("/big")
    async def big(
        session: Annotated[AppSession, Depends(sessions.get_session)], size: int
    ) -> dict[str, bool]:
        session.prefs["blob"] = "x" * size
        return {"ok": True}

    return app


async def test_an_oversized_change_is_refused_at_commit_and_nothing_is_stored(
    make_manager: ManagerFactory,
    store_records: StoreRecords,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = size_app(make_manager(max_record_bytes=4096))
    login = await call(app, "/login", "POST")
    headers = cookie_header(login.cookie() or "")
    before = await store_records()
    with caplog.at_level(logging.ERROR, logger="fastapi_session_deps"):
        refused = await call(app, "/big?size=5000", "POST", headers=headers)
    assert refused.status == 500
    assert refused.cookie() is None
    assert "max_record_bytes=4096" in caplog.text
    assert await store_records() == before  # nothing stored
    new = await call(app, "/big?size=5000", "POST")  # a new session: nothing stored either
    assert new.status == 500
    assert await store_records() == before
    assert (await call(app, "/me", headers=headers)).status == 200  # the session is intact
    assert (await call(app, "/big?size=3000", "POST", headers=headers)).status == 200


async def test_a_stored_record_over_the_limit_is_no_session_never_a_lock_out(
    make_manager: ManagerFactory, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = make_manager(max_record_bytes=4096)
    app = build_app(sessions)
    login = await call(app, "/login", "POST")
    key = store_key(session_id_of(login.cookie()))
    record = await backend.get(key)
    assert record is not None
    await backend.set(key, {**record, "cart": b'["' + b"x" * 5000 + b'"]'}, ttl=600)
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        me = await call(app, "/me", headers=cookie_header(login.cookie() or ""))
    assert me.status == 401
    assert "over max_record_bytes=4096" in caplog.text
    assert await backend.get(key) is None  # deleted, so it costs no more reads
    assert (await call(app, "/login", "POST")).status == 200


async def test_the_limit_defaults_to_64_kib_and_can_be_lifted(
    make_manager: ManagerFactory,
) -> None:
    app = size_app(make_manager())
    assert (await call(app, "/big?size=60000", "POST")).status == 200
    assert (await call(app, "/big?size=70000", "POST")).status == 500
    lifted = size_app(make_manager(max_record_bytes=None))
    assert (await call(lifted, "/big?size=200000", "POST")).status == 200


# -- row 5: a token is bound to its app's namespace -----------------------------------------


async def test_a_token_from_another_app_sharing_the_secret_and_store_is_refused(
    make_manager: ManagerFactory,
) -> None:
    user = build_app(make_manager())
    admin = build_app(make_manager(frontend_options={"cookie_name": "admin_session"}))
    api = build_app(make_manager(frontend=HeaderFrontend(SECRET)))
    token = (await call(user, "/login", "POST")).cookie()
    assert token
    assert (await call(user, "/me", headers=cookie_header(token))).status == 200
    replayed = await call(admin, "/me", headers=cookie_header(token, "admin_session"))
    assert replayed.status == 401
    as_header = await call(api, "/me", headers=[(b"x-session-token", token.encode())])
    assert as_header.status == 401


async def test_apps_that_should_share_sessions_name_one_namespace(
    make_manager: ManagerFactory,
) -> None:
    one = build_app(make_manager(frontend_options={"namespace": "shop"}))
    two = build_app(
        make_manager(
            frontend=CookieFrontend(
                [OLD_SECRET, SECRET], secure=False, cookie_name="sid", namespace="shop"
            )
        )
    )
    token = (await call(one, "/login", "POST")).cookie()
    assert (await call(two, "/me", headers=cookie_header(token or "", "sid"))).status == 200


# -- row 6: duplicate cookies, and the __Host- default -----------------------------------------


async def test_a_tossed_cookie_never_shadows_the_real_one(app: FastAPI, clock: Clock) -> None:
    mine = (await call(app, "/login?user_id=1", "POST")).cookie()
    assert mine
    forged = TokenSigner(OLD_SECRET, namespace="session").sign(new_session_id(), int(clock()))
    for tossed in ("garbage", forged, ""):
        for header in (f"session={tossed}; session={mine}", f"session={mine}; session={tossed}"):
            response = await call(app, "/me", headers=[(b"cookie", header.encode())])
            assert response.status == 200, header


async def test_of_two_valid_cookies_the_one_issued_last_wins(app: FastAPI, clock: Clock) -> None:
    # An attacker's own valid token, tossed before the victim logged in: the victim's
    # log-in issues a newer token, which wins whatever the order the browser sends them in.
    attackers = (await call(app, "/login?user_id=666", "POST")).cookie()
    clock.advance(5)
    victims = (await call(app, "/login?user_id=1", "POST")).cookie()
    for header in (
        f"session={attackers}; session={victims}",
        f"session={victims}; session={attackers}",
    ):
        me = await call(app, "/me", headers=[(b"cookie", header.encode())])
        assert b'"user_id":1' in me.body


def test_the_default_cookie_is_host_only_whenever_it_can_be() -> None:
    assert CookieFrontend(SECRET).cookie_name == "__Host-session"
    assert CookieFrontend(SECRET, secure=False).cookie_name == "session"
    assert CookieFrontend(SECRET, domain="example.org").cookie_name == "session"
    assert CookieFrontend(SECRET, path="/app").cookie_name == "session"
    assert CookieFrontend(SECRET, secure="auto").cookie_name == "session"


# -- row 7: a token from the future is renewed at once ------------------------------------------


async def test_a_token_stamped_in_the_future_is_reissued_and_then_slides(
    app: FastAPI, clock: Clock, backend: Backend
) -> None:
    session_id = session_id_of((await call(app, "/login", "POST")).cookie())
    ahead = TokenSigner(SECRET, namespace="session").sign(session_id, int(clock()) + 3600)
    renewed = await call(app, "/me", headers=cookie_header(ahead))
    assert renewed.status == 200
    fresh = renewed.cookie()
    assert fresh
    verified = TokenSigner(SECRET, namespace="session").verify(fresh)
    assert verified is not None
    assert verified.issued_at == int(clock())  # re-stamped with this server's time
    for _ in range(4):  # and from then on it slides like any other
        clock.advance(1000)
        response = await call(app, "/me", headers=cookie_header(fresh))
        assert response.status == 200
        fresh = response.cookie() or fresh


# -- row 9: a late request on a replaced id never clears the new cookie --------------------------


async def test_a_slow_request_finishing_after_a_log_in_leaves_the_browser_logged_in(
    manager: SessionManager[AppSession],
) -> None:
    app, loaded, release = app_with_a_slow_route(manager)
    async with client_of(app) as client:
        await client.post("/cart", params={"item": "tea"})  # an anonymous session
        responses: list[httpx.Response] = []

        async def slow() -> None:
            responses.append(await client.post("/slow-incr"))

        async with anyio.create_task_group() as group:
            group.start_soon(slow)
            await loaded.wait()
            await client.post("/login", params={"user_id": 5})  # a new id, the old one gone
            release.set()
        assert "set-cookie" not in responses[0].headers
        me = await client.get("/me")
        assert me.status_code == 200
        assert me.json()["user_id"] == 5


# -- row 10: a log-out is honoured even if the route then fails -----------------------------------


@pytest.mark.parametrize("failure", ["exception", "500 response"])
async def test_destroy_then_a_server_error_still_logs_out(
    manager: SessionManager[AppSession], backend: Backend, failure: str
) -> None:
    app = build_app(manager)

    @app.post("/logout-then-fail")
    async def logout_then_fail(
        session: Annotated[AppSession, Depends(manager.get_session)],
    ) -> JSONResponse:
        await manager.destroy(session)
        if failure == "exception":
            raise RuntimeError("the route failed after the log-out")
        return JSONResponse({"failed": True}, status_code=500)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        token = client.cookies["session"]
        failed = await client.post("/logout-then-fail")
        assert failed.status_code == 500
        if failure == "500 response":  # a response this middleware sees: the cookie goes too
            assert 'session=""' in failed.headers["set-cookie"]
    assert await backend.get(store_key(session_id_of(token))) is None
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401


# -- row 11: responses that hand out a token are not cacheable -----------------------------------


async def test_responses_that_set_or_clear_the_token_are_private_no_store(
    make_manager: ManagerFactory,
) -> None:
    sessions = make_manager()
    app = build_app(sessions)

    @app.post("/cached")
    async def cached(
        session: Annotated[AppSession, Depends(sessions.get_session)],
    ) -> JSONResponse:
        session.counter += 1
        return JSONResponse({}, headers={"cache-control": "public, max-age=3600"})

    @app.post("/own")
    async def own(session: Annotated[AppSession, Depends(sessions.get_session)]) -> JSONResponse:
        session.counter += 1
        return JSONResponse({}, headers={"cache-control": "no-store, must-revalidate"})

    login = await call(app, "/login", "POST")
    assert login.header("cache-control") == "private, no-store"
    headers = cookie_header(login.cookie() or "")
    assert (await call(app, "/logout", "POST", headers=headers)).header(
        "cache-control"
    ) == "private, no-store"
    assert (await call(app, "/cached", "POST")).header("cache-control") == "private, no-store"
    assert (await call(app, "/own", "POST")).header("cache-control") == "no-store, must-revalidate"
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    assert (await call(app, "/read", headers=headers)).header("cache-control") is None


async def test_a_header_token_response_is_private_no_store_too(
    make_manager: ManagerFactory,
) -> None:
    app = build_app(make_manager(frontend=HeaderFrontend(SECRET)))
    assert (await call(app, "/login", "POST")).header("cache-control") == "private, no-store"


# -- row 12: an undecodable record is logged without its values ---------------------------------


async def test_a_record_that_fails_validation_is_logged_by_field_and_type_only(
    app: FastAPI, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    login = await call(app, "/login", "POST")
    key = store_key(session_id_of(login.cookie()))
    record = await backend.get(key)
    assert record is not None
    damaged = {**record, "prefs": b'{"card": "4111 1111 1111 1111"}', "counter": b'"nine"'}
    await backend.set(key, damaged, ttl=600)
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        assert (await call(app, "/me", headers=cookie_header(login.cookie() or ""))).status == 401
    assert "counter: int_parsing" in caplog.text
    assert "4111" not in caplog.text
    assert "nine" not in caplog.text


async def test_a_dict_session_that_is_not_json_is_logged_without_its_bytes(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    async def read(request: Request) -> JSONResponse:
        return JSONResponse(dict(await load_session(request)))

    async def write(request: Request) -> JSONResponse:
        request.session["card"] = "4111"
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/read", read), Route("/write", write, methods=["POST"])],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, backend=backend)],
    )
    token = (await call(app, "/write", "POST")).cookie()
    assert token
    key = store_key(session_id_of(token))
    record = await backend.get(key)
    assert record is not None
    await backend.set(key, {**record, "card": b"4111 1111 1111 1111 not json"}, ttl=600)
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        response = await call(app, "/read", headers=cookie_header(token))
    assert response.body == b"{}"
    assert "4111" not in caplog.text
    assert "not JSON" in caplog.text


# -- row 14: expiry decisions to the sub-second ------------------------------------------------


async def test_a_session_with_under_a_second_left_is_saved_not_ended(
    make_manager: ManagerFactory, clock: Clock, backend: Backend
) -> None:
    app = build_app(make_manager(idle_timeout=10, absolute_timeout=10))
    token = (await call(app, "/incr", "POST")).cookie()
    assert token
    clock.advance(9.2)  # 0.8 s of absolute lifetime left
    response = await call(app, "/incr", "POST", headers=cookie_header(token))
    assert response.status == 200
    assert b'"counter":2' in response.body
    record = await backend.get(store_key(session_id_of(token)))
    assert record is not None
    assert record["counter"] == b"2"


# -- row 15: a store fault is logged, once, under the documented logger ---------------------------


async def test_store_faults_are_logged_once_then_at_most_every_minute(
    make_manager: ManagerFactory, counting: CountingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    from .helpers import SwitchableBackend

    store = SwitchableBackend(counting)
    app = build_app(make_manager(backend=store))
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    store.down = {"get"}
    clock = Clock()
    faults.clock = clock
    try:
        with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
            for _ in range(5):
                assert (await call(app, "/me", headers=headers)).status == 503
            clock.advance(61)
            assert (await call(app, "/me", headers=headers)).status == 503
    finally:
        faults.clock = __import__("time").monotonic
    warnings = [r for r in caplog.records if "Session store unavailable (503)" in r.message]
    assert len(warnings) == 2
    assert "4 more since the last warning" in warnings[1].message
    assert all(r.name == "fastapi_session_deps" for r in warnings)
    assert warnings[0].__dict__["event"] == "store_fault"


# -- row 16: MemoryBackend says so when it is one of several workers ---------------------------


def test_memory_warns_in_a_multi_worker_server(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    monkeypatch.setattr(sys, "argv", ["uvicorn", "app:app", "--workers", "2"])
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        MemoryBackend()
    assert "2 worker processes" in caplog.text
    caplog.clear()
    monkeypatch.setattr(sys, "argv", ["uvicorn", "app:app"])
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        MemoryBackend()
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("argv", "environ", "workers"),
    [
        (["uvicorn", "a:b", "--workers", "4"], {}, 4),
        (["uvicorn", "a:b", "--workers=3"], {}, 3),
        (["gunicorn", "-w", "5", "a:b"], {}, 5),
        (["gunicorn", "-w2", "a:b"], {}, 2),
        (["gunicorn", "a:b"], {"GUNICORN_CMD_ARGS": "--workers 6"}, 6),
        (["uvicorn", "a:b"], {"WEB_CONCURRENCY": "2"}, 2),
        (["uvicorn", "a:b"], {}, 1),
        (["uvicorn", "--workers"], {}, 1),
    ],
)
def test_the_worker_count_is_read_from_the_command_line_and_environment(
    argv: list[str], environ: dict[str, str], workers: int
) -> None:
    from fastapi_session_deps.backends.memory import serving_workers

    assert serving_workers(argv, environ) == workers


# -- row 4: the memory store's bound keeps the sessions in use ---------------------------------


async def test_sessions_in_use_survive_a_flood_of_new_ones(clock: Clock) -> None:
    store = MemoryBackend(max_sessions=100, clock=clock)
    sessions = SessionManager(
        AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=store, clock=clock
    )
    app = build_app(sessions)
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    # 1,000 anonymous writers, ten times the bound; the user's session is used after every
    # 50 of them, and survives: those evicted are the ones idle longest.
    for wave in range(20):
        for _ in range(50):
            await call(app, "/incr", "POST")
        assert (await call(app, "/me", headers=headers)).status == 200, wave
    assert len(store) == 100


def test_the_memory_store_is_bounded_by_default() -> None:
    assert MemoryBackend().max_sessions == 10_000


async def test_a_read_refreshes_a_records_place_in_line(clock: Clock) -> None:
    store = MemoryBackend(max_sessions=2, clock=clock)
    await store.set("kept", {"a": b"1"}, ttl=60)
    await store.set("other", {"a": b"1"}, ttl=60)
    await store.get("kept")  # a plain read, no renewal: still "in use"
    await store.set("new", {"a": b"1"}, ttl=60)
    assert await store.get("kept") == {"a": b"1"}
    assert await store.get("other") is None


# (Row 8, the orphan lock after a paused Redis, is in backends/test_redis.py; row 13, the
# session service's guard, in backends/test_http.py; row 17, a lock with no time to wait,
# in the contract suite.)


# -- the edges of the above ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, "64k"])
def test_max_record_bytes_must_be_a_positive_int_or_none(bad: object) -> None:
    from fastapi_session_deps import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_record_bytes"):
        SessionManager(
            AppSession,
            frontend=CookieFrontend(SECRET),
            backend=MemoryBackend(),
            max_record_bytes=bad,  # type: ignore[arg-type]
        )


async def test_the_anonymous_policy_lets_a_new_visitor_through_when_the_store_is_full(
    make_manager: ManagerFactory, counting: CountingBackend
) -> None:
    from .helpers import SwitchableBackend

    store = SwitchableBackend(counting)
    app = build_app(make_manager(backend=store, on_backend_error="anonymous"))
    store.down = {"set"}
    response = await call(app, "/incr", "POST")
    assert response.status == 200  # served, without a session
    assert response.cookie() is None
    strict = build_app(make_manager(backend=store))
    assert (await call(strict, "/incr", "POST")).status == 503


async def test_failed_releases_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi_session_deps import _locks

    from .helpers import SwitchableBackend

    monkeypatch.setattr(_locks, "MAX_UNRELEASED", 2)
    store = SwitchableBackend(MemoryBackend())
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=store,
        concurrency="lock",
    )
    app = build_app(sessions)
    tokens = [(await call(app, "/login", "POST")).cookie() or "" for _ in range(3)]
    store.down = {"release_lock"}
    for token in tokens:
        assert (await call(app, "/incr", "POST", headers=cookie_header(token))).status == 200
    assert sessions.engine.locking is not None
    assert (
        len(sessions.engine.locking._unreleased) == 2
    )  # the oldest was forgotten (its TTL frees it)


async def test_a_tombstone_is_forgotten_after_a_while(clock: Clock) -> None:
    from fastapi_session_deps.backends.base import LOCK_TOMBSTONE_SECONDS

    store = MemoryBackend(clock=clock)
    await store.release_lock("k", "gone")
    assert not await store.acquire_lock("k", "gone", ttl=5, wait=0)
    clock.advance(LOCK_TOMBSTONE_SECONDS + 1)
    await store.release_lock("k", "another")  # prunes the expired tombstone
    assert await store.acquire_lock("k", "gone", ttl=5, wait=0)


async def test_an_unbounded_memory_store_keeps_everything(clock: Clock) -> None:
    store = MemoryBackend(max_sessions=None, clock=clock)
    for index in range(50):
        await store.set(f"k{index}", {"a": b"1"}, ttl=60)
    assert len(store) == 50


async def test_a_redis_refusal_that_will_pass_is_unavailable_even_inside_a_script(
    tmp_path: Path,
) -> None:
    # A replica refuses writes (READONLY) until it is promoted: "retry shortly", whether
    # the write is a plain command or one inside a script.
    from fastapi_session_deps import BackendUnavailable

    from .redis_servers import RedisServer

    server = RedisServer(tmp_path / "replica").start()
    try:
        backend = RedisBackend.from_url(server.url)
        await backend.client.replicaof("127.0.0.1", 1)
        with pytest.raises(BackendUnavailable, match="ReadOnlyError"):
            await backend.set("k", {"a": b"1"}, ttl=60)  # a script
        with pytest.raises(BackendUnavailable, match="ReadOnlyError"):
            await backend.delete("k")  # a plain command
        await backend.client.replicaof("NO", "ONE")
        await backend.aclose()
    finally:
        server.stop()


async def test_an_answer_too_large_for_anything_but_a_read_is_unavailable() -> None:
    from fastapi_session_deps import BackendUnavailable
    from fastapi_session_deps._wire import max_body_bytes
    from fastapi_session_deps.backends.base import MAX_RECORD_BYTES
    from fastapi_session_deps.backends.http import HTTPBackend

    from .helpers import SERVICE_TOKEN, served_in_thread

    async def service(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {"type": "http.response.body", "body": b" " * (max_body_bytes(MAX_RECORD_BYTES) + 1)}
        )

    with served_in_thread(service) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        with pytest.raises(BackendUnavailable, match="answer too large"):
            await backend.acquire_lock("k", "token", ttl=5, wait=0)
        await backend.aclose()


def test_a_stored_value_that_is_not_bytes_is_invalid_data() -> None:
    from fastapi_session_deps import InvalidSessionData
    from fastapi_session_deps.serializers import ModelSerializer

    with pytest.raises(InvalidSessionData, match="TypeError"):
        ModelSerializer(AppSession).load({"counter": "1"})  # type: ignore[dict-item]


def test_a_namespace_is_text() -> None:
    from fastapi_session_deps import ConfigurationError

    with pytest.raises(ConfigurationError, match="namespace must be a string"):
        TokenSigner(SECRET, namespace=b"session")  # type: ignore[arg-type]


def test_uvicorn_with_two_workers_and_a_memory_store_warns_at_start_up(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from .helpers import free_port

    (tmp_path / "memory_app.py").write_text(
        "from fastapi import FastAPI\n"
        "from fastapi_session_deps import MemoryBackend\n"
        "backend = MemoryBackend()\n"
        "app = FastAPI()\n"
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "memory_app:app",
        "--app-dir",
        str(tmp_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--workers",
        "2",
    ]
    lines: list[str] = []
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:  # noqa: S603
        assert process.stderr is not None
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and sum("worker processes" in x for x in lines) < 2:
                line = process.stderr.readline()
                if not line:
                    break
                lines.append(line)
        finally:
            process.terminate()
            process.wait(timeout=20)
    warning = "MemoryBackend in a server with 2 worker processes"
    assert sum(warning in line for line in lines) == 2  # one from each worker
