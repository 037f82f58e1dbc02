"""`CookieFrontend`: the signed session id in a cookie."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Literal

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import Scope

from .._time import to_seconds
from ..exceptions import ConfigurationError
from ..signing import SecretKeys
from .base import Frontend, SessionScheme

__all__ = ["CookieFrontend", "Secure"]

#: ``True``, ``False``, or ``"auto"``: Secure whenever the request came over HTTPS.
Secure = bool | Literal["auto"]

# RFC 6265 cookie-name: an RFC 7230 token.
_COOKIE_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_ATTRIBUTE_RE = re.compile(r"[;,\s\x00-\x1f\x7f]")
_EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"
_TOKEN_MARK = "TOKEN-MARK"  # noqa: S105 - a placeholder, not a secret
_AGE_MARK = "987654321"


class CookieFrontend(Frontend):
    """Carries the signed session id in a cookie.

    The defaults are the secure ones: ``HttpOnly``, ``Secure``, ``SameSite=Lax``,
    ``Path=/``. Browsers accept ``Secure`` cookies on ``http://localhost``; for plain-HTTP
    development on another host pass ``secure=False``.

    Args:
        secret_key: the signing key, or a list of keys for rotation (the first signs, all
            verify); at least 32 bytes each. ``None`` reads ``SESSION_SECRET_KEY``.
        cookie_name: the cookie's name. By default ``"__Host-session"`` whenever that prefix
            is valid (``secure=True``, ``path="/"``, no ``domain``), else ``"session"``. A
            ``__Host-`` cookie is pinned to this exact host: no sibling subdomain can set
            one, which is the defence against cookie tossing. A ``__Secure-`` prefix
            requires ``secure``.
        max_age: an upper bound, in seconds or as a timedelta, on how long the browser keeps
            the cookie. The cookie never outlives the server-side session: its Max-Age is
            the time the session has left, or ``max_age`` if that is shorter.
        path: the cookie's ``Path``.
        domain: the cookie's ``Domain``; ``None`` (the default) keeps it to this host.
        secure: send the cookie over HTTPS only. ``"auto"`` marks it ``Secure`` whenever
            the request arrived over HTTPS (the ASGI scope's scheme, which uvicorn's
            ``--proxy-headers`` sets from a trusted proxy's ``X-Forwarded-Proto``), so
            that it also works on plain-HTTP development servers. ``False`` is an insecure
            opt-in.
        httponly: hide the cookie from JavaScript. ``False`` is an insecure opt-in.
        samesite: ``"lax"``, ``"strict"`` or ``"none"`` (which requires ``secure``).
        partitioned: add ``Partitioned`` (CHIPS: a cookie kept per top-level site, for apps
            embedded in other sites' frames); requires ``secure``.
        persistent: ``False`` sends no Max-Age, so the browser drops the cookie when it
            closes; the server-side timeouts apply either way. A session given a lifetime
            of its own (`SessionManager.set_lifetime`) says for itself.
        namespace: bound into every token's signature, so that another app sharing the
            secret key accepts none of this one's tokens. Defaults to the cookie's name
            without a ``__Host-`` or ``__Secure-`` prefix; give apps that share a key and a
            cookie name namespaces of their own.

    Raises:
        ConfigurationError: a missing or short key, or an invalid or insecure combination.
    """

    vary = "Cookie"
    credential_header = b"cookie"

    def __init__(
        self,
        secret_key: SecretKeys | None = None,
        *,
        cookie_name: str | None = None,
        max_age: float | timedelta | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: Secure = True,
        httponly: bool = True,
        samesite: Literal["lax", "strict", "none"] = "lax",
        partitioned: bool = False,
        persistent: bool = True,
        namespace: str | None = None,
    ) -> None:
        if cookie_name is None:
            host_only = secure is True and domain is None and path == "/"
            cookie_name = "__Host-session" if host_only else "session"
        samesite_value = _checked(cookie_name, path, domain, secure, samesite, partitioned)
        super().__init__(
            secret_key, namespace=_unprefixed(cookie_name) if namespace is None else namespace
        )
        self.cookie_name = cookie_name
        self.security_scheme = SessionScheme("cookie", cookie_name, "SessionCookie")
        self._name_bytes = cookie_name.encode("ascii")
        self.max_age = None if max_age is None else to_seconds(max_age, "max_age")
        self.path = path
        self.domain = domain
        self.secure: Secure = secure
        self.httponly = httponly
        self.samesite = samesite_value
        self.partitioned = partitioned
        self.persistent = persistent
        #: Set-Cookie templates by (secure, with Max-Age): before the token, before
        #: Max-Age, after.
        self._templates: dict[tuple[bool, bool], tuple[str, str, str]] = {}

    def __repr__(self) -> str:
        return (
            f"CookieFrontend(cookie_name={self.cookie_name!r}, path={self.path!r}, "
            f"domain={self.domain!r}, secure={self.secure!r}, httponly={self.httponly!r}, "
            f"samesite={self.samesite!r}, partitioned={self.partitioned!r}, "
            f"persistent={self.persistent!r})"
        )

    def read_tokens(self, connection: HTTPConnection) -> Iterator[str]:
        # Only our cookie is looked for, in the raw headers, rather than every cookie parsed;
        # every value of its name (a sibling subdomain may have tossed in another), since
        # the base keeps the one that verifies.
        for name, value in connection.scope["headers"]:
            if name == b"cookie" and self._name_bytes in value:
                for part in value.split(b";"):
                    key, sep, raw = part.partition(b"=")
                    if sep and key.strip() == self._name_bytes:
                        token = raw.strip()
                        if token:
                            yield token.decode("latin-1")

    def send_token(
        self,
        headers: MutableHeaders,
        token: str,
        *,
        max_age: int,
        scope: Scope,
        persistent: bool | None = None,
    ) -> None:
        if self.max_age is not None:
            max_age = min(max_age, int(self.max_age))
        keep = self.persistent if persistent is None else persistent
        cookie = self._set_header(token, max_age if keep else None, self._secure_for(scope))
        headers.raw.append((b"set-cookie", cookie.encode("latin-1")))

    def token_headers(self, token: str) -> dict[str, str]:
        return {"cookie": f"{self.cookie_name}={token}"}

    def clear_token(self, headers: MutableHeaders, *, scope: Scope) -> None:
        headers.append("set-cookie", self._clear_header(self._secure_for(scope)))

    def _secure_for(self, scope: Scope) -> bool:
        if self.secure == "auto":
            return scope.get("scheme") in ("https", "wss")
        return self.secure

    def _set_header(self, token: str, max_age: int | None, secure: bool) -> str:
        """The ``Set-Cookie`` value that stores ``token``.

        The attributes are built by `http.cookies` once per ``secure`` value, around marks
        for the token and Max-Age; a request only fills those in. (A token is URL-safe
        base64 and dots, which a cookie carries unquoted.)
        """
        key = (secure, max_age is not None)
        template = self._templates.get(key)
        if template is None:
            built = self._morsel(_TOKEN_MARK, secure, max_age=_AGE_MARK if key[1] else None)
            head, _, tail = built.partition(_TOKEN_MARK)
            middle, _, end = tail.partition(_AGE_MARK)
            template = self._templates[key] = (head, middle, end)
        head, middle, end = template
        return f"{head}{token}{middle}{'' if max_age is None else max_age}{end}"

    def _clear_header(self, secure: bool) -> str:
        """The ``Set-Cookie`` value that makes the browser drop the cookie."""
        return self._morsel("", secure, max_age="0", expires=_EXPIRED)

    def _morsel(
        self, value: str, secure: bool, *, max_age: str | None, expires: str | None = None
    ) -> str:
        jar: SimpleCookie = SimpleCookie()
        jar[self.cookie_name] = value
        morsel = jar[self.cookie_name]
        morsel["path"] = self.path
        if max_age is not None:
            morsel["max-age"] = max_age
        if expires is not None:
            morsel["expires"] = expires
        if self.domain is not None:
            morsel["domain"] = self.domain
        morsel["secure"] = secure
        morsel["httponly"] = self.httponly
        morsel["samesite"] = self.samesite.capitalize()
        header = morsel.OutputString()
        # http.cookies learns "partitioned" only in Python 3.14.
        return header + "; Partitioned" if self.partitioned else header


def _unprefixed(cookie_name: str) -> str:
    """The cookie's name without the prefix browsers enforce (``__Host-``, ``__Secure-``)."""
    for prefix in ("__Host-", "__Secure-"):
        if cookie_name.startswith(prefix):
            return cookie_name[len(prefix) :]
    return cookie_name


def _checked(
    cookie_name: str,
    path: str,
    domain: str | None,
    secure: Secure,
    samesite: str,
    partitioned: bool,
) -> str:
    """Refuse cookie attributes that are invalid, or that browsers would drop; return the
    ``SameSite`` value, lower-case."""
    if secure not in (True, False, "auto"):
        raise ConfigurationError(f"secure={secure!r}: use True (the default), 'auto' or False.")
    if not isinstance(cookie_name, str) or _COOKIE_NAME_RE.fullmatch(cookie_name) is None:
        raise ConfigurationError(
            f"cookie_name={cookie_name!r} is not a valid cookie name: use letters, digits "
            "and -_. only."
        )
    samesite_value = str(samesite).lower()
    if samesite_value not in ("lax", "strict", "none"):
        raise ConfigurationError(
            f"samesite={samesite!r}: use 'lax' (the default), 'strict' or 'none'."
        )
    if samesite_value == "none" and secure is False:
        raise ConfigurationError(
            "samesite='none' requires secure=True: browsers reject a SameSite=None cookie "
            "that is not Secure. Keep secure=True, or use samesite='lax'."
        )
    if partitioned and secure is False:
        raise ConfigurationError(
            "partitioned=True requires secure=True: browsers only accept Partitioned "
            "cookies that are Secure."
        )
    if not path.startswith("/") or _UNSAFE_ATTRIBUTE_RE.search(path):
        raise ConfigurationError(f"path={path!r} must start with '/' and hold no ';' or spaces.")
    if domain is not None and (not domain or _UNSAFE_ATTRIBUTE_RE.search(domain)):
        raise ConfigurationError(f"domain={domain!r} is not a valid cookie domain.")
    if cookie_name.startswith("__Host-") and (
        secure is False or domain is not None or path != "/"
    ):
        raise ConfigurationError(
            f"A {cookie_name!r} cookie must be Secure, have Path=/ and no Domain, or "
            "browsers drop it: pass secure=True, path='/' and domain=None, or drop the "
            "'__Host-' prefix."
        )
    if cookie_name.startswith("__Secure-") and secure is False:
        raise ConfigurationError(
            f"A {cookie_name!r} cookie must be Secure: pass secure=True, or drop the "
            "'__Secure-' prefix."
        )
    return samesite_value
