"""Typed, server-side sessions for FastAPI, injected with ``Depends()``."""

from typing import TYPE_CHECKING

from .backends.base import Backend as Backend
from .backends.memory import MemoryBackend as MemoryBackend
from .exceptions import BackendUnavailable as BackendUnavailable
from .exceptions import ConfigurationError as ConfigurationError
from .exceptions import InvalidSessionData as InvalidSessionData
from .exceptions import MissingDependencyError as MissingDependencyError
from .exceptions import MissingMiddlewareError as MissingMiddlewareError
from .exceptions import SessionError as SessionError
from .frontends.base import Frontend as Frontend
from .frontends.cookie import CookieFrontend as CookieFrontend
from .manager import SessionManager as SessionManager
from .models import SessionModel as SessionModel

if TYPE_CHECKING:
    from .backends.redis import RedisBackend as RedisBackend

__all__ = [
    "Backend",
    "BackendUnavailable",
    "ConfigurationError",
    "CookieFrontend",
    "Frontend",
    "InvalidSessionData",
    "MemoryBackend",
    "MissingDependencyError",
    "MissingMiddlewareError",
    "RedisBackend",
    "SessionError",
    "SessionManager",
    "SessionModel",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # RedisBackend is resolved on first use, so importing the package never imports redis.
    if name == "RedisBackend":
        from .backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
