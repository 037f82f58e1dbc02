"""Hypothesis fuzzing of everything a client controls: the cookie header.

Whatever arrives, the answer is the one for "no session" (never a 500), and no input but the
victim's own token ever yields the victim's data.
"""

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastapi_session_deps import CookieFrontend, MemoryBackend, SessionManager, SessionMiddleware
from fastapi_session_deps.signing import TokenSigner, new_session_id

from .helpers import OLD_SECRET, SECRET, call, cookie_header
from .support import AppSession, build_app

pytestmark = pytest.mark.anyio

SESSIONS = SessionManager(
    AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=MemoryBackend()
)
APP = build_app(SESSIONS)
VICTIM_MARK = b"victim-secret-cart-item"
_victim: list[str] = []

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


async def victim_token() -> str:
    if not _victim:
        response = await call(APP, "/login", "POST")
        token = response.cookie()
        assert token
        headers = cookie_header(token)
        await call(APP, "/cart?item=" + VICTIM_MARK.decode(), "POST", headers=headers)
        _victim.append(token)
    return _victim[0]


async def assert_anonymous(headers: list[tuple[bytes, bytes]]) -> None:
    read = await call(APP, "/read", headers=headers)
    assert read.status == 200
    assert VICTIM_MARK not in read.body
    me = await call(APP, "/me", headers=headers)
    assert me.status == 401


@FUZZ
@given(value=st.binary(max_size=600))
@example(value=b"")
@example(value=b"\x00" * 100)
@example(value=b"a" * 100_000)
@example(value="ünïcødé-☃".encode())
@example(value=b'"quoted"')
@example(value=b"a.b.c")
async def test_random_cookie_bytes_are_no_session(value: bytes) -> None:
    await assert_anonymous(cookie_header(value.replace(b";", b"")))


@FUZZ
@given(header=st.binary(max_size=400))
@example(header=b"session=a; session=b; session")
@example(header=b";;;=;=")
@example(header=b"session=" + b"x" * 70_000)
async def test_random_cookie_headers_are_no_session(header: bytes) -> None:
    await assert_anonymous([(b"cookie", header)])


@FUZZ
@given(data=st.data())
async def test_truncations_and_extensions_of_a_valid_token_are_no_session(
    data: st.DataObject,
) -> None:
    token = (await victim_token()).encode()
    cut = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    tail = data.draw(st.binary(max_size=20))
    mutated = token[:cut] + tail
    if mutated == token:
        return
    await assert_anonymous(cookie_header(mutated.replace(b";", b"")))


@FUZZ
@given(bits=st.lists(st.integers(min_value=0), min_size=1, max_size=4, unique=True))
async def test_bit_flips_of_a_valid_token_are_no_session(bits: list[int]) -> None:
    token = bytearray((await victim_token()).encode())
    for bit in bits:
        position = bit % (len(token) * 8)
        token[position // 8] ^= 1 << (position % 8)
    if bytes(token) == (await victim_token()).encode() or b";" in token:
        return
    await assert_anonymous(cookie_header(bytes(token)))


@FUZZ
@given(issued_at=st.integers(min_value=-(2**40), max_value=2**64 - 1))
async def test_foreign_or_odd_tokens_are_no_session(issued_at: int) -> None:
    # Well-formed tokens with odd timestamps, signed by a key the app does not have, or by
    # the app's key for an id that is not in the store.
    foreign = TokenSigner(OLD_SECRET, namespace="session").sign(new_session_id(), issued_at)
    await assert_anonymous(cookie_header(foreign))
    unknown = TokenSigner(SECRET, namespace="session").sign(new_session_id(), issued_at)
    await assert_anonymous(cookie_header(unknown))


DICT_APP = Starlette(
    routes=[Route("/view", lambda request: JSONResponse(dict(request.session)))],
    middleware=[
        Middleware(
            SessionMiddleware,
            secret_key=SECRET,
            backend=SESSIONS.backend,  # the typed app's store, holding the victim's record
            https_only=False,
            autoload=True,
        )
    ],
)


@FUZZ
@given(value=st.binary(max_size=600), bits=st.lists(st.integers(min_value=0), max_size=3))
@example(value=b"", bits=[])
@example(value=b"x" * 50_000, bits=[])
async def test_the_dict_middleware_treats_any_cookie_as_no_session(
    value: bytes, bits: list[int]
) -> None:
    token = bytearray((await victim_token()).encode())
    for bit in bits:  # bit flips of the victim's token, or else random bytes
        position = bit % (len(token) * 8)
        token[position // 8] ^= 1 << (position % 8)
    raw = bytes(token) if bits else value
    if raw == (await victim_token()).encode():
        return
    response = await call(DICT_APP, "/view", headers=cookie_header(raw.replace(b";", b"")))
    assert response.status == 200
    assert response.body == b"{}"


async def test_the_victims_own_token_does_see_the_victims_data() -> None:
    # The properties above would pass vacuously if the victim's session did not work.
    read = await call(APP, "/read", headers=cookie_header(await victim_token()))
    assert VICTIM_MARK in read.body
    # ...and the dict middleware, on the same store, would see the same record.
    view = await call(DICT_APP, "/view", headers=cookie_header(await victim_token()))
    assert VICTIM_MARK in view.body


def test_fuzzing_runs_on_one_event_loop_per_example() -> None:
    # Guards the harness: the shared app must work from a fresh event loop too.
    anyio.run(lambda: call(APP, "/noop"))
