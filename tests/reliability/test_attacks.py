"""The attacks a session library must hold against, replayed as assertions.

Part of the reliability suite (``-m reliability``): separate from the fast tests, run by the
test command. Each attack runs against real stores: memory, Redis, Redis Cluster, the
session service over HTTP (on Redis) and a FunctionBackend over a REST store.
"""

import random
import string
from collections.abc import AsyncIterator
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    HeaderFrontend,
    RedisBackend,
    SessionManager,
)
from fastapi_session_deps.signing import TokenSigner, new_session_id, store_key

from ..helpers import OLD_SECRET, SECRET, Clock, call, cookie_header
from ..support import STORES, AppSession, build_app, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

ATTACKED = [*STORES, "http-redis", "function"]
SIGNER = TokenSigner(SECRET, namespace="session")


@pytest.fixture(params=ATTACKED)
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Backend]:
    async with open_store(request.param, request, clock) as opened:
        yield opened


def app_on(store: Backend, clock: Clock, **options: object) -> FastAPI:
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=store,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )
    app = build_app(sessions)

    @app.post("/big")
    async def big(
        session: Annotated[AppSession, Depends(sessions.get_session)], size: int
    ) -> dict[str, bool]:
        session.prefs["blob"] = "x" * size
        return {"ok": True}

    return app


def id_of(token: str | None) -> str:
    verified = SIGNER.verify(token or "")
    assert verified is not None
    return verified.session_id


# -- fixation ----------------------------------------------------------------------------------


async def test_planted_ids_are_never_adopted(store: Backend, clock: Clock) -> None:
    app = app_on(store, clock)
    planted_ids = [new_session_id() for _ in range(3)]
    planted = {
        "an unsigned id": planted_ids[0],
        "an id signed with another key": TokenSigner(OLD_SECRET, namespace="session").sign(
            planted_ids[1], int(clock())
        ),
        "a valid token of an id the store never had": SIGNER.sign(planted_ids[2], int(clock())),
    }
    for what, cookie in planted.items():
        response = await call(app, "/incr", "POST", headers=cookie_header(cookie))
        assert response.status == 200, what
        issued = id_of(response.cookie())
        assert issued not in planted_ids, what
        assert await store.get(store_key(issued)) is not None
    for session_id in planted_ids:
        assert await store.get(store_key(session_id)) is None


async def test_an_attackers_own_session_planted_in_a_browser_is_left_at_log_in(
    store: Backend, clock: Clock
) -> None:
    app = app_on(store, clock)
    attackers = (await call(app, "/incr", "POST")).cookie()  # a real, stored session
    login = await call(app, "/login?user_id=1", "POST", headers=cookie_header(attackers or ""))
    assert id_of(login.cookie()) != id_of(attackers)
    assert (await call(app, "/me", headers=cookie_header(attackers or ""))).status == 401


async def test_tossed_duplicate_cookies_never_win_over_the_victims(
    store: Backend, clock: Clock
) -> None:
    app = app_on(store, clock)
    attackers = (await call(app, "/login?user_id=666", "POST")).cookie()
    clock.advance(2)
    victims = (await call(app, "/login?user_id=1", "POST")).cookie()
    # What a sibling subdomain can toss: its own session's token (issued before the
    # victim's log-in), garbage, an id, a token signed by another app's key. Only the key's
    # holder could stamp one later than the victim's own.
    foreign = TokenSigner(OLD_SECRET, namespace="session").sign(new_session_id(), int(clock()))
    for tossed in (attackers, "garbage", new_session_id(), foreign):
        for order in ((tossed, victims), (victims, tossed)):
            header = "; ".join(f"session={value}" for value in order)
            me = await call(app, "/me", headers=[(b"cookie", header.encode())])
            assert me.status == 200
            assert b'"user_id":1' in me.body, header


# -- replay in another app -----------------------------------------------------------------------


async def test_a_token_is_refused_by_every_other_app_sharing_the_secret_and_store(
    store: Backend, clock: Clock
) -> None:
    user_app = app_on(store, clock)
    token = (await call(user_app, "/login?user_id=1", "POST")).cookie() or ""
    for frontend in (
        CookieFrontend(SECRET, secure=False, cookie_name="admin_session"),
        CookieFrontend([OLD_SECRET, SECRET], secure=False, cookie_name="sid"),
        HeaderFrontend(SECRET),
    ):
        other = build_app(
            SessionManager(AppSession, frontend=frontend, backend=store, clock=clock)
        )
        replayed = [
            cookie_header(token, "admin_session"),
            cookie_header(token, "sid"),
            [(b"x-session-token", token.encode())],
        ]
        for headers in replayed:
            assert (await call(other, "/me", headers=headers)).status == 401


# -- tampering and noise ------------------------------------------------------------------------

TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_."


async def test_every_single_character_substitution_of_a_token_is_refused(clock: Clock) -> None:
    async with open_store("memory", None, clock) as memory:  # type: ignore[arg-type]
        app = app_on(memory, clock)
        token = (await call(app, "/login?user_id=1", "POST")).cookie() or ""
        assert (await call(app, "/me", headers=cookie_header(token))).status == 200
        tried = 0
        for position, original in enumerate(token):
            for replacement in TOKEN_ALPHABET:
                if replacement == original:
                    continue
                forged = token[:position] + replacement + token[position + 1 :]
                response = await call(app, "/me", headers=cookie_header(forged))
                assert response.status == 401, forged
                tried += 1
        assert tried == len(token) * (len(TOKEN_ALPHABET) - 1)  # over 6,000 forgeries


