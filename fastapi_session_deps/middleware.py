"""The commit point: a pure-ASGI middleware that saves sessions as the response starts."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._engine import RequestSlot, SessionEngine, SessionState
from ._http import not_saved, send_retry_later
from .exceptions import BackendError, BackendUnavailable, SessionBusy, SessionTooLarge

__all__ = ["SessionCommitMiddleware"]


class SessionCommitMiddleware:
    """Installs a lazy session slot on each request, and commits it on ``http.response.start``.

    A request whose route never asks for the session pays for one small object and nothing
    else: no cookie parsing, no store call, no header. A request that loaded it has its
    changes saved (awaiting the store) *before* the status line is passed on, so the client's
    next request reads its own write, whatever the response class.

    If the save fails because the store is unavailable, the route's response is replaced by
    a 503 with ``Retry-After`` (a page for a browser, JSON for the rest): the client is never
    told a change was kept when it was not. A `BackendUnavailable` that escapes the app
    before its response starts (a dependency's load) gets the same 503.

    WebSocket connections get the slot too, so the same dependencies can read the session
    during the handshake; nothing is saved from a WebSocket route.

    Args:
        app: the ASGI app to wrap.
        engine: the session engine that loads and commits.
        prepare: run before the app (``request.session`` loads there); ``False`` means it
            has already answered.
        should_commit: asked before a loaded session is committed; ``False`` skips it.
    """

    def __init__(
        self,
        app: ASGIApp,
        engine: SessionEngine[Any],
        prepare: Callable[[Scope, RequestSlot, Send], Awaitable[bool]] | None = None,
        should_commit: Callable[[SessionState[Any]], bool] | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self._prepare = prepare
        self._should_commit = should_commit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        slot = RequestSlot()
        scope[self.engine.scope_key] = slot
        replaced = started = False

        async def send_with_commit(message: Message) -> None:
            nonlocal replaced, started
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
                state = slot.state
                if state is not None and (
                    self._should_commit is None or self._should_commit(state)
                ):
                    message.setdefault("headers", [])
                    try:
                        await self.engine.commit(
                            state, MutableHeaders(scope=message), message["status"], scope
                        )
                    except BackendUnavailable as exc:
                        replaced = True
                        await send_retry_later(scope, send, exc)
                        return
                    except (SessionTooLarge, BackendError) as exc:
                        replaced = True
                        await not_saved(send, exc)
                        return
            await send(message)

        try:
            if self._prepare is None or await self._prepare(scope, slot, send):
                await self.app(scope, receive, send_with_commit)
        except Exception as exc:
            if started or not await self._answer_failure(exc, slot, scope, send):
                raise
        finally:
            await self._end(slot)

    async def _answer_failure(
        self, exc: Exception, slot: RequestSlot, scope: Scope, send: Send
    ) -> bool:
        """Answer an error that escaped the app before its response started, if it is the
        store's (``True``); otherwise let it go on to the server (``False``)."""
        if isinstance(exc, BackendUnavailable | SessionBusy):
            # A load inside the app (a lazily loaded request.session) found the store down,
            # or the session locked.
            await send_retry_later(scope, send, exc)
            return True
        # An unhandled error: the server answers 500 without passing through here, so
        # nothing is saved, but a log-out made before the error still happens.
        if slot.state is not None:
            with contextlib.suppress(BackendUnavailable):  # the error in hand matters more
                await self.engine.abandon(slot.state)
        return False

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The dependencies may read the session during the handshake; nothing is committed.
        slot = RequestSlot()
        scope[self.engine.scope_key] = slot
        try:
            if self._prepare is None or await self._prepare(scope, slot, send):
                await self.app(scope, receive, send)
        finally:
            await self._end(slot)

    async def _end(self, slot: RequestSlot) -> None:
        state = slot.state
        if state is not None:
            if state.lock is not None:  # the response never started: free it now
                await self.engine.release(state)
            self.engine.forget(state)
