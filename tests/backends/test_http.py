"""HTTPBackend and the session service: the protocol's rules, ownership and faults."""

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastapi_session_deps import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    CookieFrontend,
    MemoryBackend,
    SessionManager,
)
from fastapi_session_deps._wire import (
    SERVICE_TOKEN_ENV,
    ended_records,
    json_object,
    listed_records,
    max_body_bytes,
    record_fields,
    string_list,
)
from fastapi_session_deps.backends.base import MAX_RECORD_BYTES
from fastapi_session_deps.backends.http import HTTPBackend
from fastapi_session_deps.service import create_app

from ..helpers import (
    SECRET,
    SERVICE_TOKEN,
    NoLocksBackend,
    call,
    cookie_header,
    free_port,
    http_scope,
    served_in_thread,
)
from ..support import AppSession, build_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def service() -> Iterator[str]:
    with served_in_thread(create_app(MemoryBackend(), token=SERVICE_TOKEN)) as url:
        yield url


# -- the service's own rules --------------------------------------------------------------


async def test_the_service_wants_the_token(service: str) -> None:
    async with httpx.AsyncClient(base_url=service) as client:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": SERVICE_TOKEN}):
            response = await client.get("/v1/sessions/abc", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"


async def test_the_service_refuses_what_the_protocol_does_not_allow(service: str) -> None:
    auth = {"authorization": f"Bearer {SERVICE_TOKEN}"}
    record = {"fields": {"a": "MQ=="}}
    async with httpx.AsyncClient(base_url=service, headers=auth) as client:
        assert (await client.get("/v1/sessions/bad%20key")).status_code == 400
        assert (await client.put("/v1/sessions/k", json=record)).status_code == 400  # no TTL
        ttl = {"session-ttl": "60"}
        assert (
            await client.put("/v1/sessions/k", json=record, headers={"session-ttl": "x"})
        ).status_code == 400
        assert (
            await client.put("/v1/sessions/k", json=record, headers={"session-ttl": "-1"})
        ).status_code == 400
        bad = {"fields": {"a": "not base64!"}}
        assert (await client.put("/v1/sessions/k", json=bad, headers=ttl)).status_code == 400
        assert (await client.put("/v1/sessions/k", json=record, headers=ttl)).status_code == 204
        patch = {"changed": {"b": "Mg=="}}
        assert (await client.patch("/v1/sessions/k", json=patch, headers=ttl)).status_code == 428
        with_match = {**ttl, "if-match": "*"}
        assert (
            await client.patch("/v1/sessions/k", json={"changed": {"b": "!"}}, headers=with_match)
        ).status_code == 400
        assert (
            await client.patch("/v1/sessions/k", json=patch, headers=with_match)
        ).status_code == 204
        assert (
            await client.patch("/v1/sessions/gone", json=patch, headers=with_match)
        ).status_code == 412
        got = await client.get("/v1/sessions/k")
        assert got.json() == {"fields": {"a": "MQ==", "b": "Mg=="}}
        assert (await client.get("/v1/sessions/missing")).status_code == 404


async def test_a_store_without_locks_answers_501() -> None:

    with served_in_thread(create_app(NoLocksBackend(), token=SERVICE_TOKEN)) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            with pytest.raises(BackendError, match=r"cannot do acquire_lock: .*no session locks"):
                await backend.acquire_lock("k", "t", ttl=5, wait=0)
        finally:
            await backend.aclose()


def test_a_short_service_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        create_app(MemoryBackend(), token="short")


def test_the_service_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi_session_deps import service

    monkeypatch.setenv(SERVICE_TOKEN_ENV, SERVICE_TOKEN)
    monkeypatch.delenv(service.REDIS_URL_ENV, raising=False)
    auth = {"authorization": f"Bearer {SERVICE_TOKEN}"}
    with served_in_thread(service.from_env()) as url:
        assert httpx.get(url + "/v1/sessions/none", headers=auth).status_code == 404
        assert httpx.get(url + "/v1/sessions/none").status_code == 401


def test_the_service_from_the_environment_on_redis(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    from fastapi_session_deps import service

    monkeypatch.setenv(SERVICE_TOKEN_ENV, SERVICE_TOKEN)
    monkeypatch.setenv(service.REDIS_URL_ENV, redis_url)
    with served_in_thread(service.from_env()) as url:
        response = httpx.get(
            url + "/v1/sessions/none", headers={"authorization": f"Bearer {SERVICE_TOKEN}"}
        )
    assert response.status_code == 404


# -- the client ---------------------------------------------------------------------------


async def test_ownership_follows_the_constructor(service: str) -> None:
    owned = HTTPBackend.from_url(service, token=SERVICE_TOKEN)
    await owned.aclose()
    await owned.aclose()
    assert owned.client.is_closed
    client = httpx.AsyncClient(base_url=service)
    handed = HTTPBackend(client, token=SERVICE_TOKEN)
    await handed.aclose()
    assert not client.is_closed
    await client.aclose()
    assert repr(handed).startswith("HTTPBackend(base_url=")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client": object(), "token": "t"}, "httpx.AsyncClient"),
        ({"token": ""}, "token is required"),
        ({"token": "t", "timeout": 0}, "timeout must be positive"),
    ],
)
async def test_misconfiguration_is_refused(options: dict[str, Any], message: str) -> None:
    client = options.pop("client", None) or httpx.AsyncClient()
    with pytest.raises(ConfigurationError, match=message):
        HTTPBackend(client, **options)
    if isinstance(client, httpx.AsyncClient):
        await client.aclose()


