"""A drop-in for Starlette's `SessionMiddleware`, with the data kept server-side.

```python
# from starlette.middleware.sessions import SessionMiddleware
from fastapi_session_deps import MemoryBackend, SessionMiddleware

app.add_middleware(SessionMiddleware, secret_key=..., backend=MemoryBackend(), autoload=True)
```

``request.session`` stays a plain dictionary; what changes is that the cookie carries only
a signed id, and the data lives in the backend. It shares every part of the typed API:
frontends, backends, signing, expiry and the commit point.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Literal

import anyio.from_thread
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Scope, Send

from ._core import BackendErrorPolicy, ConcurrencyPolicy, RequestSlot, SessionCore, SessionState
from .backends.base import Backend
from .backends.memory import MemoryBackend
from .exceptions import BackendUnavailable, ConfigurationError, SessionBusy, SessionError
from .frontends.base import Frontend
from .frontends.cookie import CookieFrontend
from .middleware import BUSY_DETAIL, SessionCommitMiddleware, refuse_unavailable
from .serializers import DictSerializer
from .signing import SecretKeys, VerifiedToken

__all__ = [
    "Session",
    "SessionMiddleware",
    "SessionNotLoaded",
    "destroy_session",
    "load_session",
    "regenerate_session",
]

logger = logging.getLogger("fastapi_session_deps")

#: Starlette's default cookie lifetime: 14 days.
DEFAULT_MAX_AGE = 14 * 24 * 60 * 60


class SessionNotLoaded(SessionError, RuntimeError):
    """``request.session`` was used in async code before its data was loaded."""


class Session(dict[str, Any]):
    """The ``request.session`` dictionary.

    It tracks ``accessed`` and ``modified`` as Starlette's does, though saving relies on
    neither: at commit every value is compared with the stored one, so in-place edits of
    nested lists and dicts are saved too.

    While its data has not been loaded from the store yet, any use loads it first: at once
    in a worker thread (sync endpoints), or by raising `SessionNotLoaded` on the event loop,
    where the fix is ``await load_session(request)`` or ``autoload=True``.
    """

    accessed: bool = False
    modified: bool = False
    #: Loads the data when called from a worker thread; ``None`` once loaded.
    _loader: Callable[[], Any] | None = None
    #: The engine and its state for this session, once it has one.
    _core: SessionCore[Session] | None = None
    _state: SessionState[Session] | None = None

    def _ensure_loaded(self) -> None:
        if self._loader is None:
            return
        try:
            anyio.from_thread.run(self._loader)
        except RuntimeError as exc:  # not in a worker thread: we are on the event loop
            raise SessionNotLoaded(
                "request.session was used before it was loaded. In async code, call "
                "`await load_session(request)` first, or add autoload=True to "
                "SessionMiddleware to load it for every request that has a session."
            ) from exc

    def mark_accessed(self) -> None:
        self._ensure_loaded()
        self.accessed = True

    def mark_modified(self) -> None:
        self.mark_accessed()
        self.modified = True

    # -- reads: load first ------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self._ensure_loaded()
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._ensure_loaded()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._ensure_loaded()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._ensure_loaded()
        return super().__iter__()

    def __len__(self) -> int:
        self._ensure_loaded()
        return super().__len__()

    def keys(self) -> Any:
        self._ensure_loaded()
        return super().keys()

    def values(self) -> Any:
        self._ensure_loaded()
        return super().values()

    def items(self) -> Any:
        self._ensure_loaded()
        return super().items()

    def copy(self) -> dict[str, Any]:
        self._ensure_loaded()
        return dict(super().items())

    def __repr__(self) -> str:
        return "Session(<not loaded>)" if self._loader else f"Session({super().__repr__()})"

    # -- writes: as Starlette's Session marks them -----------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self.mark_modified()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.mark_modified()
        super().__delitem__(key)

    def clear(self) -> None:
        self.mark_modified()
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        self._ensure_loaded()
        if super().__contains__(key):
            self.mark_modified()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self.mark_modified()
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._ensure_loaded()
        if not super().__contains__(key):
            self.mark_modified()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.mark_modified()
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> Session:  # type: ignore[override, misc]
        self.mark_modified()
        super().update(other)
        return self


class SessionMiddleware(SessionCommitMiddleware):
    """Starlette's ``SessionMiddleware`` interface, with the data kept in a backend.

    Every keyword of Starlette's middleware keeps its meaning: ``secret_key``,
    ``session_cookie``, ``max_age``, ``path``, ``same_site``, ``https_only``, ``domain`` and
    ``partitioned``. The differences are deliberate: the key must be at least 32 bytes;
    ``https_only`` defaults to ``True``; ``max_age`` must be positive or ``None``.

    Args:
        app: the ASGI app to wrap.
        secret_key: signing key(s), at least 32 bytes each; ``None`` reads
            ``SESSION_SECRET_KEY``.
        session_cookie: the cookie's name.
        max_age: seconds the cookie lasts (and, unless ``idle_timeout`` is given, the
            sliding server-side lifetime); ``None`` for a cookie that ends with the browser
            session.
        path: the cookie's path.
        same_site: ``"lax"``, ``"strict"`` or ``"none"``.
        https_only: mark the cookie ``Secure`` (the default: ``False`` is an insecure
            opt-in).
        domain: the cookie's domain.
        partitioned: mark the cookie ``Partitioned`` (CHIPS).
        backend: where the data lives; without one, a `MemoryBackend` (with a warning: its
            data is lost on restart and not shared between processes).
        idle_timeout: the sliding server-side lifetime; defaults to ``max_age``, or 14 days.
        absolute_timeout: the lifetime from creation, whatever the activity; ``None``.
        frontend: a ready-made frontend, instead of the cookie keywords above.
        autoload: load the session when each request starts (when it carries one), for
            async code that reads ``request.session`` or ``scope["session"]`` without
            ``await load_session(request)``. Otherwise the store is read only when the
            session is first used.
        concurrency: as for `SessionManager`. With ``"lock"``, a request holds the lock from
            the moment its session is loaded until its commit.
        on_backend_error: as for `SessionManager`.
        lock_timeout: as for `SessionManager`.
        lock_ttl: as for `SessionManager`.
        clock: seconds since the epoch; tests may pass a fake one.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: SecretKeys | None = None,
        session_cookie: str = "session",
        max_age: int | None = DEFAULT_MAX_AGE,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = True,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        backend: Backend | None = None,
        idle_timeout: float | timedelta | None = None,
        absolute_timeout: float | timedelta | None = None,
        frontend: Frontend | None = None,
        autoload: bool = False,
        concurrency: ConcurrencyPolicy = "merge",
        on_backend_error: BackendErrorPolicy = "fail",
        lock_timeout: float = 5.0,
        lock_ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_age is not None and not max_age > 0:
            raise ConfigurationError(
                f"max_age={max_age!r}: a session cookie that expires at once can never be "
                "used. Pass a positive number of seconds, or None for a browser-session "
                "cookie."
            )
        if frontend is None:
            frontend = CookieFrontend(
                secret_key,
                cookie_name=session_cookie,
                path=path,
                domain=domain,
                secure=https_only,
                samesite=same_site,
                partitioned=partitioned,
                persistent=max_age is not None,
            )
        elif secret_key is not None:
            raise ConfigurationError(
                "Pass either frontend=... or the cookie settings (secret_key, ...), not both."
            )
        if backend is None:
            logger.warning(
                "SessionMiddleware has no backend: using MemoryBackend, whose sessions are "
                "lost on restart and not shared between processes. Pass backend=... for "
                "production."
            )
            backend = MemoryBackend()
        core: SessionCore[Session] = SessionCore(
            DictSerializer(Session),
            frontend=frontend,
            backend=backend,
            idle_timeout=idle_timeout or max_age or DEFAULT_MAX_AGE,
            absolute_timeout=absolute_timeout,
            concurrency=concurrency,
            on_backend_error=on_backend_error,
            lock_timeout=lock_timeout,
            lock_ttl=lock_ttl,
            clock=clock,
        )
        super().__init__(app, core)
        self.autoload = autoload

    async def prepare(self, scope: Scope, slot: RequestSlot, send: Send) -> bool:
        token = self.core.frontend.read(HTTPConnection(scope))
        if token is None:
            # Nothing to load: an empty session, stored only if the app fills it.
            state = self.core.new_state()
            _bind(self.core, state, slot)
            scope["session"] = state.data
            return True
        session = Session()
        scope["session"] = session

        async def load() -> None:
            await _load(self.core, token, slot, session)

        session._loader = load
        if self.autoload:
            try:
                await load()
            except BackendUnavailable:
                await refuse_unavailable(scope, send)
                return False
            except SessionBusy:
                await refuse_unavailable(scope, send, BUSY_DETAIL)
                return False
        return True

    async def commit(
        self, state: SessionState[Any], headers: MutableHeaders, status: int, scope: Scope
    ) -> None:
        session: Session = state.data
        if not session.accessed:
            return  # the app never looked at it: no store call, no cookie, no Vary
        if state.key is not None and session.modified and not dict.__len__(session):
            # Emptied: end the session rather than keep an empty record (as Starlette
            # clears the cookie of an emptied session).
            self.core.destroy_state(state)
        await super().commit(state, headers, status, scope)


