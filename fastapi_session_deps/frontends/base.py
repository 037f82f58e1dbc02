"""The `Frontend` base: how the signed session id travels between client and server.

Frontends are synchronous and do no I/O. The base class signs and verifies; a concrete
frontend carries token strings: reads them from the request, and sends or clears one on the
response headers (fastapi-users calls the two halves "strategy" and "transport").
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Literal, final

from fastapi.openapi.models import APIKey, APIKeyIn
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import Scope

from ..signing import SecretKeys, TokenSigner, VerifiedToken

__all__ = ["Frontend", "SessionScheme"]

#: The most bytes of header values `Frontend.read` remembers with the token each carried.
READ_CACHE_BYTES = 1024 * 1024


#: Per frontend class: whether its `Frontend.send_token` takes ``persistent``.
_PER_TOKEN: dict[type, bool] = {}


def _keeps_per_token(frontend: Frontend) -> bool:
    """Whether ``frontend`` can keep one token past the client's session and another not
    (its ``send_token`` takes ``persistent``); a header, or a frontend of your own
    written before it could, sends every token alike."""
    cls = type(frontend)
    known = _PER_TOKEN.get(cls)
    if known is None:
        known = _PER_TOKEN[cls] = "persistent" in inspect.signature(frontend.send_token).parameters
    return known


class SessionScheme:
    """The OpenAPI security scheme of a frontend: where the session token travels.

    Every session dependency carries it (and is the scheme, to FastAPI), so
    ``/openapi.json`` lists it and marks the routes that use a session (Swagger UI's
    "Authorize" then sends the token).
    """

    def __init__(self, location: Literal["cookie", "header"], name: str, scheme_name: str) -> None:
        self.model = APIKey(
            **{"in": APIKeyIn(location)},  # type: ignore[arg-type]
            name=name,
            description=f"The signed session token, in the {name!r} {location}.",
        )
        self.scheme_name = scheme_name


class Frontend(ABC):
    """Base class of session-id transports: signing here, carrying in the subclass.

    This class signs session ids into tokens and verifies the tokens a request carries,
    with its own keys and namespace; a subclass only moves token *strings*: which ones a
    request carries (`read_tokens`), and how a response sends or clears one. So no frontend
    can forget to verify, and every frontend treats duplicates alike: a value that does not
    verify never shadows one that does, and of several that verify the one issued last
    wins.

    Args:
        secret_key: the signing key, or a list of keys for rotation (the first signs, all
            verify); at least 32 bytes each. ``None`` reads ``SESSION_SECRET_KEY``.
        namespace: bound into every token's signature, so that another app sharing the
            secret key accepts none of this one's tokens.

    Attributes:
        vary: the request header that a response depends on once it has read the session
            (added to the response's ``Vary`` header so that shared caches keep users apart).
        security_scheme: how the OpenAPI schema describes this transport, or ``None``.
        max_age: the longest, in seconds, that the client keeps a token after it was
            issued, or ``None`` for no limit of the transport's own. A session's sliding
            lifetime is the shorter of this and the idle timeout, and a token older than
            it is refused.
        persistent: whether a token outlives the client's session (a cookie with a
            ``Max-Age``, kept across browser restarts) unless the session says otherwise
            (`SessionManager.set_lifetime`).
    """

    vary: str
    security_scheme: SessionScheme | None = None
    max_age: float | None = None
    persistent: bool = True
    #: The request header (lower-case, as ASGI gives it) that carries every token this
    #: frontend reads, if there is one: a request with that header once is then verified
    #: once per distinct value (see `read`). ``None``: every request is read afresh.
    credential_header: bytes | None = None

    def __init__(self, secret_key: SecretKeys | None = None, *, namespace: str) -> None:
        self._signer = TokenSigner(secret_key, namespace=namespace)
        #: Header values that carried a valid token -> the token they carry, oldest first,
        #: bounded by the bytes of the values kept.
        self._read_cache: dict[bytes, VerifiedToken] = {}
        self._read_cache_bytes = 0

    @property
    def key_count(self) -> int:
        """How many keys verify this frontend's tokens (the first of them signs)."""
        return self._signer.key_count

    # -- the transport: strings in and out -------------------------------------------------

    @abstractmethod
    def read_tokens(self, connection: HTTPConnection) -> Iterable[str]:
        """Every token string the request carries for this frontend, in any order.

        Must never raise on client input; the strings are verified by the caller.
        """

    @abstractmethod
    def send_token(
        self, headers: MutableHeaders, token: str, *, max_age: int, scope: Scope
    ) -> None:
        """Add ``token`` to the response ``headers``.

        Args:
            headers: the response headers, at ``http.response.start``.
            token: the signed token to send.
            max_age: seconds the client may keep it; never more than the server-side
                session has left (zero or less: the session has already ended).
            scope: the request's ASGI scope (its scheme decides ``secure="auto"``).

        A frontend that can keep a token for the client's session only (a cookie without
        ``Max-Age``) also takes ``persistent: bool``, passed only for a session whose
        lifetime says otherwise than the frontend's `persistent`.
        """

    @abstractmethod
    def clear_token(self, headers: MutableHeaders, *, scope: Scope) -> None:
        """Tell the client to drop its token."""

    @abstractmethod
    def token_headers(self, token: str) -> dict[str, str]:
        """The request headers a client sends to present ``token``."""

    # -- signing and verification: here only -------------------------------------------------

    @final
    def read(self, connection: HTTPConnection) -> VerifiedToken | None:
        """The verified token the request carries, or ``None``: never raises on client input.

        The answer depends on nothing but the request's `credential_header` (the keys
        never change), so a value seen before with a valid token in it is answered from
        memory: a returning client's cookie is parsed and verified once, not per request.
        """
        value = self._credential_value(connection)
        if value is not None:
            known = self._read_cache.get(value)
            if known is not None:
                return known
        best: VerifiedToken | None = None
        for token in self.read_tokens(connection):
            verified = self._signer.verify(token)
            # The later one on a tie, as Starlette's cookie parser lets the last one win.
            if verified is not None and (best is None or verified.issued_at >= best.issued_at):
                best = verified
        if value is not None and best is not None:
            self._remember(value, best)
        return best

    def _credential_value(self, connection: HTTPConnection) -> bytes | None:
        """The value of the request's one `credential_header`; ``None`` if it has none,
        several, or the frontend names none."""
        name = self.credential_header
        if name is None:
            return None
        found: bytes | None = None
        for key, value in connection.scope["headers"]:
            if key == name:
                if found is not None:
                    return None  # more than one: read them all, every time
                found = value
        return found

    def _remember(self, value: bytes, verified: VerifiedToken) -> None:
        cache = self._read_cache
        cache[value] = verified
        self._read_cache_bytes += len(value)
        while self._read_cache_bytes > READ_CACHE_BYTES:
            oldest = next(iter(cache))
            del cache[oldest]
            self._read_cache_bytes -= len(oldest)

    @final
    def write(
        self,
        headers: MutableHeaders,
        session_id: str,
        *,
        issued_at: int,
        max_age: int,
        scope: Scope,
        lifetime: int | None = None,
        persistent: bool | None = None,
    ) -> None:
        """Sign ``session_id`` (stamped ``issued_at``, and with the session's own sliding
        ``lifetime`` if it has one) and send it; ``persistent`` says whether the client
        keeps it past its own session, if not as the frontend does by default."""
        token = self._signer.sign(session_id, issued_at, lifetime)
        if persistent is None or persistent == self.persistent or not _keeps_per_token(self):
            self.send_token(headers, token, max_age=max_age, scope=scope)
        else:
            send: Any = self.send_token  # the keyword is the subclass's own (see send_token)
            send(headers, token, max_age=max_age, scope=scope, persistent=persistent)

    @final
    def clear(self, headers: MutableHeaders, *, scope: Scope) -> None:
        """Tell the client to drop its token."""
        self.clear_token(headers, scope=scope)

    @final
    def request_headers(self, session_id: str, *, issued_at: int) -> dict[str, str]:
        """The headers a client sends to present ``session_id`` (used by the test helper)."""
        return self.token_headers(self._signer.sign(session_id, issued_at))

    @final
    def add_vary(self, headers: MutableHeaders) -> None:
        """Add this frontend's header to the response's ``Vary``, unless it is covered."""
        raw = headers.raw
        for key, _ in raw:
            if key == b"vary":
                break
        else:  # the common case: no Vary yet
            raw.append((b"vary", self.vary.encode("latin-1")))
            return
        present = [value for key, value in raw if key == b"vary"]
        tokens = {t.strip() for t in b",".join(present).decode("latin-1").lower().split(",")}
        if self.vary.lower() not in tokens and "*" not in tokens:
            headers.add_vary_header(self.vary)
