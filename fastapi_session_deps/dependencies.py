"""The `Depends()` callables: the request's session, loaded once, required or checked.

The HTTP answers (503, 401, the verifier's status) come from `_http`, the one module that
turns the library's errors into responses.
"""

# No `from __future__ import annotations` here: FastAPI reads `__call__`'s signature at
# runtime, and before 0.119 it cannot resolve a string annotation on a callable instance.

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection

from ._engine import Fate, RequestSlot, SessionEngine, SessionState
from ._http import redirect_to_login, refused, retry_later
from .exceptions import BackendUnavailable, MissingMiddlewareError, SessionBusy
from .frontends.base import SessionScheme

T = TypeVar("T")

#: A session check: sync or async, true to let the request through.
Check = Callable[[T], "bool | Awaitable[bool]"]


class SessionDependency(Generic[T]):
    """A session dependency: an object FastAPI awaits with the request's connection.

    Every dependency of one request shares the request's one session state: the first to
    run loads it, the others find it in the middleware's slot.

    An instance rather than a closure so that, when the frontend has an OpenAPI scheme, the
    dependency can *be* that scheme (`SecuredSessionDependency`): FastAPI then lists it on
    every route that uses it without solving a sub-dependency per request.
    """

    def __init__(
        self,
        engine: SessionEngine[T],
        name: str,
        *,
        readonly: bool = False,
        required: bool = False,
        check: Check[T] | None = None,
        status_code: int = 403,
        redirect_to: str | None = None,
    ) -> None:
        self.engine = engine
        self.__name__ = self.__qualname__ = name  # as the functions they stand for
        self.readonly = readonly
        self.required = required
        self.check = check
        self.status_code = status_code
        self.redirect_to = redirect_to

    async def __call__(self, connection: HTTPConnection) -> T:
        engine = self.engine
        slot = connection.scope.get(engine.scope_key)
        if not isinstance(slot, RequestSlot):
            raise MissingMiddlewareError.for_manager()
        state: SessionState[T] | None = slot.state
        if state is None:
            try:
                state = await engine.load(engine.frontend.read(connection), readonly=self.readonly)
            except (SessionBusy, BackendUnavailable) as exc:  # "anonymous" never raises these
                raise retry_later(connection, exc) from None
            slot.state = state
        elif not self.readonly:
            engine.make_writable(state)
        if self.required and (
            state.origin is None or state.fate is Fate.END or engine.holds_nothing(state)
        ):
            raise self._refuse(connection, 401, "No valid session")
        if self.check is not None:
            result = self.check(state.data)
            if inspect.isawaitable(result):
                result = await result
            if not result:
                raise self._refuse(connection, self.status_code, "Session check failed")
        return state.data

    def _refuse(self, connection: HTTPConnection, status_code: int, detail: str) -> Exception:
        """The refusal: a browser is sent to ``redirect_to``, if set; the rest get the status."""
        if self.redirect_to is not None:
            redirect = redirect_to_login(connection, self.redirect_to)
            if redirect is not None:
                return redirect
        return refused(connection, status_code, detail)


class SecuredSessionDependency(SecurityBase, SessionDependency[T]):
    """A session dependency that is also its frontend's OpenAPI security scheme."""

    def __init__(self, scheme: SessionScheme, engine: SessionEngine[T], name: str, **options: Any):
        SessionDependency.__init__(self, engine, name, **options)
        self.model = scheme.model
        self.scheme_name = scheme.scheme_name