def _bind(core: SessionCore[Session], state: SessionState[Session], slot: RequestSlot) -> None:
    state.data._core = core
    state.data._state = state
    slot.state = state  # type: ignore[assignment]


async def _load(
    core: SessionCore[Session], token: VerifiedToken, slot: RequestSlot, session: Session
) -> None:
    state = await core.load_token(token)  # the middleware answers 503 for what escapes
    # The app already holds `session`: fill it in place and make it the state's data.
    dict.update(session, dict.items(state.data))
    state.data = session
    session._loader = None
    _bind(core, state, slot)


def _session_of(connection: HTTPConnection) -> Session:
    session = connection.scope.get("session")
    if not isinstance(session, Session):
        raise SessionError(
            "This request has no fastapi-session-deps session: add "
            "`app.add_middleware(SessionMiddleware, ...)` from fastapi_session_deps."
        )
    return session


def _bound(session: Session) -> tuple[SessionCore[Session], SessionState[Session]]:
    if session._core is None or session._state is None:  # pragma: no cover - set on load
        raise SessionError("The session is not bound to a request.")
    return session._core, session._state


async def load_session(connection: HTTPConnection) -> Session:
    """Load ``request.session`` from the store if it is not loaded yet, and return it.

    Raises:
        BackendUnavailable: the store could not be read.
    """
    session = _session_of(connection)
    if session._loader is not None:
        await session._loader()
    session.mark_accessed()
    return session


async def regenerate_session(connection: HTTPConnection) -> None:
    """Move the request's session to a new id, keeping its data (do it at log-in).

    The same as `SessionManager.regenerate`: the new record is written, and the old one
    deleted, when the response starts.
    """
    core, state = _bound(await load_session(connection))
    core.regenerate_state(state)


async def destroy_session(connection: HTTPConnection) -> None:
    """End the request's session: delete its record and expire the cookie (log-out).

    The same as `SessionManager.destroy`: the dictionary is emptied in place, and anything
    stored in it afterwards starts a new session under a new id.
    """
    core, state = _bound(await load_session(connection))
    core.destroy_state(state)
