"""The commit point: a pure-ASGI middleware that saves sessions as the response starts."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._core import RequestSlot, SessionCore, SessionState
from ._faults import faults
from .exceptions import BackendError, BackendUnavailable, SessionBusy, SessionTooLarge

__all__ = ["SessionCommitMiddleware"]

logger = logging.getLogger("fastapi_session_deps")

#: Seconds a client is asked to wait when the store is unavailable.
RETRY_AFTER = 1
UNAVAILABLE_DETAIL = "The session store is unavailable; please retry shortly."
BUSY_DETAIL = "The session is busy with another request; please retry shortly."
NOT_SAVED_DETAIL = "The session could not be saved."


class SessionCommitMiddleware:
    """Installs a lazy session slot on each request, and commits it on ``http.response.start``.

    A request whose route never asks for the session pays for one small object and nothing
    else: no cookie parsing, no store call, no header. A request that loaded it has its
    changes saved (awaiting the store) *before* the status line is passed on, so the client's
    next request reads its own write, whatever the response class.

    If the save fails because the store is unavailable, the route's response is replaced by
    a 503 with a JSON body and ``Retry-After``: the client is never told a change was kept
    when it was not. A `BackendUnavailable` that escapes the app before its response starts
    gets the same 503.

    WebSocket connections get the slot too, so the same dependencies can read the session
    during the handshake; nothing is saved from a WebSocket route.
    """

    def __init__(self, app: ASGIApp, core: SessionCore[Any]) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http":
            if scope_type == "websocket":
                slot = RequestSlot()
                scope[self.core.scope_key] = slot
                if not await self.prepare(scope, slot, send):
                    return
                try:
                    await self.app(scope, receive, send)
                finally:
                    await self.release(slot)
                return
            await self.app(scope, receive, send)
            return

        slot = RequestSlot()
        scope[self.core.scope_key] = slot
        if not await self.prepare(scope, slot, send):
            return
        replaced = started = False

        async def send_with_commit(message: Message) -> None:
            nonlocal replaced, started
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
            if message["type"] == "http.response.start" and slot.state is not None:
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                try:
                    await self.commit(slot.state, headers, message["status"], scope)
                except BackendUnavailable as exc:
                    replaced = True
                    await refuse_unavailable(scope, send, exc)
                    return
                except (SessionTooLarge, BackendError) as exc:
                    # Not the client's fault and not passing: a server error, with the
                    # reason in the log (never the session's contents).
                    replaced = True
                    logger.error("The session was not saved: %s", exc)
                    await send_json(send, 500, {"detail": NOT_SAVED_DETAIL})
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_with_commit)
        except (BackendUnavailable, SessionBusy) as exc:
            # A load inside the app (a lazily loaded request.session) found the store down,
            # or the session locked.
            if started:
                raise
            await refuse_unavailable(scope, send, exc)
        except Exception:
            # An unhandled error: the server answers 500 without passing through here, so
            # nothing is saved, but a log-out made before the error still happens.
            if not started and slot.state is not None:
                with contextlib.suppress(BackendUnavailable):  # the error in hand matters more
                    await self.core.honour_destroy(slot.state)
            raise
        finally:
            # Held when the response never started (an unhandled error): free it now.
            if slot.state is not None and slot.state.lock_token is not None:
                await self.release(slot)

    async def prepare(self, scope: Scope, slot: RequestSlot, send: Send) -> bool:
        """Hook run before the app; returning ``False`` means a response was already sent."""
        return True

    async def commit(
        self, state: SessionState[Any], headers: MutableHeaders, status: int, scope: Scope
    ) -> None:
        """Hook around the commit of a loaded session."""
        await self.core.commit(state, headers, status, scope)

    async def release(self, slot: RequestSlot) -> None:
        if slot.state is not None:
            await self.core.release(slot.state)


async def refuse_unavailable(
    scope: Scope, send: Send, exc: BackendUnavailable | SessionBusy
) -> None:
    """Answer "try again later": a 503, or a WebSocket close 1013."""
    busy = isinstance(exc, SessionBusy)
    detail = BUSY_DETAIL if busy else UNAVAILABLE_DETAIL
    faults.report("Session busy (503)" if busy else "Session store unavailable (503)", exc)
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": detail})
    else:
        await send_unavailable(send, detail)


async def send_unavailable(send: Send, detail: str = UNAVAILABLE_DETAIL) -> None:
    """Send a complete 503 response: the session store is unavailable, or the session busy."""
    await send_json(send, 503, {"detail": detail}, [(b"retry-after", str(RETRY_AFTER).encode())])


async def send_json(
    send: Send,
    status: int,
    content: dict[str, str],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete, uncacheable JSON response."""
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
