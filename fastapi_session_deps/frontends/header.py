"""`HeaderFrontend`: the signed session id in a request header, for API clients."""

from __future__ import annotations

import re
from collections.abc import Iterator

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import Scope

from ..exceptions import ConfigurationError
from ..signing import SecretKeys
from .base import Frontend, SessionScheme

__all__ = ["HeaderFrontend"]

# RFC 9110 field-name: a token.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_RESERVED = {"cookie", "set-cookie", "host", "content-length", "content-type", "vary"}


class HeaderFrontend(Frontend):
    """Carries the signed session id in a header, for API clients and mobile apps.

    The client sends the token in ``header_name``. Responses that create a session, move it
    to a new id, or renew it carry the new token in the same header. A response that ends
    the session carries the header with an empty value: the client should drop its token.
    Browsers' JavaScript only sees that response header across origins if CORS exposes it
    (``expose_headers=["X-Session-Token"]``).

    Unlike a cookie, a header is never sent by the browser on its own, so this frontend is
    not exposed to cross-site request forgery; the client must keep the token safe
    instead.

    Args:
        secret_key: the signing key, or a list of keys for rotation (the first signs, all
            verify); at least 32 bytes each. ``None`` reads ``SESSION_SECRET_KEY``.
        header_name: the header that carries the token.
        namespace: bound into every token's signature, so that another app sharing the
            secret key accepts none of this one's tokens. Defaults to the header's name, in
            lower case.

    Raises:
        ConfigurationError: a missing or short key, or an unusable header name.
    """

    def __init__(
        self,
        secret_key: SecretKeys | None = None,
        *,
        header_name: str = "X-Session-Token",
        namespace: str | None = None,
    ) -> None:
        if not isinstance(header_name, str) or _HEADER_NAME_RE.fullmatch(header_name) is None:
            raise ConfigurationError(f"header_name={header_name!r} is not a valid header name.")
        if header_name.lower() in _RESERVED:
            raise ConfigurationError(
                f"header_name={header_name!r} is a header HTTP itself uses; pick a name of "
                "your own, such as the default 'X-Session-Token'."
            )
        super().__init__(
            secret_key, namespace=header_name.lower() if namespace is None else namespace
        )
        self.header_name = header_name
        self.vary = header_name
        self.security_scheme = SessionScheme("header", header_name, "SessionHeader")
        self._name_bytes = header_name.lower().encode("ascii")
        self.credential_header = self._name_bytes

    def __repr__(self) -> str:
        return f"HeaderFrontend(header_name={self.header_name!r})"

    def read_tokens(self, connection: HTTPConnection) -> Iterator[str]:
        for name, value in connection.scope["headers"]:
            if name == self._name_bytes:
                token = value.strip()
                if token:
                    yield token.decode("latin-1")

    def send_token(
        self, headers: MutableHeaders, token: str, *, max_age: int, scope: Scope
    ) -> None:
        headers[self.header_name] = token

    def token_headers(self, token: str) -> dict[str, str]:
        return {self.header_name: token}

    def clear_token(self, headers: MutableHeaders, *, scope: Scope) -> None:
        headers[self.header_name] = ""
