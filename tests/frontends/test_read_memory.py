"""A frontend reads a header value once: the token it carried is remembered, bounded by bytes."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection

from fastapi_session_deps import CookieFrontend, HeaderFrontend
from fastapi_session_deps.frontends import base
from fastapi_session_deps.signing import new_session_id

from ..helpers import SECRET, http_scope


class CountingCookies(CookieFrontend):
    """A cookie frontend that counts how often it parses a request's cookies."""

    parsed = 0

    def read_tokens(self, connection: HTTPConnection) -> Iterable[str]:
        self.parsed += 1
        return list(super().read_tokens(connection))


class CountingHeader(HeaderFrontend):
    parsed = 0

    def read_tokens(self, connection: HTTPConnection) -> Iterable[str]:
        self.parsed += 1
        return list(super().read_tokens(connection))


def token_of(frontend: CookieFrontend | HeaderFrontend, issued_at: int = 100) -> str:
    headers = MutableHeaders()
    frontend.write(headers, new_session_id(), issued_at=issued_at, max_age=60, scope=http_scope())
    if isinstance(frontend, HeaderFrontend):
        return headers[frontend.header_name]
    return headers["set-cookie"].split(";")[0].split("=", 1)[1]


def reading(*headers: tuple[bytes, bytes]) -> HTTPConnection:
    return HTTPConnection(http_scope(headers=list(headers)))


def test_a_cookie_header_with_a_valid_token_is_parsed_once() -> None:
    frontend = CountingCookies(SECRET)
    cookie = f"theme=dark; {frontend.cookie_name}={token_of(frontend)}".encode()
    first = frontend.read(reading((b"cookie", cookie)))
    assert first is not None
    assert [frontend.read(reading((b"cookie", cookie))) for _ in range(5)] == [first] * 5
    assert frontend.parsed == 1
    # Another value (another cookie beside it) is another entry, with the same token.
    assert frontend.read(reading((b"cookie", cookie + b"; lang=fr"))) == first
    assert frontend.parsed == 2


def test_values_without_a_valid_token_are_never_remembered() -> None:
    frontend = CountingCookies(SECRET)
    forged = token_of(frontend)[:-2] + "AA"
    name = frontend.cookie_name.encode()
    for value in (name + b"=" + forged.encode(), b"theme=dark", name + b"="):
        for _ in range(3):
            assert frontend.read(reading((b"cookie", value))) is None
    assert frontend.parsed == 9
    assert frontend._read_cache == {}


def test_two_cookie_headers_are_read_afresh_and_the_newer_token_wins() -> None:
    frontend = CountingCookies(SECRET)
    old, new = token_of(frontend, issued_at=100), token_of(frontend, issued_at=200)
    name = frontend.cookie_name
    headers = ((b"cookie", f"{name}={old}".encode()), (b"cookie", f"{name}={new}".encode()))
    for _ in range(3):
        verified = frontend.read(reading(*headers))
        assert verified is not None
        assert verified.issued_at == 200
    assert frontend.parsed == 3


def test_the_memory_is_bounded_by_bytes_and_forgets_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base, "READ_CACHE_BYTES", 1000)
    frontend = CountingCookies(SECRET)
    name = frontend.cookie_name
    values = [f"{name}={token_of(frontend)}; pad={'x' * 100}".encode() for _ in range(20)]
    for value in values:
        assert frontend.read(reading((b"cookie", value))) is not None
    assert frontend._read_cache_bytes <= 1000
    assert sum(map(len, frontend._read_cache)) == frontend._read_cache_bytes
    parsed = frontend.parsed
    assert frontend.read(reading((b"cookie", values[-1]))) is not None  # the newest: kept
    assert frontend.parsed == parsed
    assert frontend.read(reading((b"cookie", values[0]))) is not None  # the oldest: forgotten
    assert frontend.parsed == parsed + 1


def test_a_header_frontend_remembers_its_own_header() -> None:
    frontend = CountingHeader(SECRET)
    token = token_of(frontend)
    name = frontend.header_name.lower().encode()
    first = frontend.read(reading((name, token.encode())))
    assert first is not None
    assert frontend.read(reading((name, token.encode()))) == first
    assert frontend.read(reading((b"cookie", f"__Host-session={token}".encode()))) is None
    assert frontend.parsed == 2
