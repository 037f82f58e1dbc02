"""The `Depends()` callables' shared steps: load once per request, require, check.

The HTTP answers (503, 401, the verifier's status) come from `_http`, the one module that
turns the library's errors into responses.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from ._engine import Fate, RequestSlot, SessionEngine, SessionState
from ._http import refused, retry_later
from .exceptions import BackendUnavailable, MissingMiddlewareError, SessionBusy

T = TypeVar("T")


#: A session check: sync or async, true to let the request through.
Check = Callable[[T], "bool | Awaitable[bool]"]


async def resolve(
    engine: SessionEngine[T], connection: HTTPConnection, *, readonly: bool = False
) -> SessionState[T]:
    """Return the request's session state, loading it on first use.

    Every dependency of one request goes through here, so they all share one state.

    Raises:
        MissingMiddlewareError: the app has no session middleware for this engine.
    """
    slot = connection.scope.get(engine.scope_key)
    if not isinstance(slot, RequestSlot):
        raise MissingMiddlewareError(
            "This app has no session middleware, so sessions could never be saved. Add "
            "`app.add_middleware(sessions.middleware)` after creating the app "
            "(`sessions` being your SessionManager)."
        )
    if slot.state is not None:
        state: SessionState[T] = slot.state
        if not readonly:
            engine.make_writable(state)
        return state
    try:
        state = await engine.load(engine.frontend.read(connection), readonly=readonly)
    except (SessionBusy, BackendUnavailable) as exc:  # "anonymous" never raises the latter
        raise retry_later(connection, exc) from exc
    slot.state = state
    return state


def require_stored(connection: HTTPConnection, state: SessionState[Any]) -> None:
    """Raise a 401 (or a WebSocket policy close) unless the request has a live session."""
    if state.origin is None or state.fate is Fate.END:
        raise refused(connection, 401, "No valid session")


async def run_check(
    connection: HTTPConnection, check: Check[T], data: T, status_code: int
) -> None:
    """Run a user's check, sync or async; raise ``status_code`` if it is false."""
    result = check(data)
    if inspect.isawaitable(result):
        result = await result
    if not result:
        raise refused(connection, status_code, "Session check failed")
