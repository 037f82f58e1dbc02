"""`SessionManager`: the typed API, wired from a model, a frontend and a backend."""

# No `from __future__ import annotations` here: FastAPI reads the dependencies' signatures
# at runtime.
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp

from ._cleanup import cleaning
from ._engine import SessionEngine, SessionState, state_of
from ._http import local_path
from .backends.base import Backend, ping
from .dependencies import SecuredSessionDependency, SessionDependency
from .exceptions import ConfigurationError, MissingMiddlewareError, SessionError
from .frontends.base import Frontend
from .middleware import SessionCommitMiddleware
from .models import SessionModel
from .policy import PolicySettings, SessionLifetime, SessionPolicy
from .serializers import ModelSerializer
from .users import UserSessions, client_of

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover - Python 3.10: pydantic's own dependency
    from typing_extensions import Unpack

__all__ = ["SessionManager"]

M = TypeVar("M", bound=SessionModel)

logger = logging.getLogger("fastapi_session_deps")


class SessionManager(Generic[M]):
    """Typed server-side sessions: a model, a frontend, a backend and a policy.

    ```python
    sessions = SessionManager(
        UserSession,
        frontend=CookieFrontend(secret_key=..., secure=False),
        backend=MemoryBackend(),
        idle_timeout=1800,
        absolute_timeout=86400,
    )
    app = FastAPI(lifespan=sessions.lifespan)
    app.add_middleware(sessions.middleware)
    Session = Annotated[UserSession, Depends(sessions.get_session)]
    ```

    Args:
        model: your `SessionModel` subclass; every field needs a default.
        frontend: how the signed id travels, e.g. `CookieFrontend`.
        backend: where the data lives, e.g. `MemoryBackend` or `RedisBackend`.
        login_url: where `require_session` and every `verifier` send a *browser* that is
            turned away (303, with ``?next=`` the page it asked for, on a GET), rather than
            answering 401 or 403: for HTML apps. Scripts and API clients (an ``Accept``
            without ``text/html`` first) still get the status. A local path, such as
            ``"/login"``; ``None`` (the default) never redirects.
        **settings: the `SessionPolicy` settings, by name: ``idle_timeout`` (1800 s),
            ``absolute_timeout`` (``None``), ``max_idle_timeout`` and
            ``max_absolute_timeout`` (the bounds of `set_lifetime`: by default the two
            above), ``concurrency`` (``"merge"`` or ``"lock"``),
            ``on_backend_error`` (``"fail"`` or ``"anonymous"``), ``lock_timeout`` (5 s),
            ``lock_ttl`` (30 s), ``max_record_bytes`` (64 KiB), ``cleanup_interval``
            (``None``), ``user_index`` (off), ``record_client`` (off),
            ``max_user_sessions`` (``None``), ``on_event``, ``telemetry`` (off) and
            ``clock``. See `SessionPolicy` for what each does.

    Attributes:
        login_url: the ``login_url`` given.
        model: the session model.
        frontend: the frontend.
        backend: the backend.
        policy: the `SessionPolicy` built from the settings.
        engine: the engine that loads and commits the sessions, read-only; for tools
            (the command line, `fastapi_session_deps.testing`), not a stable interface.

    Raises:
        ConfigurationError: an invalid model, setting or combination.
    """

    def __init__(
        self,
        model: type[M],
        *,
        frontend: Frontend,
        backend: Backend,
        login_url: str | None = None,
        **settings: Unpack[PolicySettings],
    ) -> None:
        self.login_url = _redirect_target(login_url, "login_url")
        self._engine: SessionEngine[M] = SessionEngine(
            ModelSerializer(model),
            frontend=frontend,
            backend=backend,
            policy=SessionPolicy.from_settings(settings),
        )
        self.model = model
        self.frontend = frontend
        self.backend = backend
        self.policy = self._engine.policy
        self._users = UserSessions(self._engine)
        self._get_session = self._dependency("get_session")
        self._get_session_readonly = self._dependency("get_session_readonly", readonly=True)
        self._require_session = self._dependency("require_session", required=True)

    def __repr__(self) -> str:
        return (
            f"SessionManager({self.model.__name__}, frontend={self.frontend!r}, "
            f"backend={self.backend!r}, idle_timeout={self.idle_timeout:g}, "
            f"absolute_timeout={self.absolute_timeout!r})"
        )

    @property
    def engine(self) -> SessionEngine[M]:
        """The engine that loads and commits this manager's sessions (for tools, such as
        the command line and `fastapi_session_deps.testing`; not a stable interface)."""
        return self._engine

    @property
    def idle_timeout(self) -> float:
        """Seconds of inactivity after which a session ends (``policy.idle_timeout``)."""
        return self.policy.idle_timeout

    @property
    def absolute_timeout(self) -> float | None:
        """Seconds after creation at which a session ends (``policy.absolute_timeout``)."""
        return self.policy.absolute_timeout

    # -- dependencies ----------------------------------------------------------------------
    #
    # Built once per manager; each is the frontend's security scheme too, so that the
    # OpenAPI schema lists it on every route that uses a session.

    @property
    def get_session(self) -> SessionDependency[M]:
        """Dependency: the request's session, or a new empty one.

        A new session is stored, and its cookie set, only if the route changes it.
        """
        return self._get_session

    @property
    def get_session_readonly(self) -> SessionDependency[M]:
        """Dependency: the request's session, for a route that only reads it.

        It never takes the session lock (``concurrency="lock"``) and is never saved; a
        change made to it is dropped, with a warning in the log.
        """
        return self._get_session_readonly

    @property
    def require_session(self) -> SessionDependency[M]:
        """Dependency: the request's session; 401 if it has no valid, live one, or one that
        holds nothing of the app's (only the library's own fields, such as a CSRF secret,
        and no user). With ``login_url``, a browser is sent there instead."""
        return self._require_session

    def verifier(
        self,
        check: Callable[[M], bool | Awaitable[bool]],
        status_code: int = 403,
        *,
        readonly: bool = False,
        redirect_to: str | None = None,
    ) -> SessionDependency[M]:
        """Build a dependency that returns the session when ``check(session)`` is true.

        ```python
        logged_in = sessions.verifier(lambda s: s.user_id is not None)

        @app.get("/account")
        async def account(session: Annotated[UserSession, Depends(logged_in)]): ...
        ```

        Args:
            check: a function of the session, sync or async, true to let the request in.
            status_code: the answer when the check is false (403 by default). A request with
                no valid session gets 401 before the check runs.
            readonly: the route only reads the session (see `get_session_readonly`).
            redirect_to: where a browser turned away is sent instead (303); the manager's
                ``login_url`` when not given.
        """
        return self._dependency(
            "verify_session",
            readonly=readonly,
            required=True,
            check=check,
            status_code=status_code,
            redirect_to=_redirect_target(redirect_to, "redirect_to"),
        )

    def _dependency(
        self,
        name: str,
        *,
        readonly: bool = False,
        required: bool = False,
        check: Callable[[M], bool | Awaitable[bool]] | None = None,
        status_code: int = 403,
        redirect_to: str | None = None,
    ) -> SessionDependency[M]:
        options: dict[str, Any] = {
            "readonly": readonly,
            "required": required,
            "check": check,
            "status_code": status_code,
            "redirect_to": redirect_to or (self.login_url if required else None),
        }
        scheme = self.frontend.security_scheme
        if scheme is None:
            return SessionDependency(self._engine, name, **options)
        return SecuredSessionDependency(scheme, self._engine, name, **options)

    # -- operations on a session -----------------------------------------------------------

    async def regenerate(self, session: M) -> None:
        """Give the session a new id, keeping its data; the old id stops working.

        Call it whenever privileges change (log-in, sudo mode) so that an id an attacker
        planted or saw before cannot ride along: the defence against session fixation. The
        new record is written, and the old one deleted, when the response starts.
        """
        self._engine.regenerate(self._state_of(session))

    async def login(self, session: M, user: str, request: HTTPConnection | None = None) -> None:
        """Log ``user`` in: bind the session to them and move it to a new id (the fixation
        defence), in one step. Needs ``user_index=True``.

        The session then appears in ``sessions.users.list(user)`` and can be revoked. Pass
        the ``request`` to record its client's address and user agent (``record_client``).
        """
        address, user_agent = (None, None) if request is None else client_of(request)
        self._engine.log_in(self._state_of(session), user, address=address, user_agent=user_agent)

    async def set_lifetime(
        self,
        session: M,
        *,
        idle: float | timedelta | None = None,
        absolute: float | timedelta | Literal["default"] | None = "default",
        persistent: bool | None = None,
    ) -> None:
        """Give this session a lifetime of its own: a "Keep me signed in" box.

        ```python
        if form.remember:
            await sessions.set_lifetime(session, idle=timedelta(days=30), persistent=True)
        else:
            await sessions.set_lifetime(session, persistent=False)  # ends with the browser
        await sessions.login(session, user.id)
        ```

        The choice lives in the session's record, so every store's expiry, the token's
        age check and the cookie's ``Max-Age`` follow it from this response on. It goes
        with the session to a new id (`regenerate`, `login`: call this before or after,
        it ends the same) and ends with it (`destroy`). Calling it again replaces it;
        with no arguments it gives the session back the app's settings.

        Args:
            idle: seconds (or a timedelta) of inactivity after which it ends; at most the
                app's ``max_idle_timeout``. ``None``: the app's ``idle_timeout``.
            absolute: seconds after its creation at which it ends, however active it is;
                at most ``max_absolute_timeout``; ``None`` for no limit (only where the app
                sets none). ``"default"``: the app's ``absolute_timeout``.
            persistent: ``True``: its cookie carries a ``Max-Age`` and survives the
                browser's restarts; ``False``: the browser drops it when it closes (the
                idle timeout still applies on the server). ``None``: as the frontend does.

        Raises:
            ConfigurationError: a lifetime beyond the app's bounds, or an absolute
                timeout shorter than the idle one; the message names the setting.
        """
        self._engine.choose_lifetime(
            self._state_of(session), idle=idle, absolute=absolute, persistent=persistent
        )

    def lifetime(self, session: M) -> SessionLifetime:
        """How long ``session`` lives: the app's settings, or what `set_lifetime` chose."""
        return self._engine.describe_lifetime(self._state_of(session))

    def user_of(self, session: M) -> str | None:
        """The user `login` bound ``session`` to, or ``None`` (not logged in that way).

        `login` keeps the user beside the session's data, not in your model: read it back
        with this, or also set a field of your own at log-in.
        """
        return self._state_of(session).owner

    @property
    def users(self) -> UserSessions:
        """List and revoke a user's sessions (needs ``user_index=True``)."""
        return self._users

    async def destroy(self, session: M) -> None:
        """End the session: delete its record and expire the cookie (log-out).

        The session is emptied in place; if the route stores something in it afterwards (a
        "goodbye" message, say) that starts a new session under a new id.
        """
        self._engine.destroy(self._state_of(session))

    def _state_of(self, session: M) -> SessionState[M]:
        state = state_of(session)
        if state is None or state.engine is not self._engine:
            raise SessionError(
                "This object did not come from a session dependency: pass the session your "
                "route received from Depends(sessions.get_session)."
            )
        return state

    # -- app wiring ------------------------------------------------------------------------

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Middleware factory for ``app.add_middleware(sessions.middleware)``: the commit point."""
        return SessionCommitMiddleware(app, self._engine)

    def lifespan(self, app: object) -> AbstractAsyncContextManager[None]:
        """Lifespan for ``FastAPI(lifespan=sessions.lifespan)``: closes the backend at
        shutdown, and with ``cleanup_interval`` deletes expired records while the app runs.

        To combine it with a lifespan of your own, enter it inside yours:
        ``async with sessions.lifespan(app): yield``.
        """
        return self._lifespan(app)

    @asynccontextmanager
    async def _lifespan(self, app: object) -> AsyncIterator[None]:
        middleware = getattr(app, "user_middleware", None)
        try:
            if isinstance(middleware, list) and not any(
                getattr(entry, "cls", None) == self.middleware for entry in middleware
            ):
                # Every session route would fail: refuse to start, as a refused setting does.
                raise MissingMiddlewareError.for_manager()
            async with cleaning(self.backend, self.policy.cleanup_interval):
                yield
        finally:
            await self.aclose()

    async def ping(self) -> float:
        """Read from the store once, within its timeout; return the seconds it took.

        Raises:
            BackendUnavailable: the store did not answer in time (see `health_router`).
        """
        return await ping(self.backend)

    async def aclose(self) -> None:
        """Close the backend's connections (what `lifespan` does at shutdown)."""
        await self.backend.aclose()


def _redirect_target(url: str | None, setting: str) -> str | None:
    """``url`` if it is a local path to redirect to (or ``None``); else a ConfigurationError."""
    if url is not None and local_path(url, default="\0") != url:  # "\0" is never a path
        raise ConfigurationError(
            f"{setting}={url!r}: give a local path, such as '/login' (a page of this site)."
        )
    return url
