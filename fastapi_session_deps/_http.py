"""The one place where the library's errors become HTTP answers.

=====================================  ===============================================
`BackendUnavailable`                   503, ``Retry-After``, a page for a browser, JSON
                                       for the rest; a WebSocket closes 1013
`SessionBusy` (the lock stayed taken)  the same, with its own detail
no valid session                       401; a WebSocket closes 1008
a verifier's check is false            the verifier's status (403); a WebSocket 1008
`SessionTooLarge`, `BackendError`      500, logged with the reason
=====================================  ===============================================

The dependencies raise these as exceptions (FastAPI answers the 401 and 403; the 503 is
answered by the session middleware around the app, the one place that sees both a load and
a save fail); the middlewares and the session service speak raw ASGI or have their own
handlers, and send them. A "try again later" is also reported to the fault log, once per
outage.
"""

from __future__ import annotations

import html
import json
import logging
from urllib.parse import urlencode, urlsplit

from fastapi import HTTPException, WebSocketException, status
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import Scope, Send

from ._faults import faults
from .exceptions import BackendError, BackendUnavailable, SessionBusy, SessionTooLarge

__all__ = [
    "RETRY_AFTER",
    "html_page",
    "local_path",
    "not_saved",
    "prefers_html",
    "redirect_to_login",
    "refused",
    "retry_later",
    "retry_later_response",
    "send_body",
    "send_json",
    "send_retry_later",
]

logger = logging.getLogger("fastapi_session_deps")

#: Seconds a client is asked to wait when the store is unavailable or the session busy.
RETRY_AFTER = 1
UNAVAILABLE_DETAIL = "The session store is unavailable; please retry shortly."
BUSY_DETAIL = "The session is busy with another request; please retry shortly."
NOT_SAVED_DETAIL = "The session could not be saved."

Unavailable = BackendUnavailable | SessionBusy


def _detail(exc: Unavailable) -> str:
    busy = isinstance(exc, SessionBusy)
    faults.report("Session busy (503)" if busy else "Session store unavailable (503)", exc)
    return BUSY_DETAIL if busy else UNAVAILABLE_DETAIL


def prefers_html(accept: str) -> bool:
    """Whether an ``Accept`` header asks for a page first (a browser's navigation and form
    posts do; ``fetch`` and API clients do not)."""
    for part in accept.split(","):
        kind = part.split(";", 1)[0].strip().lower()
        if kind in ("text/html", "application/xhtml+xml"):
            return True
        if kind in ("application/json", "*/*") or kind.endswith("+json"):
            return False
    return False


def local_path(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site (``/cart?x=1``), else ``default``.

    For a ``next`` parameter, before redirecting to it after a log-in: an address of
    another site (``https://evil.example``, ``//evil.example``, ``/\\evil.example``), a
    relative path, or one with control characters is refused, so a link cannot send your
    users elsewhere through your log-in page (an open redirect).
    """
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ord(char) < 0x20 or char in "\\\x7f" for char in value):
        return default
    parts = urlsplit(value)
    return value if not (parts.scheme or parts.netloc) else default


def redirect_to_login(connection: HTTPConnection, login_url: str) -> Exception | None:
    """A 303 to ``login_url`` for a browser turned away (with ``next``, the page it asked
    for, on a GET or HEAD); ``None`` for a script, a WebSocket, or an API client."""
    if connection.scope["type"] != "http" or not prefers_html(
        connection.headers.get("accept", "")
    ):
        return None
    target = login_url
    if connection.scope["method"] in ("GET", "HEAD"):
        here = connection.url.path + (f"?{connection.url.query}" if connection.url.query else "")
        target += ("&" if "?" in login_url else "?") + urlencode({"next": here})
    return HTTPException(
        status.HTTP_303_SEE_OTHER,
        "Sign in first",
        {"Location": target, "Cache-Control": "no-store"},
    )


def html_page(title: str, *paragraphs: str) -> str:
    """A short, self-contained page for a browser: a title and paragraphs (escaped)."""
    body = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs)
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<body style='font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;"
        f"padding:0 1rem'><h1>{html.escape(title)}</h1>{body}"
    )


def _retry_headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"}


def retry_later(connection: HTTPConnection, exc: Unavailable) -> Exception:
    """The exception a dependency raises for "try again later": on a WebSocket, a close
    (1013); on HTTP the error itself, which the session middleware around the app answers
    with `send_retry_later` (a dependency only runs inside it)."""
    if connection.scope["type"] == "websocket":
        return WebSocketException(status.WS_1013_TRY_AGAIN_LATER, reason=_detail(exc))
    return exc


def refused(connection: HTTPConnection, status_code: int, detail: str) -> Exception:
    """The exception a dependency raises to turn a request away (401, 403, ...)."""
    if connection.scope["type"] == "websocket":
        return WebSocketException(status.WS_1008_POLICY_VIOLATION, reason=detail)
    return HTTPException(status_code, detail=detail)


def retry_later_response(exc: Unavailable) -> JSONResponse:
    """ "Try again later" as a response, for an exception handler (the session service)."""
    return JSONResponse({"detail": _detail(exc)}, 503, _retry_headers())


async def send_retry_later(scope: Scope, send: Send, exc: Unavailable) -> None:
    """Send "try again later" over raw ASGI: a 503 with ``Retry-After`` (a short page for a
    browser, JSON for the rest), or a WebSocket close 1013."""
    detail = _detail(exc)
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": detail})
        return
    retry = [(b"retry-after", str(RETRY_AFTER).encode())]
    if not prefers_html(Headers(scope=scope).get("accept", "")):
        await send_json(send, 503, {"detail": detail}, retry)
        return
    page = html_page(
        "Please try again in a moment",
        detail,
        "Nothing was changed. Reload the page in a few seconds.",
    )
    await send_body(send, 503, page.encode(), b"text/html; charset=utf-8", retry)


async def not_saved(send: Send, exc: SessionTooLarge | BackendError) -> None:
    """Send the 500 of a change that could not be saved, and log why (never its contents)."""
    logger.error(
        "The session was not saved: %s",
        exc,
        extra={"event": "not_saved", "reason": type(exc).__name__},
    )
    await send_json(send, 500, {"detail": NOT_SAVED_DETAIL})


async def send_json(
    send: Send,
    status_code: int,
    content: dict[str, str],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete, uncacheable JSON response over raw ASGI."""
    await send_body(send, status_code, json.dumps(content).encode(), b"application/json", headers)


async def send_body(
    send: Send,
    status_code: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete, uncacheable response over raw ASGI."""
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
