"""A drop-in for Starlette's `SessionMiddleware`, with the data kept server-side.

```python
# from starlette.middleware.sessions import SessionMiddleware
from fastapi_session_deps import MemoryBackend, SessionMiddleware

app.add_middleware(SessionMiddleware, secret_key=..., backend=MemoryBackend())
```

``request.session`` stays a plain dictionary; what changes is that the cookie carries only
a signed id, and the data lives in the backend. It shares every part of the typed API:
frontends, backends, signing, expiry and the commit point.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, Literal, NoReturn, TypeVar, cast

import anyio.from_thread
from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ._cleanup import cleaning
from ._engine import Fate, RequestSlot, SessionEngine, SessionState, state_of
from ._http import send_retry_later
from ._starlette_settings import (
    COOKIE_SETTINGS,
    DEFAULT,
    DEFAULT_IDENTITY_KEYS,
    DEFAULT_MAX_AGE,
    compiled_pattern,
    identity_key_set,
    positive,
    resolve,
)
from .backends.base import Backend
from .backends.memory import MemoryBackend
from .exceptions import BackendUnavailable, ConfigurationError, SessionBusy, SessionError
from .frontends.base import Frontend
from .frontends.cookie import CookieFrontend, Secure
from .middleware import SessionCommitMiddleware
from .policy import SessionPolicy
from .serializers import DictSerializer
from .signing import SecretKeys
from .users import UserSessions, client_of

__all__ = [
    "DEFAULT_IDENTITY_KEYS",
    "Session",
    "SessionAutoloadMiddleware",
    "SessionMiddleware",
    "SessionNotLoaded",
    "destroy_session",
    "get_session_remaining_seconds",
    "load_session",
    "login_session",
    "regenerate_session",
    "set_session_lifetime",
    "user_sessions",
]

logger = logging.getLogger("fastapi_session_deps")


class SessionNotLoaded(SessionError, RuntimeError):
    """``request.session`` was used in async code before its data was loaded."""


F = TypeVar("F", bound=Callable[..., Any])


def _loads_first(method: F) -> F:
    """``method`` of dict, made to load the session first (see `SessionDict`)."""

    @functools.wraps(method)
    def loading(self: SessionDict, *args: Any, **kwargs: Any) -> Any:
        self._ensure_loaded()
        return method(self, *args, **kwargs)

    return cast("F", loading)


class SessionDict(dict[str, Any]):
    """The ``request.session`` dictionary (also importable as ``Session``, its former name).

    It tracks ``accessed`` and ``modified`` as Starlette's does, though saving relies on
    neither: at commit every value is compared with the stored one, so in-place edits of
    nested lists and dicts are saved too.

    With ``autoload=False``, while its data has not been loaded from the store yet, any use
    loads it first: at once in a worker thread (sync endpoints), or by raising
    `SessionNotLoaded` on the event loop, where the fix is ``await load_session(request)``
    or the default ``autoload=True``.
    """

    accessed: bool = False
    modified: bool = False
    #: Loads the data when called from a worker thread; ``None`` once loaded.
    _loader: Callable[[], Any] | None = None

    def _ensure_loaded(self) -> None:
        if self._loader is None:
            return
        try:
            anyio.from_thread.run(self._loader)
        except RuntimeError:  # not in a worker thread: we are on the event loop
            raise SessionNotLoaded(
                "request.session was used before it was loaded, and SessionMiddleware was "
                "given autoload=False. In async code, call `await load_session(request)` "
                "first, or drop autoload=False (autoload=True, the default, loads it for "
                "every request that has a session)."
            ) from None  # anyio's "not a worker thread" would only hide the fix

    def mark_accessed(self) -> None:
        self._ensure_loaded()
        self.accessed = True

    def mark_modified(self) -> None:
        self.mark_accessed()
        self.modified = True

    # -- reads: load first ------------------------------------------------------------------

    __getitem__ = _loads_first(dict.__getitem__)
    get = _loads_first(dict.get)
    __contains__ = _loads_first(dict.__contains__)
    __iter__ = _loads_first(dict.__iter__)
    __len__ = _loads_first(dict.__len__)
    keys = _loads_first(dict.keys)
    values = _loads_first(dict.values)
    items = _loads_first(dict.items)

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
        self._ensure_loaded()
        item = super().popitem()
        self.mark_modified()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._ensure_loaded()
        if not super().__contains__(key):
            self.mark_modified()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.mark_modified()
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> SessionDict:  # type: ignore[override, misc]
        self.mark_modified()
        super().update(other)
        return self


#: The former name of `SessionDict`, kept for code that imports it.
Session = SessionDict


class _StarletteCookieFrontend(CookieFrontend):
    """A `CookieFrontend` whose ``Set-Cookie`` is spelled exactly as Starlette's middleware
    writes it (``path=/; Max-Age=...; httponly; samesite=lax``), since apps' own tests assert
    on that text. ``max_age`` may be zero or negative, as there: the cookie then expires at
    once, and so does the session.
    """

    def __init__(
        self, secret_key: SecretKeys | None, *, max_age: float | timedelta | None, **options: Any
    ) -> None:
        super().__init__(secret_key, persistent=max_age is not None, **options)
        if isinstance(max_age, timedelta):
            max_age = max_age.total_seconds()
        if max_age is not None and (
            not isinstance(max_age, (int, float)) or isinstance(max_age, bool)
        ):
            raise ConfigurationError(
                f"max_age={max_age!r}: pass a number of seconds (or a timedelta), or None."
            )
        self.max_age = None if max_age is None else float(max_age)

    def _set_header(self, token: str, max_age: int | None, secure: bool) -> str:
        age = [] if max_age is None else [f"Max-Age={max_age}"]
        return "; ".join(
            [f"{self.cookie_name}={token}", f"path={self.path}", *age, *self._flags(secure)]
        )

    def _clear_header(self, secure: bool) -> str:
        return "; ".join(
            [
                f"{self.cookie_name}=null",
                f"path={self.path}",
                "expires=Thu, 01 Jan 1970 00:00:00 GMT",
                *self._flags(secure),
            ]
        )

    def _flags(self, secure: bool) -> list[str]:
        flags = ["httponly"] if self.httponly else []
        flags.append(f"samesite={self.samesite}")
        if secure:
            flags.append("secure")
        if self.domain is not None:
            flags.append(f"domain={self.domain}")
        if self.partitioned:
            flags.append("partitioned")
        return flags


class SessionMiddleware(SessionCommitMiddleware):
    """Starlette's ``SessionMiddleware`` interface, with the data kept in a backend.

    Every keyword of Starlette's middleware keeps its meaning (``secret_key``,
    ``session_cookie``, ``max_age``, ``path``, ``same_site``, ``https_only``, ``domain``,
    ``partitioned``), and so do starsessions' spellings (``cookie_name``,
    ``cookie_same_site``, ``cookie_https_only``, ``cookie_domain``, ``cookie_path``,
    ``lifetime``, ``rolling``, ``store``) and the tutorial's (``autoload_cookie``). Giving
    two spellings of one setting is a `ConfigurationError` naming both.

    The deliberate differences: the key must be at least 32 bytes, and ``https_only``
    defaults to ``"auto"`` (``Secure`` whenever the request came over HTTPS).

    A refused configuration (a short key, an unknown keyword, an insecure combination) does
    not raise here: Starlette builds middleware lazily, at the first event the app gets, where
    an exception would pass for "lifespan not supported" and turn into a 500 on every
    request. Instead the app's start-up fails with the message (uvicorn exits with it), and a
    request served without a lifespan raises it.

    Args:
        app: the ASGI app to wrap.
        secret_key: signing key(s), ``str`` or ``bytes``, at least 32 bytes each; ``None``
            reads ``SESSION_SECRET_KEY``.
        session_cookie: the cookie's name (default ``"session"``); also ``cookie_name``.
        max_age: seconds the cookie lasts (default 14 days), and, unless ``idle_timeout``
            is given, the sliding server-side lifetime; ``None`` for a cookie that ends with
            the browser session; zero or less for a session that expires at once, as in
            Starlette. starsessions' ``lifetime`` spells it too, with 0 meaning ``None``.
        path: the cookie's path (default ``"/"``); also ``cookie_path``.
        same_site: ``"lax"`` (the default), ``"strict"`` or ``"none"``; also
            ``cookie_same_site``.
        https_only: ``"auto"`` (the default): mark the cookie ``Secure`` whenever the
            request arrived over HTTPS; ``True``: always; ``False``: never (an insecure
            opt-in). Also ``cookie_https_only``.
        domain: the cookie's domain; also ``cookie_domain``.
        partitioned: mark the cookie ``Partitioned`` (CHIPS).
        backend: where the data lives; without one, a `MemoryBackend` (with a warning: its
            data is lost on restart and not shared between processes). Also ``store``.
        rolling: starsessions' switch: ``False`` ends a session ``max_age`` (``lifetime``)
            after its creation, whatever the activity (the default when ``lifetime`` is
            given); ``True`` slides it with activity (the default otherwise).
        frontend: a ready-made frontend, instead of the cookie keywords above.
        identity_keys: the ``request.session`` keys that say who the session belongs to.
            When one of them is set, changed or removed (a log-in, a log-out), the session
            moves to a new id at commit, as `regenerate_session` moves it, so that log-in
            code that never calls that (starlette-login's, sqladmin's, authlib's, most
            hand-written ones) is not open to session fixation. ``True`` (the default):
            `DEFAULT_IDENTITY_KEYS`; a collection of keys instead
            (``[*DEFAULT_IDENTITY_KEYS, "member_id"]`` adds one); ``False`` turns it off.
        autoload: load the session as each request starts, when it carries a session
            cookie, so that async code can use ``request.session`` (and
            ``scope["session"]``) directly, as with Starlette's middleware. This is the
            default; it costs one store read for such a request even if the route never
            touches the session. ``False`` loads lazily: sync endpoints load on first use,
            and async code must ``await load_session(request)`` first (or have
            `SessionAutoloadMiddleware` do it for some paths). Also ``autoload_cookie``.
            Either way, a request to a mounted `StaticFiles` app (found at start-up)
            never reads the store.
        lazy_paths: with ``autoload``, paths whose requests load the session lazily, as
            with ``autoload=False``: regular expressions (strings or compiled) matched at
            the start of the path, as ``SessionAutoloadMiddleware``'s ``paths`` are. For
            health probes and other routes that never touch the session, which then cost
            no store read.
        **settings: the other spellings above, and the `SessionPolicy` settings by name
            (as for `SessionManager`). ``idle_timeout`` defaults to ``max_age`` (or 14 days
            when that is ``None``). With ``concurrency="lock"``, a request holds the lock
            from the moment its session is loaded until its commit; with ``autoload``,
            that is every request that carries a session cookie, used or not
            (``autoload=False`` with `SessionAutoloadMiddleware` ``paths`` narrows it).

    Attributes:
        app: the wrapped ASGI app.
        engine: the session engine (frontend, backend, policy) it commits with.
        autoload: whether sessions are loaded as requests start.
        identity_keys: the keys whose change moves the session to a new id.
        lazy_paths: where sessions load lazily: ``lazy_paths``, and the paths of the
            `StaticFiles` apps mounted in the app (found at its first event).
        refusal: the `ConfigurationError` that stops the app's start-up, or ``None``.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: SecretKeys | None = None,
        session_cookie: str = DEFAULT,
        max_age: int | None = DEFAULT,
        path: str = DEFAULT,
        same_site: Literal["lax", "strict", "none"] = DEFAULT,
        https_only: Secure = DEFAULT,
        domain: str | None = DEFAULT,
        partitioned: bool = False,
        *,
        backend: Backend | None = DEFAULT,
        rolling: bool = DEFAULT,
        frontend: Frontend | None = None,
        autoload: bool = DEFAULT,
        identity_keys: Iterable[str] | bool = True,
        lazy_paths: Sequence[str | re.Pattern[str]] = (),
        **settings: Any,
    ) -> None:
        self.app = app
        self.refusal: ConfigurationError | None = None
        #: Where sessions load lazily: ``lazy_paths``, then the mounted static files.
        self.lazy_paths: list[re.Pattern[str]] = []
        self._mounts_found = False
        given = {
            name: value
            for name, value in (
                ("session_cookie", session_cookie),
                ("max_age", max_age),
                ("path", path),
                ("same_site", same_site),
                ("https_only", https_only),
                ("domain", domain),
                ("backend", backend),
                ("rolling", rolling),
                ("autoload", autoload),
            )
            if value is not DEFAULT
        }
        try:
            chosen, policy_settings = resolve(given, settings)
            frontend = _frontend(frontend, secret_key, partitioned, chosen)
            # Starlette's max_age is also the sliding lifetime, unless idle_timeout is given.
            lifetime = positive(chosen.get("max_age", DEFAULT_MAX_AGE)) or DEFAULT_MAX_AGE
            policy = SessionPolicy.from_settings({"idle_timeout": lifetime, **policy_settings})
            self.identity_keys = identity_key_set(identity_keys)
            self.lazy_paths = [compiled_pattern(path, "lazy_paths") for path in lazy_paths]
            self._serializer = DictSerializer(SessionDict)
            engine: SessionEngine[SessionDict] = SessionEngine(
                self._serializer,
                frontend=frontend,
                backend=_backend(chosen.get("backend")),
                policy=policy,
            )
        except ConfigurationError as exc:
            self.refusal = exc
            return
        super().__init__(app, engine, self._load_up_front, self._should_commit_session)
        self.autoload: bool = chosen.get("autoload", True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.refusal is not None:
            await refuse_to_start(scope, receive, send, self.refusal)
        if not self._mounts_found:
            self._mounts_found = True
            self.lazy_paths += _static_mounts(scope.get("app"))
        if scope["type"] == "lifespan":
            scope[INSTALLED] = True  # for a SessionAutoloadMiddleware inside this one
            # The app's lifespan runs as long as the app: clean while it does.
            async with cleaning(self.engine.backend, self.engine.policy.cleanup_interval):
                await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _load_up_front(self, scope: Scope, slot: RequestSlot, send: Send) -> bool:
        engine = self.engine
        token = engine.frontend.read(HTTPConnection(scope))
        if token is None:
            # Nothing to load: an empty session, stored only if the app fills it.
            slot.state = engine.new_state()
            engine.bind(slot.state)
            scope["session"] = slot.state.data
            return True
        session = SessionDict()
        scope["session"] = session

        async def load() -> None:
            state = await engine.load(token, readonly=False)  # 503s are the caller's
            # The app already holds `session`: fill it in place, and make it the state's.
            engine.forget(state)
            dict.update(session, dict.items(state.data))
            state.data = session
            session._loader = None
            engine.bind(state)
            slot.state = state

        session._loader = load
        if self.autoload and not self._lazy(scope):
            return await load_or_refuse(scope, send, session)
        return True

    def _lazy(self, scope: Scope) -> bool:
        """Whether the request's path is one where the session loads lazily."""
        if not self.lazy_paths:
            return False
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return any(pattern.match(path) for pattern in self.lazy_paths)

    def _should_commit_session(self, state: SessionState[Any]) -> bool:
        session: SessionDict = state.data
        if not session.accessed and state.meta is state.loaded_meta:
            # The app never looked at it, and no helper (flash, CSRF) changed a field of the
            # library's own: no store call, no cookie, no Vary. (Starlette before 0.39 does
            # not mark the session accessed on ``request.session`` alone.)
            return False
        if state.origin is None:
            return True  # a new session: stored under an id no one has seen
        if session.modified and not dict.__len__(session):
            # Emptied: end the session rather than keep an empty record (as Starlette
            # clears the cookie of an emptied session).
            self.engine.destroy(state)
        elif state.fate in (Fate.KEEP, Fate.RENEW) and self._identity_changed(state):
            # Who the session belongs to changed (a log-in, a log-out) without a call of
            # regenerate_session, as in the log-ins of third-party libraries: moved to a
            # new id all the same, or an id planted before the log-in would ride along.
            self.engine.regenerate(state)
        return True

    def _identity_changed(self, state: SessionState[Any]) -> bool:
        """Whether an identity key was set, changed or removed since the session was
        loaded."""
        session, loaded, dump = state.data, state.snapshot, self._serializer.dump_value
        for key in self.identity_keys:
            now = dump(dict.__getitem__(session, key)) if dict.__contains__(session, key) else None
            if now != loaded.get(key):
                return True
        return False


def _static_mounts(app: object, prefix: str = "") -> list[re.Pattern[str]]:
    """The paths of the `StaticFiles` apps mounted in ``app`` (the app a lifespan or a
    request names in its scope), at any depth of mounted routers: they never read the
    session, so their requests need no store read."""
    found: list[re.Pattern[str]] = []
    for route in getattr(app, "routes", None) or ():
        if not isinstance(route, Mount):
            continue
        path = prefix + route.path
        if isinstance(route.app, StaticFiles):
            found.append(re.compile(re.escape(path) + "(?:/|$)"))
        else:
            found += _static_mounts(route.app, path)
    return found


def _frontend(
    frontend: Frontend | None,
    secret_key: SecretKeys | None,
    partitioned: bool,
    chosen: dict[str, Any],
) -> Frontend:
    """The frontend given, or the cookie the settings describe; not both."""
    if frontend is None:
        return _StarletteCookieFrontend(
            secret_key,
            cookie_name=chosen.get("session_cookie", "session"),
            max_age=chosen.get("max_age", DEFAULT_MAX_AGE),
            path=chosen.get("path", "/"),
            domain=chosen.get("domain"),
            secure=chosen.get("https_only", "auto"),
            samesite=chosen.get("same_site", "lax"),
            partitioned=partitioned,
        )
    if secret_key is not None or partitioned or set(chosen) & COOKIE_SETTINGS:
        raise ConfigurationError(
            "Pass either frontend=... or the cookie settings (secret_key, "
            "session_cookie, max_age, ...), not both."
        )
    return frontend


#: A marker a `SessionMiddleware` leaves in the lifespan scope for the middleware inside it.
INSTALLED = "fastapi_session_deps.session_middleware"


def _backend(backend: Backend | None) -> Backend:
    if backend is not None:
        return backend
    logger.warning(
        "SessionMiddleware has no backend: using MemoryBackend, whose sessions are lost on "
        "restart and not shared between processes. Pass backend=... for production.",
        extra={"event": "memory_store_default"},
    )
    return MemoryBackend()


class SessionAutoloadMiddleware:
    """Loads ``request.session`` before the app runs, so async code can use it directly.

    Two uses, one class:

    - **Beside `SessionMiddleware`** (starsessions' use): added *before* it, so that it runs
      inside it, it loads the session for the paths given (all when ``paths`` is empty), for
      a `SessionMiddleware` created with ``autoload=False``::

          app.add_middleware(SessionAutoloadMiddleware, paths=["/admin", re.compile("/api/.*")])
          app.add_middleware(SessionMiddleware, secret_key=..., autoload=False)

    - **On its own** (the tutorial's use): given any `SessionMiddleware` setting
      (``secret_key=``, ``backend=``, ``cookie_name=``...), it *is* a session middleware
      that loads the session up front, for ``paths`` or for every request::

          app.add_middleware(SessionAutoloadMiddleware, secret_key=SECRET_KEY)

    Args:
        app: the ASGI app to wrap.
        paths: regular expressions (strings or compiled), matched at the start of the
            request path as starsessions matches them; empty or ``None`` for every path.
        **session_settings: `SessionMiddleware` keywords, for the use on its own.
    """

    def __init__(
        self,
        app: ASGIApp,
        paths: Sequence[str | re.Pattern[str]] | None = None,
        **session_settings: Any,
    ) -> None:
        self.app: ASGIApp = app
        self.refusal: ConfigurationError | None = None
        self.patterns: list[re.Pattern[str]] = []
        try:
            self.patterns = [compiled_pattern(path) for path in paths or ()]
            if "autoload" in session_settings or "autoload_cookie" in session_settings:
                raise ConfigurationError(
                    "SessionAutoloadMiddleware always loads: drop autoload= (use paths= to "
                    "choose where)."
                )
        except ConfigurationError as exc:
            self.refusal = exc
        self.standalone: SessionMiddleware | None = None
        if session_settings and self.refusal is None:
            # On its own: a SessionMiddleware around this loader, which then always finds
            # a session to load.
            loader = SessionAutoloadMiddleware(app, paths)
            self.standalone = SessionMiddleware(loader, autoload=False, **session_settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.refusal is not None:
            await refuse_to_start(scope, receive, send, self.refusal)
        if self.standalone is not None:
            await self.standalone(scope, receive, send)
            return
        if scope["type"] == "lifespan" and not scope.get(INSTALLED):
            await refuse_to_start(scope, receive, send, _no_session_middleware())
        if scope["type"] in ("http", "websocket") and self._wanted(scope["path"]):
            session = scope.get("session")
            if not isinstance(session, SessionDict):
                raise _no_session_middleware()
            if not await load_or_refuse(scope, send, session):
                return
        await self.app(scope, receive, send)

    def _wanted(self, path: str) -> bool:
        return not self.patterns or any(pattern.match(path) for pattern in self.patterns)


def _no_session_middleware() -> ConfigurationError:
    return ConfigurationError(
        "SessionAutoloadMiddleware without session settings loads the session of a "
        "fastapi_session_deps SessionMiddleware around it, and there is none: add "
        "`app.add_middleware(SessionMiddleware, ...)` after it (so that it runs first), or "
        "give SessionAutoloadMiddleware the settings (secret_key=..., backend=...) to use it "
        "on its own."
    )


async def load_or_refuse(scope: Scope, send: Send, session: SessionDict) -> bool:
    """Load ``session`` now; on a store fault answer "try again later" and return ``False``."""
    if session._loader is None:
        return True
    try:
        await session._loader()
    except (BackendUnavailable, SessionBusy) as exc:
        await send_retry_later(scope, send, exc)
        return False
    return True


async def refuse_to_start(
    scope: Scope, receive: Receive, send: Send, error: ConfigurationError
) -> NoReturn:
    """Fail the app's start-up with ``error`` (or, outside a lifespan, raise it).

    The server logs the message and stops (uvicorn exits with status 3); raising it too
    lets a test client's start-up raise it.
    """
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup, always the first message
        await send({"type": "lifespan.startup.failed", "message": str(error)})
    raise error


def _session_of(connection: HTTPConnection) -> SessionDict:
    session = connection.scope.get("session")
    if not isinstance(session, SessionDict):
        raise SessionError(
            "This request has no fastapi-session-deps session: add "
            "`app.add_middleware(SessionMiddleware, ...)` from fastapi_session_deps."
        )
    return session


async def loaded_state(connection: HTTPConnection) -> SessionState[SessionDict]:
    """The state of the request's session, loaded first if need be (for the helpers that
    act on ``request.session``: `regenerate_session`, `csrf_token`, ...)."""
    state = state_of(await load_session(connection))
    if state is None:  # pragma: no cover - the middleware binds every session it loads
        raise SessionError("The session is not bound to a request.")
    return state


async def load_session(connection: HTTPConnection) -> SessionDict:
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
    state = await loaded_state(connection)
    state.engine.regenerate(state)


async def destroy_session(connection: HTTPConnection) -> None:
    """End the request's session: delete its record and expire the cookie (log-out).

    The same as `SessionManager.destroy`: the dictionary is emptied in place, and anything
    stored in it afterwards starts a new session under a new id.
    """
    state = await loaded_state(connection)
    state.engine.destroy(state)


async def set_session_lifetime(
    connection: HTTPConnection,
    *,
    idle: float | timedelta | None = None,
    absolute: float | timedelta | Literal["default"] | None = "default",
    persistent: bool | None = None,
) -> None:
    """Give the request's session a lifetime of its own ("Keep me signed in").

    The same as `SessionManager.set_lifetime`, with the same bounds (``max_idle_timeout``
    and ``max_absolute_timeout`` among the middleware's settings): ``idle`` and
    ``absolute`` in seconds or as timedeltas, and ``persistent=False`` for a cookie that
    ends with the browser.
    """
    state = await loaded_state(connection)
    state.engine.choose_lifetime(state, idle=idle, absolute=absolute, persistent=persistent)


async def get_session_remaining_seconds(connection: HTTPConnection) -> int:
    """Seconds the request's session has left if it is not used again (starsessions'
    spelling): by its idle timeout, or its absolute one if that comes first."""
    state = await loaded_state(connection)
    return int(state.engine.describe_lifetime(state).seconds_left)


async def login_session(connection: HTTPConnection, user: str) -> None:
    """Log ``user`` in on the request's session: bind it to them and move it to a new id.

    The same as `SessionManager.login` (needs ``user_index=True``); the client's address
    and user agent are recorded when ``record_client`` is on.
    """
    state = await loaded_state(connection)
    address, user_agent = client_of(connection)
    state.engine.log_in(state, user, address=address, user_agent=user_agent)


async def user_sessions(connection: HTTPConnection) -> UserSessions:
    """List and revoke users' sessions through the store of the request's middleware
    (needs ``user_index=True``): ``await (await user_sessions(request)).list(user)``."""
    state = await loaded_state(connection)
    return UserSessions(state.engine)