async def test_a_wrong_token_is_a_logged_configuration_error(
    service: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = HTTPBackend.from_url(service, token="not-the-token")
    with (
        caplog.at_level(logging.ERROR, logger="fastapi_session_deps"),
        pytest.raises(BackendUnavailable, match="refused the token"),
    ):
        await backend.get("k")
    assert "check the token" in caplog.text
    await backend.aclose()


async def test_a_stopped_service_is_unavailable_and_the_app_answers_503() -> None:
    port = free_port()  # nothing listens there
    backend = HTTPBackend.from_url(f"http://127.0.0.1:{port}", token=SERVICE_TOKEN, retries=1)
    with pytest.raises(BackendUnavailable, match="unavailable for GET"):
        await backend.get("k")
    app = build_app(
        SessionManager(AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=backend)
    )
    response = await call(app, "/incr", "POST")
    assert response.status == 503
    assert response.header("retry-after") == "1"
    await backend.aclose()


async def test_a_service_that_never_answers_times_out() -> None:
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # and never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN, timeout=0.2, retries=2)
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailable, match="TimeoutError"):
            await backend.get("k")
        assert time.monotonic() - started < 0.2 * 3 + 1  # bounded: timeout x attempts
        with pytest.raises(BackendUnavailable):
            await backend.set("k", {"a": b"1"}, ttl=5)  # not retried, still bounded
    finally:
        await backend.aclose()
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


# -- a misbehaving server -----------------------------------------------------------------

GARBAGE: dict[str, tuple[int, str, bytes]] = {
    "not-json": (200, "text/html", b"<html>hello</html>"),
    "truncated": (200, "application/json", b'{"fields": {"a": "MQ'),
    "not-an-object": (200, "application/json", b"[1, 2]"),
    "no-fields": (200, "application/json", b'{"other": 1}'),
    "fields-not-text": (200, "application/json", b'{"fields": {"a": 1}}'),
    "not-base64": (200, "application/json", b'{"fields": {"a": "!!"}}'),
    "teapot": (418, "text/plain", b"no"),
    "always-500": (500, "text/plain", b"boom"),
}


def misbehaving(kind: str, hits: list[str]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        hits.append(scope["method"])
        status, content_type, body = GARBAGE[kind]
        if kind == "flaky" and len(hits) < 3:
            status, content_type, body = 502, "text/plain", b"bad gateway"
        elif kind == "flaky":
            status, content_type, body = 200, "application/json", b'{"fields": {"a": "MQ=="}}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


GARBAGE["flaky"] = (0, "", b"")


@pytest.mark.parametrize(
    "kind", [k for k in GARBAGE if k not in ("flaky", "deleted-unsaid", "after-not-text")]
)
async def test_garbage_from_the_service_is_unavailable_never_a_500(kind: str) -> None:
    hits: list[str] = []
    with served_in_thread(misbehaving(kind, hits)) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        with pytest.raises(BackendUnavailable):
            await backend.get("k")
        sessions = SessionManager(
            AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=backend
        )
        app = build_app(sessions)
        token = TokenSigner_sign()
        for path, method in (("/read", "GET"), ("/incr", "POST"), ("/login", "POST")):
            response = await call(app, path, method, headers=cookie_header(token))
            assert response.status == 503, (kind, path)
        await backend.aclose()
    if kind == "always-500":
        assert hits[:3] == ["GET", "GET", "GET"]  # a read is tried 1 + 2 times


def TokenSigner_sign() -> str:
    from fastapi_session_deps.signing import TokenSigner, new_session_id

    return TokenSigner(SECRET, namespace="session").sign(new_session_id(), 1_800_000_000)


async def test_a_read_is_retried_past_a_passing_5xx() -> None:
    hits: list[str] = []
    with served_in_thread(misbehaving("flaky", hits)) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN, retries=2)
        assert await backend.get("k") == {"a": b"1"}
        await backend.aclose()
    assert hits == ["GET", "GET", "GET"]


