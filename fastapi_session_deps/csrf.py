"""Cross-site request forgery protection: a synchronizer token bound to the session.

Each session that renders a form gets one secret, kept in a field of the library's own in
its record. Pages embed it, masked afresh each time (`CSRFProtection.token`), and a request
with an unsafe method (POST, PUT, PATCH, DELETE) must send it back in a form field or a
header; it is compared in constant time with the session's. A second, independent layer
turns away requests a browser says come from another origin (``Sec-Fetch-Site``,
``Origin``, ``Referer``).

Reading a token that exists changes nothing, so it costs no store write; the first one of a
session is stored with the session's usual save. `regenerate` (a log-in) gives the session
a new secret, and `destroy` drops it.
"""

# No `from __future__ import annotations` here: FastAPI reads `__call__`'s signature at
# runtime, and before 0.119 it cannot resolve a string annotation on a callable instance.

import base64
import hmac
import html
import importlib.util
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from fastapi import HTTPException, WebSocketException, status
from starlette.datastructures import FormData
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive

from ._engine import SessionState, bound_state
from ._http import html_page, prefers_html, retry_later
from ._record import CSRF_FIELD, CSRF_SECRET_BYTES, csrf_field, csrf_secret
from ._starlette_settings import compiled_pattern
from .exceptions import BackendUnavailable, ConfigurationError, SessionBusy
from .manager import SessionManager
from .starlette import loaded_state

__all__ = [
    "CSRFError",
    "CSRFProtection",
    "csrf_error_response",
    "csrf_exempt",
    "csrf_token",
]

logger = logging.getLogger("fastapi_session_deps.csrf")

#: Methods that must not change anything, so need no token (RFC 9110, section 9.2.1).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Bytes of a session's secret (`CSRF_SECRET_BYTES`), and of the mask laid over it in
#: each page.
SECRET_BYTES = CSRF_SECRET_BYTES
#: Characters of a masked token: base64url of mask + masked secret, without padding.
TOKEN_LENGTH = 86
#: Its shape, canonical only: the last character carries 2 bits and 4 zero bits, so no
#: two spellings decode alike.
_TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH - 1}}}[AQgw]")
#: Whether multipart forms can be read (python-multipart, as FastAPI's ``Form`` needs);
#: without it only the header carries a multipart request's token.
MULTIPART_PARSER = importlib.util.find_spec("python_multipart") is not None
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EXEMPT = "__csrf_exempt__"

F = TypeVar("F", bound=Callable[..., Any])

Reason = Literal["cross-origin", "no session", "missing token", "bad token"]

#: What each refusal tells the client. Never the token, never which part of it was wrong.
REASONS: dict[Reason, str] = {
    "cross-origin": "The request came from another site.",
    "no session": "The form has expired: the session it belongs to has ended.",
    "missing token": "The request carries no CSRF token.",
    "bad token": "The CSRF token does not match this session: the page is out of date.",
}


class CSRFError(HTTPException):
    """The 403 a request fails the CSRF check with; ``reason`` says which check.

    Answered as JSON by FastAPI's handler; register `csrf_error_response` to answer
    browsers with a page instead.
    """

    def __init__(self, reason: Reason) -> None:
        super().__init__(status.HTTP_403_FORBIDDEN, f"CSRF check failed. {REASONS[reason]}")
        self.reason: Reason = reason


class CSRFToken(str):
    """Text that is already HTML: Jinja2 and MarkupSafe insert it without escaping."""

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


def csrf_exempt(endpoint: F) -> F:
    """Decorator: the route it marks needs no CSRF token (a webhook signed another way).

    Put it under the route decorator::

        @app.post("/webhooks/payments")
        @csrf_exempt
        async def payment_webhook(...): ...
    """
    setattr(endpoint, _EXEMPT, True)
    return endpoint


def csrf_token(session: object) -> str:
    """A token for the session, for a form field or a header (a fresh mask every call).

    The session's secret is created, and stored with the session, on first use; later
    calls only read it.
    """
    return _mask(_secret(bound_state(session)))