async def test_ten_thousand_random_cookies_and_headers_never_give_a_5xx(clock: Clock) -> None:
    noise = random.Random(20261129)  # reproducible
    async with open_store("memory", None, clock) as memory:  # type: ignore[arg-type]
        cookie_app = app_on(memory, clock)
        header_app = build_app(
            SessionManager(
                AppSession, frontend=HeaderFrontend(SECRET), backend=memory, clock=clock
            )
        )
        token = (await call(cookie_app, "/login", "POST")).cookie() or ""

        def value() -> bytes:
            kind = noise.randrange(5)
            if kind == 0:
                return noise.randbytes(noise.randrange(0, 300))
            if kind == 1:  # a near-token
                cut = noise.randrange(len(token))
                return (token[:cut] + noise.choice(TOKEN_ALPHABET) + token[cut + 1 :]).encode()
            if kind == 2:
                return "".join(noise.choice(TOKEN_ALPHABET + ';= ,"') for _ in range(95)).encode()
            if kind == 3:
                return token.encode() * noise.randrange(2, 40)
            return "".join(chr(noise.randrange(32, 0x2FFF)) for _ in range(40)).encode(
                "utf-8", "surrogatepass"
            )

        statuses: list[int] = []
        for index in range(10_000):
            raw = value()
            if index % 2:
                headers = [(b"cookie", b"session=" + raw + b"; other=1")]
                app = cookie_app
            else:
                headers = [(b"x-session-token", raw)]
                app = header_app
            path, method = noise.choice([("/me", "GET"), ("/incr", "POST"), ("/read", "GET")])
            statuses.append((await call(app, path, method, headers=headers)).status)
        assert len(statuses) == 10_000
        assert [s for s in statuses if s >= 500] == []


# -- damaged records --------------------------------------------------------------------------


async def test_garbage_huge_and_many_field_records_are_no_session_never_an_error(
    store: Backend, clock: Clock
) -> None:
    app = app_on(store, clock)
    noise = random.Random(7)
    damaged = {
        "garbage values": lambda r: {name: noise.randbytes(20).hex().encode() for name in r},
        "no creation time": lambda r: {k: v for k, v in r.items() if not k.startswith("\x00")},
        "a creation time that is not a number": lambda r: {**r, "\x00created": b'"soon"'},
        "huge": lambda r: {**r, "cart": b'["' + b"x" * 200_000 + b'"]'},
        "many fields": lambda r: {**r, **{f"extra{i}": b"1" for i in range(12_000)}},
    }
    for what, damage in damaged.items():
        login = await call(app, "/login?user_id=1", "POST")
        key = store_key(id_of(login.cookie()))
        record = await store.get(key)
        assert record is not None
        await store.set(key, damage(record), ttl=600)
        headers = cookie_header(login.cookie() or "")
        for path, method in (("/me", "GET"), ("/read", "GET"), ("/incr", "POST")):
            response = await call(app, path, method, headers=headers)
            assert response.status < 500, (what, path, response.status)
        assert (await call(app, "/login", "POST", headers=headers)).status == 200, what


async def test_keys_of_the_wrong_type_are_no_session_never_503(
    store: Backend, clock: Clock
) -> None:
    target = getattr(store, "served", store)
    if not isinstance(target, RedisBackend):
        pytest.skip("only Redis keys have types")
    app = app_on(store, clock)
    client = target.client
    writers = {
        "string": lambda name: client.set(name, "x"),
        "list": lambda name: client.rpush(name, "x"),
        "set": lambda name: client.sadd(name, "x"),
        "sorted set": lambda name: client.zadd(name, {"x": 1}),
        "stream": lambda name: client.xadd(name, {"x": "1"}),
    }
    for make, write in writers.items():
        login = await call(app, "/login?user_id=1", "POST")
        name = target.redis_key(store_key(id_of(login.cookie())))
        await client.delete(name)
        await write(name)
        headers = cookie_header(login.cookie() or "")
        assert (await call(app, "/me", headers=headers)).status == 401, make
        assert (await call(app, "/incr", "POST", headers=headers)).status == 200, make


# -- oversized sessions -----------------------------------------------------------------------


async def test_an_oversized_session_is_refused_on_every_store_and_stores_nothing(
    store: Backend, clock: Clock
) -> None:
    app = app_on(store, clock)
    login = await call(app, "/login?user_id=1", "POST")
    headers = cookie_header(login.cookie() or "")
    key = store_key(id_of(login.cookie()))
    before = await store.get(key)
    for size in (70_000, 10_000_000):
        refused = await call(app, f"/big?size={size}", "POST", headers=headers)
        assert refused.status == 500
        assert await store.get(key) == before  # nothing stored
        anonymous = await call(app, f"/big?size={size}", "POST")
        assert anonymous.status == 500
        assert anonymous.cookie() is None
    assert (await call(app, "/me", headers=headers)).status == 200  # never locked out
    assert (await call(app, "/big?size=1000", "POST", headers=headers)).status == 200
