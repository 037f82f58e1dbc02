"""Typed, server-side sessions for FastAPI, injected with ``Depends()``."""

from typing import TYPE_CHECKING

from ._http import local_path as local_path
from .backends.base import Backend as Backend
from .backends.base import SessionIndex as SessionIndex
from .backends.base import SessionLocks as SessionLocks
from .backends.function import FunctionBackend as FunctionBackend
from .backends.memory import MemoryBackend as MemoryBackend
from .csrf import CSRFError as CSRFError
from .csrf import CSRFProtection as CSRFProtection
from .csrf import csrf_error_response as csrf_error_response
from .csrf import csrf_exempt as csrf_exempt
from .csrf import csrf_token as csrf_token
from .exceptions import BackendError as BackendError
from .exceptions import BackendUnavailable as BackendUnavailable
from .exceptions import ConfigurationError as ConfigurationError
from .exceptions import InvalidSessionData as InvalidSessionData
from .exceptions import MissingDependencyError as MissingDependencyError
from .exceptions import MissingMiddlewareError as MissingMiddlewareError
from .exceptions import SessionBusy as SessionBusy
from .exceptions import SessionError as SessionError
from .exceptions import SessionTooLarge as SessionTooLarge
from .exceptions import StoreNotSetUp as StoreNotSetUp
from .flash import FlashMessage as FlashMessage
from .flash import flash as flash
from .flash import get_flashed_messages as get_flashed_messages
from .frontends.base import Frontend as Frontend
from .frontends.cookie import CookieFrontend as CookieFrontend
from .frontends.header import HeaderFrontend as HeaderFrontend
from .health import health_router as health_router
from .manager import SessionManager as SessionManager
from .models import SessionModel as SessionModel
from .policy import SessionEvent as SessionEvent
from .policy import SessionLifetime as SessionLifetime
from .policy import SessionPolicy as SessionPolicy
from .starlette import Session as Session
from .starlette import SessionAutoloadMiddleware as SessionAutoloadMiddleware
from .starlette import SessionDict as SessionDict
from .starlette import SessionMiddleware as SessionMiddleware
from .starlette import SessionNotLoaded as SessionNotLoaded
from .starlette import destroy_session as destroy_session
from .starlette import get_session_remaining_seconds as get_session_remaining_seconds
from .starlette import load_session as load_session
from .starlette import login_session as login_session
from .starlette import regenerate_session as regenerate_session
from .starlette import set_session_lifetime as set_session_lifetime
from .starlette import user_sessions as user_sessions
from .users import SessionInfo as SessionInfo
from .users import UserSessions as UserSessions

if TYPE_CHECKING:
    from .backends.encrypted import EncryptedBackend as EncryptedBackend
    from .backends.http import HTTPBackend as HTTPBackend
    from .backends.redis import RedisBackend as RedisBackend
    from .backends.sql import SQLBackend as SQLBackend

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "CSRFError",
    "CSRFProtection",
    "ConfigurationError",
    "CookieFrontend",
    "EncryptedBackend",
    "FlashMessage",
    "Frontend",
    "FunctionBackend",
    "HTTPBackend",
    "HeaderFrontend",
    "InvalidSessionData",
    "MemoryBackend",
    "MissingDependencyError",
    "MissingMiddlewareError",
    "RedisBackend",
    "SQLBackend",
    "Session",
    "SessionAutoloadMiddleware",
    "SessionBusy",
    "SessionDict",
    "SessionError",
    "SessionEvent",
    "SessionIndex",
    "SessionInfo",
    "SessionLifetime",
    "SessionLocks",
    "SessionManager",
    "SessionMiddleware",
    "SessionModel",
    "SessionNotLoaded",
    "SessionPolicy",
    "SessionTooLarge",
    "StoreNotSetUp",
    "UserSessions",
    "csrf_error_response",
    "csrf_exempt",
    "csrf_token",
    "destroy_session",
    "flash",
    "get_flashed_messages",
    "get_session_remaining_seconds",
    "health_router",
    "load_session",
    "local_path",
    "login_session",
    "regenerate_session",
    "set_session_lifetime",
    "user_sessions",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The backends with optional dependencies are resolved on first use, so importing the
    # package never imports redis, httpx or SQLAlchemy.
    if name == "RedisBackend":
        from .backends.redis import RedisBackend

        return RedisBackend
    if name == "HTTPBackend":
        from .backends.http import HTTPBackend

        return HTTPBackend
    if name == "EncryptedBackend":
        from .backends.encrypted import EncryptedBackend

        return EncryptedBackend
    if name == "SQLBackend":
        from .backends.sql import SQLBackend

        return SQLBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
