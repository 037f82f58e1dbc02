"""The commit point: a pure-ASGI middleware that saves sessions as the response starts."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._core import RequestSlot, SessionCore
from .exceptions import BackendUnavailable

__all__ = ["SessionCommitMiddleware"]

#: Seconds a client is asked to wait when the store is unavailable.
RETRY_AFTER = 1
UNAVAILABLE_DETAIL = "The session store is unavailable; please retry shortly."


class SessionCommitMiddleware:
    """Installs a lazy session slot on each request, and commits it on ``http.response.start``.

    A request whose route never asks for the session pays for one small object and nothing
    else: no cookie parsing, no store call, no header. A request that loaded it has its
    changes saved (awaiting the store) *before* the status line is passed on, so the client's
    next request reads its own write, whatever the response class.

    If the save fails because the store is unavailable, the route's response is replaced by
    a 503 with a JSON body and ``Retry-After``: the client is never told a change was kept
    when it was not.

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
                scope[self.core.scope_key] = RequestSlot()
            await self.app(scope, receive, send)
            return

        slot = RequestSlot()
        scope[self.core.scope_key] = slot
        replaced = False

        async def send_with_commit(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and slot.state is not None:
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                try:
                    await self.core.commit(slot.state, headers, message["status"])
                except BackendUnavailable:
                    replaced = True
                    await send_unavailable(send)
                    return
            await send(message)

        await self.app(scope, receive, send_with_commit)


async def send_unavailable(send: Send) -> None:
    """Send a complete 503 response saying the session store is unavailable."""
    body = json.dumps({"detail": UNAVAILABLE_DETAIL}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