class CSRFProtection:
    """The CSRF check, as a dependency of an app, a router or a route.

    ```python
    csrf = CSRFProtection(sessions)  # or CSRFProtection() for request.session
    app = FastAPI(
        dependencies=[Depends(csrf)],
        exception_handlers={CSRFError: csrf_error_response},
    )
    ```

    Safe methods (GET, HEAD, OPTIONS, TRACE) pass without loading the session. Any other
    request must come from this site's own pages (checked first, from the browser's
    ``Sec-Fetch-Site``, ``Origin`` or ``Referer`` header) and carry the session's token in
    the ``header_name`` header or the ``field_name`` form field; otherwise `CSRFError`.
    A WebSocket handshake from another site's page is closed (1008): browsers send no token
    with one, but they do send its origin.

    Args:
        sessions: the `SessionManager` of a typed app; ``None`` for ``request.session``.
        field_name: the form field a page's form carries the token in.
        header_name: the header scripts (``fetch``, HTMX's ``hx-headers``) send it in.
        trusted_origins: other origins allowed to send requests (``https://admin.example``),
            as scheme, host and port; for pages served from another host of yours.
        exempt: paths needing no token: a string is a path prefix matched on a segment
            boundary (``"/api"`` exempts ``/api`` and ``/api/...``, never ``/api-admin``
            or ``/apiary``); a compiled regular expression is matched at the start of the
            path. See also `csrf_exempt`.
        check_origin: the origin layer, for forms and WebSocket handshakes alike (off, a
            handshake from another site is no longer closed); turn it off only behind a
            proxy that rewrites ``Host`` without listing the public origin in
            ``trusted_origins``.
        max_body_bytes: the largest form body read for the token when no header carries
            it (1 MiB by default): a larger one is refused (413) before it is read past
            that. Pages with larger forms send the token in the header, or declare the
            form's fields as the route's ``Form``/``File`` parameters, which FastAPI
            parses (spooling files to disk) before this check reads its field.
        max_fields: the most fields of a form body it parses for the token (Starlette's
            limit, 1,000): a body with more is refused (400) without being parsed.
        anonymous: how a visitor with no stored session is checked. ``"token"`` (the
            default): like anyone, so a page showing them a form stores a session for its
            secret. ``"origin"``: their forms carry no token (`input` and `token` give
            nothing, and store nothing), and their requests must carry the browser's word
            that they come from this site (``Sec-Fetch-Site`` or ``Origin``/``Referer``);
            a request without it is refused. Once their session is stored, the token is
            required as usual. For public pages that many visitors only look at.
    """

    def __init__(
        self,
        sessions: SessionManager[Any] | None = None,
        *,
        field_name: str = "csrf_token",
        header_name: str = "X-CSRF-Token",
        trusted_origins: Iterable[str] = (),
        exempt: Sequence[str | re.Pattern[str]] = (),
        check_origin: bool = True,
        max_body_bytes: int = 1024 * 1024,
        max_fields: int = 1000,
        anonymous: Literal["token", "origin"] = "token",
    ) -> None:
        if anonymous not in ("token", "origin"):
            raise ConfigurationError(
                f"CSRFProtection: anonymous={anonymous!r}: give 'token' or 'origin'."
            )
        self.anonymous = anonymous
        if not field_name or not header_name:
            raise ConfigurationError("CSRFProtection: field_name and header_name can't be empty.")
        for name, limit in (("max_body_bytes", max_body_bytes), ("max_fields", max_fields)):
            if not (isinstance(limit, int) and not isinstance(limit, bool) and limit > 0):
                raise ConfigurationError(f"CSRFProtection: {name} must be a positive number.")
        self.max_body_bytes = max_body_bytes
        self.max_fields = max_fields
        self.sessions = sessions
        self.field_name = field_name
        self.header_name = header_name
        self.trusted_origins = frozenset(
            _origin_of(origin, "trusted_origins") for origin in trusted_origins
        )
        self.exempt = [_exempt_path(path) for path in exempt]
        self.check_origin = check_origin
        self._load: Callable[[HTTPConnection], Awaitable[SessionState[Any]]]
        self._load = _typed_loader(sessions) if sessions is not None else loaded_state
        self.__name__ = self.__qualname__ = "csrf_protection"

    def token(self, session: object) -> CSRFToken:
        """The session's token, freshly masked (see `csrf_token`); with
        ``anonymous="origin"``, empty for a visitor who has no stored session yet."""
        return CSRFToken("" if self._tokenless(session) else csrf_token(session))

    def input(self, session: object) -> CSRFToken:
        """A hidden form field carrying the token, for a template:
        ``{{ csrf.input(request.session) }}``; with ``anonymous="origin"``, nothing for a
        visitor who has no stored session yet."""
        if self._tokenless(session):
            return CSRFToken("")
        name = html.escape(self.field_name)
        return CSRFToken(f'<input type="hidden" name="{name}" value="{csrf_token(session)}">')

    def _tokenless(self, session: object) -> bool:
        """Whether ``session`` gets no token: ``anonymous="origin"``, and it is not stored
        (so a token would store it, for every visitor who merely sees a form)."""
        if self.anonymous != "origin":
            return False
        state = bound_state(session)
        return state.origin is None and csrf_secret(state.reserved(CSRF_FIELD)) is None

    async def __call__(self, connection: HTTPConnection) -> None:
        await self.check(connection)

    async def check(self, connection: HTTPConnection) -> None:
        """Let the request through, or raise `CSRFError` (a WebSocket: close 1008).

        The same check as the dependency, for code that is not a FastAPI route.
        """
        scope = connection.scope
        if scope["type"] == "websocket":
            if self.check_origin and not self._same_origin(connection):
                _log(connection, "cross-origin")
                raise WebSocketException(status.WS_1008_POLICY_VIOLATION, REASONS["cross-origin"])
            return
        if scope["method"] in SAFE_METHODS or self._exempted(connection):
            return
        if self.check_origin and not self._same_origin(connection):
            raise _refuse(connection, "cross-origin")
        try:
            state = await self._load(connection)
        except (BackendUnavailable, SessionBusy) as exc:
            raise retry_later(connection, exc) from None
        secret = csrf_secret(state.reserved(CSRF_FIELD)) if state.origin is not None else None
        if secret is None:
            if (
                self.anonymous == "origin"
                and state.origin is None
                and self._origin_verdict(connection) is True
            ):
                return  # a visitor with no stored session, from this site's own page
            raise _refuse(connection, "no session")
        sent = await self._sent_token(connection)
        if sent is None:
            raise _refuse(connection, "missing token")
        if not _matches(sent, secret):
            raise _refuse(connection, "bad token")

    # -- the parts ---------------------------------------------------------------------

    def _exempted(self, connection: HTTPConnection) -> bool:
        endpoint = connection.scope.get("endpoint")
        if getattr(endpoint, _EXEMPT, False):
            return True
        path = connection.scope["path"]
        return any(exempted(path) for exempted in self.exempt)

    def _same_origin(self, connection: HTTPConnection) -> bool:
        """Whether the request may come from this site: the browser says so, or says
        nothing (a client that is not a browser, which cannot be tricked: the token
        decides)."""
        return self._origin_verdict(connection) is not False

    def _origin_verdict(self, connection: HTTPConnection) -> bool | None:
        """What the browser says of where the request comes from: this site (or a trusted
        one), another site, or nothing (``None``).

        ``Sec-Fetch-Site`` is the browser's own verdict and needs no ``Host``; without it,
        ``Origin``, then ``Referer``, is compared with the request's own origin.
        """
        headers = connection.headers
        origin = headers.get("origin")
        if (
            origin is not None
            and self.trusted_origins
            and _origin_of(origin) in self.trusted_origins
        ):
            return True
        site = headers.get("sec-fetch-site")
        if site is not None:
            return site in ("same-origin", "none")
        if origin is None:
            origin = headers.get("referer")
            if origin is None:
                return None
        claimed = _origin_of(origin)
        return claimed is not None and (
            claimed == _own_origin(connection) or claimed in self.trusted_origins
        )

    async def _sent_token(self, connection: HTTPConnection) -> str | None:
        """The token in the header, else in the form field of a form's body.

        The body is read up to ``max_body_bytes`` and kept (the route can still read it,
        or its form); one with more than ``max_fields`` fields is refused unparsed; a
        multipart form is parsed from a copy, whose files are closed here. A form FastAPI
        has parsed already (the route's ``Form``/``File`` parameters) is read from there.
        """
        sent = connection.headers.get(self.header_name)
        if sent is not None or not isinstance(connection, Request):
            return sent
        content_type = connection.headers.get("content-type", "").lower()
        multipart = content_type.startswith("multipart/form-data") and MULTIPART_PARSER
        if not multipart and not content_type.startswith("application/x-www-form-urlencoded"):
            return None
        try:
            body = await self._body(connection)
        except RuntimeError:  # already read as a form (FastAPI's Form and File parameters)
            return _field(await connection.form(), self.field_name)
        if multipart:
            form = Request(connection.scope, _replay(body)).form(max_fields=self.max_fields)
            async with form as parsed:
                return _field(parsed, self.field_name)
        try:
            fields = parse_qsl(
                body.decode("latin-1"), keep_blank_values=True, max_num_fields=self.max_fields
            )
        except ValueError:  # counted before anything is split: refused unparsed
            raise _too_much(connection, 400, f"more than {self.max_fields} form fields") from None
        return next((value for name, value in fields if name == self.field_name), None)

    async def _body(self, connection: Request) -> bytes:
        """The request's body, read no further than ``max_body_bytes``, and kept for the
        route (as `Request.body` keeps it).

        Raises:
            HTTPException: 413, the body is larger.
            RuntimeError: the body was read already, as a stream (a parsed form).
        """
        limit = self.max_body_bytes
        chunks, size = [], 0
        # (Read rather than judged by Content-Length: a form FastAPI parsed already, its
        # files spooled to disk, is read from there, whatever its length.)
        async for chunk in connection.stream():
            size += len(chunk)
            if size > limit:
                raise _too_much(connection, 413, f"a form body over {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        # Where Request.body() keeps what it read (Starlette's own attribute), so that the
        # route, which gets this very Request, reads the body again.
        connection._body = body
        return body


def _exempt_path(path: object) -> Callable[[str], bool]:
    """Whether a path is exempted by ``path``: a string is a prefix that ends at a segment
    boundary, a compiled pattern a regular expression matched at the start."""
    if isinstance(path, str):
        if not path.startswith("/"):
            raise ConfigurationError(
                f"exempt: {path!r} is not a path, which starts with '/'; for a regular "
                "expression, pass re.compile(...)."
            )
        prefix = path.rstrip("/")
        return lambda requested: requested == prefix or requested.startswith(prefix + "/")
    pattern = compiled_pattern(path, "exempt")
    return lambda requested: pattern.match(requested) is not None


def _too_much(connection: HTTPConnection, status_code: int, what: str) -> HTTPException:
    """A form body refused for its size: never parsed, and a hint of what to do."""
    logger.warning(
        "CSRF check refused %s: %s %s",
        what,
        connection.scope["method"],
        connection.scope["path"],
        extra={"event": "csrf_body_refused", "reason": what},
    )
    return HTTPException(
        status_code,
        f"The form is too large for its CSRF token to be read ({what}): send the token in "
        "the header instead.",
    )


def _replay(body: bytes) -> Receive:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def csrf_error_response(request: Request, exc: Exception) -> Response:
    """Exception handler for `CSRFError`: a short page for browsers, JSON for the rest.

    ``app = FastAPI(exception_handlers={CSRFError: csrf_error_response})``.
    """
    reason: Reason = exc.reason if isinstance(exc, CSRFError) else "bad token"
    headers = {"Cache-Control": "no-store"}
    if not prefers_html(request.headers.get("accept", "")):
        return JSONResponse({"detail": f"CSRF check failed. {REASONS[reason]}"}, 403, headers)
    page = html_page(
        "Request refused",
        REASONS[reason],
        "Nothing was changed. Go back, reload the page, and try again.",
    )
    return HTMLResponse(page, 403, headers)


# -- the token -------------------------------------------------------------------------


def _secret(state: SessionState[Any]) -> bytes:
    """The session's secret, made (and stored with the session at commit) if it has none,
    or a damaged one."""
    secret = csrf_secret(state.reserved(CSRF_FIELD))
    if secret is None:
        state.engine.make_writable(state)
        secret = secrets.token_bytes(SECRET_BYTES)
        state.set_reserved(CSRF_FIELD, csrf_field(secret))
    return secret


def _mask(secret: bytes) -> str:
    mask = secrets.token_bytes(SECRET_BYTES)
    return _encode(mask + _xor(mask, secret))


def _matches(sent: str, secret: bytes) -> bool:
    """Whether ``sent`` is ``secret`` under some mask; in constant time for a well-formed
    token (a malformed one is refused by its shape, which tells nothing of the secret)."""
    if not _TOKEN_SHAPE.fullmatch(sent):
        return False
    raw = base64.urlsafe_b64decode(sent + "==")  # 86 characters: always 64 bytes
    return hmac.compare_digest(_xor(raw[:SECRET_BYTES], raw[SECRET_BYTES:]), secret)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# -- origins ---------------------------------------------------------------------------


def _origin_of(url: str, setting: str | None = None) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a URL or an ``Origin`` value; ``None`` if it has none.

    With ``setting``, a value that is not an origin is a configuration error instead.
    """
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        scheme, host, port = "", None, None
    if scheme not in _DEFAULT_PORTS or not host:
        if setting is not None:
            raise ConfigurationError(
                f"{setting}: {url!r} is not an origin such as 'https://app.example.com'."
            )
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _own_origin(connection: HTTPConnection) -> tuple[str, str, int] | None:
    """The origin the request was sent to: its scheme and its ``Host`` header."""
    scope = connection.scope
    host = connection.headers.get("host")
    if host is None:
        return None
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"  # ASGI's
    return _origin_of(f"{scheme}://{host}")


def _typed_loader(
    sessions: SessionManager[Any],
) -> Callable[[HTTPConnection], Awaitable[SessionState[Any]]]:
    # Without a lock, read-only: a writable dependency of the route upgrades it later.
    # With one, writable at once, as the route's own dependency will want it.
    locked = sessions.policy.concurrency == "lock"
    dependency = sessions.get_session if locked else sessions.get_session_readonly

    async def load(connection: HTTPConnection) -> SessionState[Any]:
        return bound_state(await dependency(connection))

    return load


def _refuse(connection: HTTPConnection, reason: Reason) -> CSRFError:
    _log(connection, reason)
    return CSRFError(reason)


def _log(connection: HTTPConnection, reason: Reason) -> None:
    scope = connection.scope
    logger.warning(
        "CSRF check failed (%s): %s %s",
        reason,
        scope.get("method", "WEBSOCKET"),
        scope["path"],
        extra={"event": "csrf_failed", "reason": reason},
    )