async def test_an_app_on_the_http_backend_works_end_to_end(service: str) -> None:
    from fastapi import FastAPI

    backend = HTTPBackend.from_url(service, token=SERVICE_TOKEN)
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=backend,
        concurrency="lock",
    )
    app = FastAPI()
    app.add_middleware(sessions.middleware)

    @app.post("/visit")
    async def visit(session: Annotated[AppSession, Depends(sessions.get_session)]) -> int:
        session.counter += 1
        return session.counter

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert [(await client.post("/visit")).json() for _ in range(3)] == [1, 2, 3]
    await backend.aclose()


async def test_a_lock_answer_without_held_is_malformed() -> None:
    with served_in_thread(misbehaving("no-fields", [])) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            with pytest.raises(BackendUnavailable, match="no 'held' boolean"):
                await backend.acquire_lock("k", "t", ttl=5, wait=0)
        finally:
            await backend.aclose()


def test_the_service_answers_503_when_its_own_store_is_down() -> None:
    from fastapi_session_deps import RedisBackend

    down = RedisBackend.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.3)
    with served_in_thread(create_app(down, token=SERVICE_TOKEN)) as url:
        response = httpx.get(
            url + "/v1/sessions/k", headers={"authorization": f"Bearer {SERVICE_TOKEN}"}
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_the_service_publishes_no_docs_even_to_its_clients(service: str) -> None:
    auth = {"authorization": f"Bearer {SERVICE_TOKEN}"}
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(service + path).status_code == 401
        assert httpx.get(service + path, headers=auth).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"50000000")],
        [(b"authorization", b"Bearer wrong"), (b"content-length", b"50000000")],
        [(b"transfer-encoding", b"chunked")],
    ],
)
async def test_the_token_is_checked_before_the_body_is_read(
    headers: list[tuple[bytes, bytes]],
) -> None:
    # A 50 MB body would cost the service half a second and 50 MB to read and parse.
    app = create_app(MemoryBackend(), token=SERVICE_TOKEN)
    reads: list[str] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        reads.append("body")
        return {"type": "http.request", "body": b"x" * 1_000_000, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {**http_scope("/v1/sessions/k", "PUT", headers), "path_params": {}}
    await app(scope, receive, send)
    assert sent[0]["status"] == 401
    assert reads == []  # not a byte of the body was read


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_larger_than_any_record_is_refused(service: str, chunked: bool) -> None:
    auth = {"authorization": f"Bearer {SERVICE_TOKEN}", "session-ttl": "60"}
    huge = b'{"fields": {"a": "' + b"A" * max_body_bytes(MAX_RECORD_BYTES) + b'"}}'

    async def chunks() -> Any:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    async with httpx.AsyncClient(base_url=service, headers=auth) as client:
        response = await client.put("/v1/sessions/k", content=chunks() if chunked else huge)
        assert response.status_code == 413
        assert (await client.get("/v1/sessions/k")).status_code == 404


async def test_a_record_too_large_for_the_limit_is_no_session_and_deleted() -> None:
    # A service holding a record larger than any the library writes (a lower limit on the
    # client, say): every read would fail for as long as it lives. It is no session instead.
    hits: list[str] = []
    oversized = b"{" + b" " * (max_body_bytes(MAX_RECORD_BYTES) + 10) + b"}"

    async def service(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        hits.append(scope["method"])
        status, body = (200, oversized) if scope["method"] == "GET" else (204, b"")
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    with served_in_thread(service) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        assert await backend.get("k") is None
        assert hits == ["GET", "DELETE"]
        await backend.aclose()


# -- a real service, paused with SIGSTOP ------------------------------------------------------


@pytest.fixture
def paused_service(redis_url: str) -> Iterator[Any]:
    """A session service of its own under uvicorn (on Redis), and a way to pause it."""
    import os
    import signal
    from contextlib import contextmanager

    from ..helpers import uvicorn_server

    env = {"SESSION_SERVICE_TOKEN": SERVICE_TOKEN, "SESSION_SERVICE_REDIS_URL": redis_url}
    with uvicorn_server(
        "fastapi_session_deps.service:from_env",
        env=env,
        factory=True,
        ready_path="/v1/sessions/none",
    ) as url:

        @contextmanager
        def paused() -> Iterator[None]:
            os.kill(url.pid, signal.SIGSTOP)
            try:
                yield
            finally:
                os.kill(url.pid, signal.SIGCONT)

        yield url, paused


async def test_a_paused_service_gives_503s_within_the_timeout_then_recovers(
    paused_service: Any,
) -> None:
    import time

    url, paused = paused_service
    backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN, timeout=0.3, retries=1)
    sessions = SessionManager(
        AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=backend
    )
    app = build_app(sessions)
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    assert (await call(app, "/read", headers=headers)).status == 200
    with paused():
        started = time.monotonic()
        assert (await call(app, "/read", headers=headers)).status == 503
        assert (await call(app, "/incr", "POST", headers=headers)).status == 503
        assert time.monotonic() - started < 3  # bounded by the timeouts: never a hang
    read = await call(app, "/read", headers=headers)
    assert read.status == 200
    assert b'"user_id":1' in read.body  # the session survived the pause
    await backend.aclose()


async def test_a_lock_asked_for_while_the_service_was_paused_is_not_left_behind(
    paused_service: Any,
) -> None:
    # The lock request reaches the service only after the client gave up; the client's
    # release, sent meanwhile, keeps it from taking the lock whichever is served first.
    url, paused = paused_service
    backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN, timeout=0.3, retries=0)
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=backend,
        concurrency="lock",
        lock_timeout=1.0,
    )
    app = build_app(sessions)
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    with paused():
        assert (await call(app, "/incr", "POST", headers=headers)).status == 503
    for _ in range(3):
        assert (await call(app, "/incr", "POST", headers=headers)).status == 200
    await backend.aclose()


