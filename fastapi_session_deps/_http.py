"""The one place where the library's errors become HTTP answers.

=====================================  ===============================================
`BackendUnavailable`                   503, JSON, ``Retry-After``; a WebSocket closes 1013
`SessionBusy` (the lock stayed taken)  the same, with its own detail
no valid session                       401; a WebSocket closes 1008
a verifier's check is false            the verifier's status (403); a WebSocket 1008
`SessionTooLarge`, `BackendError`      500, logged with the reason
=====================================  ===============================================

The dependencies raise these as exceptions (FastAPI answers them); the middlewares and the
session service, which speak raw ASGI or have their own handlers, send them. A "try again
later" is also reported to the fault log, once per outage.
"""

from __future__ import annotations

import json
import logging

from fastapi import HTTPException, WebSocketException, status
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import Scope, Send

from ._faults import faults
from .exceptions import BackendError, BackendUnavailable, SessionBusy, SessionTooLarge

__all__ = [
    "RETRY_AFTER",
    "not_saved",
    "refused",
    "retry_later",
    "retry_later_response",
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


def _retry_headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"}


def retry_later(connection: HTTPConnection, exc: Unavailable) -> Exception:
    """The exception a dependency raises for "try again later"."""
    detail = _detail(exc)
    if connection.scope["type"] == "websocket":
        return WebSocketException(status.WS_1013_TRY_AGAIN_LATER, reason=detail)
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail, _retry_headers())


def refused(connection: HTTPConnection, status_code: int, detail: str) -> Exception:
    """The exception a dependency raises to turn a request away (401, 403, ...)."""
    if connection.scope["type"] == "websocket":
        return WebSocketException(status.WS_1008_POLICY_VIOLATION, reason=detail)
    return HTTPException(status_code, detail=detail)


def retry_later_response(exc: Unavailable) -> JSONResponse:
    """ "Try again later" as a response, for an exception handler (the session service)."""
    return JSONResponse({"detail": _detail(exc)}, 503, _retry_headers())


async def send_retry_later(scope: Scope, send: Send, exc: Unavailable) -> None:
    """Send "try again later" over raw ASGI: a 503, or a WebSocket close 1013."""
    detail = _detail(exc)
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": detail})
        return
    await send_json(send, 503, {"detail": detail}, [(b"retry-after", str(RETRY_AFTER).encode())])


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
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
