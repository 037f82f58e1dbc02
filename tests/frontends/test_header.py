"""`HeaderFrontend`: the signed id in a header, end to end and fuzzed."""

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastapi_session_deps import (
    ConfigurationError,
    HeaderFrontend,
    MemoryBackend,
    SessionManager,
)
from fastapi_session_deps.signing import TokenSigner

from ..helpers import OLD_SECRET, SECRET, call
from ..support import AppSession, ManagerFactory, PassTime, build_app

pytestmark = pytest.mark.anyio

HEADER = "X-Session-Token"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"header_name": "bad name"}, "not a valid header name"),
        ({"header_name": "Cookie"}, "a header HTTP itself uses"),
        ({"header_name": "set-cookie"}, "a header HTTP itself uses"),
    ],
)
def test_misconfiguration_fails_at_construction(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        HeaderFrontend(SECRET, **options)


def test_a_short_key_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        HeaderFrontend("short")


def test_repr_shows_the_header_not_the_key() -> None:
    assert repr(HeaderFrontend(SECRET)) == "HeaderFrontend(header_name='X-Session-Token')"


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_a_session_travels_in_the_header(
    make_manager: ManagerFactory, pass_time: PassTime
) -> None:
    app = build_app(make_manager(frontend=HeaderFrontend(SECRET)))
    async with client(app) as http:
        login = await http.post("/login", params={"user_id": 7})
        token = login.headers[HEADER]
        assert "set-cookie" not in login.headers
        assert login.headers["vary"] == HEADER
        headers = {HEADER: token}
        assert (await http.get("/me", headers=headers)).json()["user_id"] == 7
        incr = await http.post("/incr", headers=headers)
        assert incr.json() == {"counter": 1}
        assert HEADER not in incr.headers  # not renewed: not due yet
        await pass_time(200)  # more than a tenth of the idle timeout
        renewed = await http.get("/me", headers=headers)
        assert (
            TokenSigner(SECRET, namespace="x-session-token").verify(renewed.headers[HEADER])
            is not None
        )
        assert (await http.get("/me")).status_code == 401  # no header, no session
        logout = await http.post("/logout", headers=headers)
        assert logout.headers[HEADER] == ""  # drop your token
        assert (await http.get("/me", headers=headers)).status_code == 401


async def test_a_token_signed_with_an_old_key_is_accepted_and_re_signed(
    make_manager: ManagerFactory,
) -> None:
    before = build_app(make_manager(frontend=HeaderFrontend(OLD_SECRET)))
    async with client(before) as http:
        old = (await http.post("/login", params={"user_id": 3})).headers[HEADER]
    after = build_app(make_manager(frontend=HeaderFrontend([SECRET, OLD_SECRET])))
    async with client(after) as http:
        response = await http.get("/me", headers={HEADER: old})
        assert response.json()["user_id"] == 3
        assert (
            TokenSigner(SECRET, namespace="x-session-token").verify(response.headers[HEADER])
            is not None
        )


SESSIONS = SessionManager(AppSession, frontend=HeaderFrontend(SECRET), backend=MemoryBackend())
APP = FastAPI()
APP.add_middleware(SESSIONS.middleware)


@APP.post("/login")
async def fuzz_login(session: Annotated[AppSession, Depends(SESSIONS.get_session)]) -> None:
    session.cart.append("victim-secret")


@APP.get("/read")
async def fuzz_read(session: Annotated[AppSession, Depends(SESSIONS.get_session)]) -> list[str]:
    return session.cart


_victim: list[str] = []


async def victim() -> str:
    if not _victim:
        _victim.append((await call(APP, "/login", "POST")).header(HEADER) or "")
    return _victim[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.binary(max_size=400), bits=st.lists(st.integers(min_value=0), max_size=3))
@example(value=b"", bits=[])
@example(value=b" " * 10, bits=[])
@example(value=b"x" * 50_000, bits=[])
async def test_any_header_value_is_no_session_unless_it_is_the_token(
    value: bytes, bits: list[int]
) -> None:
    token = bytearray((await victim()).encode())
    for bit in bits:
        position = bit % (len(token) * 8)
        token[position // 8] ^= 1 << (position % 8)
    raw = bytes(token) if bits else value
    if raw.strip() == (await victim()).encode():
        return
    response = await call(APP, "/read", headers=[(HEADER.lower().encode(), raw)])
    assert response.status == 200
    assert response.body == b"[]"


async def test_the_victims_token_does_open_the_victims_session() -> None:
    response = await call(
        APP, "/read", headers=[(HEADER.lower().encode(), (await victim()).encode())]
    )
    assert response.body == b'["victim-secret"]'
