"""`CookieFrontend`: construction checks and the cookies it writes."""

from __future__ import annotations

from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any

import pytest
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection

from fastapi_session_deps import ConfigurationError, CookieFrontend
from fastapi_session_deps.signing import new_session_id

from ..helpers import SECRET, http_scope


def set_cookie_of(
    frontend: CookieFrontend, *, clear: bool = False, scheme: str = "http", **kwargs: Any
) -> str:
    headers = MutableHeaders()
    scope = {**http_scope(), "scheme": scheme}
    if clear:
        frontend.clear(headers, scope=scope)
    else:
        frontend.write(
            headers,
            new_session_id(),
            issued_at=100,
            max_age=kwargs.get("max_age", 60),
            scope=scope,
        )
    values = headers.getlist("set-cookie")
    assert len(values) == 1
    return values[0]


def attributes(header: str) -> dict[str, str]:
    parts = [part.strip() for part in header.split(";")[1:]]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


def test_defaults_are_the_secure_ones() -> None:
    header = set_cookie_of(CookieFrontend(SECRET))
    assert header.startswith("__Host-session=")  # no sibling subdomain can set that one
    assert attributes(header) == {
        "httponly": "",
        "secure": "",
        "samesite": "Lax",
        "path": "/",
        "max-age": "60",
    }


def test_every_option_reaches_the_cookie() -> None:
    frontend = CookieFrontend(
        SECRET,
        cookie_name="sid",
        path="/app",
        domain="example.org",
        samesite="strict",
        httponly=False,
    )
    header = set_cookie_of(frontend)
    assert header.startswith("sid=")
    assert attributes(header) == {
        "secure": "",
        "samesite": "Strict",
        "path": "/app",
        "domain": "example.org",
        "max-age": "60",
    }


def test_max_age_only_shortens_the_cookie() -> None:
    frontend = CookieFrontend(SECRET, max_age=timedelta(seconds=30))
    assert attributes(set_cookie_of(frontend, max_age=60))["max-age"] == "30"
    assert attributes(set_cookie_of(frontend, max_age=10))["max-age"] == "10"


def test_clear_expires_the_cookie_with_the_same_scope() -> None:
    frontend = CookieFrontend(SECRET, path="/app", domain="example.org")
    header = set_cookie_of(frontend, clear=True)
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    assert jar["session"].value == ""
    assert attributes(header)["max-age"] == "0"
    assert attributes(header)["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert attributes(header)["path"] == "/app"
    assert attributes(header)["domain"] == "example.org"


def test_host_prefix_is_accepted_when_valid() -> None:
    header = set_cookie_of(CookieFrontend(SECRET, cookie_name="__Host-session"))
    assert header.startswith("__Host-session=")


def test_read_verifies_the_cookie_it_wrote() -> None:
    frontend = CookieFrontend(SECRET)
    headers = MutableHeaders()
    session_id = new_session_id()
    frontend.write(headers, session_id, issued_at=100, max_age=60, scope=http_scope())
    token = headers["set-cookie"].split(";")[0].split("=", 1)[1]
    cookie = f"{frontend.cookie_name}={token}".encode()
    verified = frontend.read(HTTPConnection(http_scope(headers=[(b"cookie", cookie)])))
    assert verified is not None
    assert verified.session_id == session_id
    other = HTTPConnection(http_scope(headers=[(b"cookie", f"other={token}".encode())]))
    assert frontend.read(other) is None


def test_repr_shows_settings_not_keys() -> None:
    text = repr(CookieFrontend(SECRET))
    assert "secure=True" in text
    assert SECRET[:10] not in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"samesite": "none", "secure": False}, "samesite='none' requires secure=True"),
        ({"samesite": "sometimes"}, "use 'lax'"),
        ({"partitioned": True, "secure": False}, "partitioned=True requires secure=True"),
        ({"cookie_name": "__Host-s", "domain": "example.org"}, "drop the '__Host-' prefix"),
        ({"cookie_name": "__Host-s", "path": "/app"}, "path='/'"),
        ({"cookie_name": "__Host-s", "secure": False}, "must be Secure"),
        ({"cookie_name": "__Secure-s", "secure": False}, "drop the '__Secure-' prefix"),
        ({"cookie_name": "bad name"}, "not a valid cookie name"),
        ({"cookie_name": "a;b"}, "not a valid cookie name"),
        ({"path": "app"}, "must start with '/'"),
        ({"path": "/a;b"}, "must start with '/'"),
        ({"domain": "a;b"}, "not a valid cookie domain"),
        ({"max_age": 0}, "max_age must be positive"),
        ({"max_age": "1"}, "max_age must be a number"),
        ({"secure": "sometimes"}, "use True"),
    ],
)
def test_misconfiguration_fails_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CookieFrontend(SECRET, **options)


def test_a_short_key_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        CookieFrontend("too-short")


def test_partitioned_and_browser_session_cookies() -> None:
    header = set_cookie_of(CookieFrontend(SECRET, partitioned=True, persistent=False))
    assert header.endswith("; Partitioned")
    assert "max-age" not in attributes(header)


@pytest.mark.parametrize(
    ("scheme", "secure"), [("https", True), ("http", False), ("wss", True), ("ws", False)]
)
def test_secure_auto_follows_the_request_scheme(scheme: str, secure: bool) -> None:
    frontend = CookieFrontend(SECRET, secure="auto")
    assert ("secure" in attributes(set_cookie_of(frontend, scheme=scheme))) is secure
    assert ("secure" in attributes(set_cookie_of(frontend, clear=True, scheme=scheme))) is secure


@pytest.mark.parametrize("secure", [True, False])
def test_explicit_secure_ignores_the_scheme(secure: bool) -> None:
    frontend = CookieFrontend(SECRET, secure=secure)
    for scheme in ("http", "https"):
        assert ("secure" in attributes(set_cookie_of(frontend, scheme=scheme))) is secure


def test_secure_auto_allows_what_only_secure_cookies_may_do() -> None:
    # Over HTTPS these cookies are Secure, as browsers require; over plain HTTP a browser
    # would refuse them whatever this library did.
    for options in (
        {"samesite": "none"},
        {"partitioned": True},
        {"cookie_name": "__Host-session"},
        {"cookie_name": "__Secure-session"},
    ):
        header = set_cookie_of(CookieFrontend(SECRET, secure="auto", **options), scheme="https")
        assert "secure" in attributes(header)
