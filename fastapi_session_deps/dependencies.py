"""The `Depends()` callables, and the translation of session errors into HTTP answers.

Only this module and the middleware turn the library's exceptions into responses: a store
that cannot be reached becomes a 503 with ``Retry-After`` (or, with
``on_backend_error="anonymous"``, a new session that is never saved); a missing or failed
check becomes a 401 or the verifier's status code. On a WebSocket the same conditions close
the handshake with the matching WebSocket code.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import HTTPException, WebSocketException, status
from starlette.requests import HTTPConnection

from ._core import SessionCore, SessionState
from ._faults import faults
from .exceptions import BackendUnavailable, SessionBusy
from .middleware import BUSY_DETAIL, RETRY_AFTER, UNAVAILABLE_DETAIL

T = TypeVar("T")


#: A session check: sync or async, true to let the request through.
Check = Callable[[T], "bool | Awaitable[bool]"]


async def resolve(
    core: SessionCore[T], connection: HTTPConnection, *, readonly: bool = False
) -> SessionState[T]:
    """Return the request's session state, loading it on first use.

    Every dependency of one request goes through here, so they all share one state.
    """
    slot = core.slot(connection)
    if slot.state is not None:
        state: SessionState[T] = slot.state  # type: ignore[assignment]
        if not readonly:
            core.make_writable(state)
        return state
    try:
        state = await core.load(connection, readonly=readonly)
    except SessionBusy as exc:
        faults.report("Session busy (503)", exc)
        raise _unavailable(connection, BUSY_DETAIL) from exc
    except BackendUnavailable as exc:  # the "fail" policy: "anonymous" never raises it
        faults.report("Session store unavailable (503)", exc)
        raise _unavailable(connection) from exc
    core.attach(state)
    slot.state = state  # type: ignore[assignment]
    return state


def require_stored(connection: HTTPConnection, state: SessionState[Any]) -> None:
    """Raise a 401 (or a WebSocket policy close) unless the request has a live session."""
    if state.key is None:
        raise _refused(connection, status.HTTP_401_UNAUTHORIZED, "No valid session")


async def run_check(
    connection: HTTPConnection, check: Check[T], data: T, status_code: int
) -> None:
    """Run a user's check, sync or async; raise ``status_code`` if it is false."""
    result = check(data)
    if inspect.isawaitable(result):
        result = await result
    if not result:
        raise _refused(connection, status_code, "Session check failed")


def _refused(connection: HTTPConnection, status_code: int, detail: str) -> Exception:
    if connection.scope["type"] == "websocket":
        return WebSocketException(status.WS_1008_POLICY_VIOLATION, reason=detail)
    return HTTPException(status_code, detail=detail)


def _unavailable(connection: HTTPConnection, detail: str = UNAVAILABLE_DETAIL) -> Exception:
    if connection.scope["type"] == "websocket":
        return WebSocketException(status.WS_1013_TRY_AGAIN_LATER, reason=detail)
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=detail,
        headers={"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"},
    )