# -- whatever the service answers, it is parsed or refused, never an exception of another kind --

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ANSWERS = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4).map(
        lambda fields: json.dumps({"fields": fields}).encode()
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content_type=st.sampled_from(["application/json", "text/plain", ""]), body=ANSWERS)
def test_any_service_answer_is_a_record_or_a_value_error(content_type: str, body: bytes) -> None:
    try:
        fields = record_fields(json_object(content_type, body))
    except ValueError:
        return
    assert all(isinstance(v, bytes) for v in fields.values())


LISTINGS = st.one_of(
    ANSWERS,
    st.lists(JSON, max_size=3).map(lambda sessions: json.dumps({"sessions": sessions}).encode()),
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "key": st.one_of(st.text(max_size=8), st.integers()),
                "ttl": st.one_of(
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text()
                ),
                "fields": st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=3),
            },
        ),
        max_size=3,
    ).map(lambda sessions: json.dumps({"sessions": sessions}).encode()),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content_type=st.sampled_from(["application/json", "text/plain"]), body=LISTINGS)
@example(content_type="application/json", body=b'{"sessions": [{"key": "k", "ttl": -1}]}')
@example(content_type="application/json", body=b'{"sessions": [{"key": "k", "ttl": 1e999}]}')
def test_any_listing_answer_is_records_or_a_value_error(content_type: str, body: bytes) -> None:
    try:
        records = listed_records(json_object(content_type, body))
    except ValueError:
        return
    for key, fields, left in records:
        assert isinstance(key, str)
        assert all(isinstance(v, bytes) for v in fields.values())
        assert 0 < left < float("inf")


async def test_a_service_whose_store_keeps_no_index_says_so() -> None:
    with served_in_thread(create_app(NoLocksBackend(), token=SERVICE_TOKEN)) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            for call_it in (
                lambda: backend.index_add("alice", "k", ttl=60),
                lambda: backend.index_remove("alice", ["k"]),
                lambda: backend.index_list("alice"),
            ):
                with pytest.raises(BackendError, match="keeps no index of users' sessions"):
                    await call_it()
            await backend.index_remove("alice", [])  # nothing to remove: no call
        finally:
            await backend.aclose()


async def test_a_listing_carries_only_the_librarys_fields() -> None:
    store = MemoryBackend()
    with served_in_thread(create_app(store, token=SERVICE_TOKEN)) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            await backend.index_add("alice", "k", ttl=60)
            await backend.set("k", {"\x00user": b'"alice"', "cart": b'["secret"]'}, ttl=60)
            ((key, fields, left),) = await backend.index_list("alice")
            with pytest.raises(BackendUnavailable, match="malformed"):
                await backend.index_remove("alice", ["not/a key"])
        finally:
            await backend.aclose()
    assert (key, fields) == ("k", {"\x00user": b'"alice"'})
    assert 0 < left <= 60


@pytest.mark.parametrize("kind", ["no-fields", "not-an-object", "not-json"])
async def test_a_garbage_listing_is_unavailable_never_a_500(kind: str) -> None:
    with served_in_thread(misbehaving(kind, [])) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            with pytest.raises(BackendUnavailable, match="malformed"):
                await backend.index_list("alice")
        finally:
            await backend.aclose()


async def test_a_501_without_a_json_body_still_names_the_operation() -> None:
    GARBAGE["plain-501"] = (501, "text/plain", b"no")
    try:
        with served_in_thread(misbehaving("plain-501", [])) as url:
            backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
            try:
                with pytest.raises(BackendError, match="cannot do index_add: not implemented"):
                    await backend.index_add("alice", "k", ttl=5)
            finally:
                await backend.aclose()
    finally:
        del GARBAGE["plain-501"]


async def test_stats_through_the_service_and_a_service_that_cannot_count() -> None:
    with served_in_thread(create_app(NoLocksBackend(), token=SERVICE_TOKEN)) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            assert await backend.stats() is None  # 501: its store cannot count
        finally:
            await backend.aclose()
    with served_in_thread(misbehaving("no-fields", [])) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            with pytest.raises(BackendUnavailable, match="malformed"):
                await backend.stats()
        finally:
            await backend.aclose()


@pytest.mark.parametrize("kind", ["not-json", "no-fields", "fields-not-text", "not-an-object"])
async def test_garbage_answers_to_the_index_calls_are_unavailable(kind: str) -> None:
    with served_in_thread(misbehaving(kind, [])) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            for call_it in (
                lambda: backend.index_keys("alice"),
                lambda: backend.index_page("alice"),
                lambda: backend.index_end("alice", ["k"]),
                lambda: backend.index_end_some("alice"),
            ):
                with pytest.raises(BackendUnavailable, match="malformed answer"):
                    await call_it()
        finally:
            await backend.aclose()


ENDINGS = st.one_of(
    ANSWERS,
    st.builds(
        lambda ended, after: json.dumps({"ended": ended, "after": after}).encode(),
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "key": st.one_of(st.text(max_size=8), st.integers()),
                    "fields": st.dictionaries(
                        st.text(max_size=8), st.text(max_size=12), max_size=3
                    ),
                },
            ),
            max_size=3,
        )
        | JSON,
        st.one_of(st.none(), st.text(max_size=8), st.integers()),
    ),
    st.lists(JSON, max_size=3).map(lambda keys: json.dumps({"keys": keys}).encode()),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content_type=st.sampled_from(["application/json", "text/plain"]), body=ENDINGS)
def test_any_answer_to_an_ending_or_a_page_of_keys_is_parsed_or_a_value_error(
    content_type: str, body: bytes
) -> None:
    try:
        document = json_object(content_type, body)
    except ValueError:
        return
    with contextlib.suppress(ValueError):
        for key, fields in ended_records(document):
            assert isinstance(key, str)
            assert all(isinstance(v, bytes) for v in fields.values())
    with contextlib.suppress(ValueError):
        assert all(isinstance(key, str) for key in string_list(document, "keys"))


async def test_an_older_service_that_does_not_say_what_a_deletion_found() -> None:
    # It answers 204 without Session-Deleted: the move then goes ahead, as it always did.
    with served_in_thread(misbehaving("deleted-unsaid", [])) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            assert await backend.delete("k") is None
        finally:
            await backend.aclose()


GARBAGE["deleted-unsaid"] = (204, "", b"")
GARBAGE["after-not-text"] = (200, "application/json", b'{"ended": [], "after": 5}')


async def test_an_ending_answer_whose_continuation_is_not_text_is_malformed() -> None:
    with served_in_thread(misbehaving("after-not-text", [])) as url:
        backend = HTTPBackend.from_url(url, token=SERVICE_TOKEN)
        try:
            with pytest.raises(BackendUnavailable, match="after is not text"):
                await backend.index_end_some("alice")
        finally:
            await backend.aclose()
