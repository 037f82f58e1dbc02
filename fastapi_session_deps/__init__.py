"""Typed, server-side sessions for FastAPI, injected with ``Depends()``."""

from .backends.base import Backend as Backend
from .backends.memory import MemoryBackend as MemoryBackend
from .exceptions import BackendUnavailable as BackendUnavailable
from .exceptions import ConfigurationError as ConfigurationError
from .exceptions import InvalidSessionData as InvalidSessionData
from .exceptions import MissingMiddlewareError as MissingMiddlewareError
from .exceptions import SessionError as SessionError
from .frontends.base import Frontend as Frontend
from .frontends.cookie import CookieFrontend as CookieFrontend
from .manager import SessionManager as SessionManager
from .models import SessionModel as SessionModel

__all__ = [
    "Backend",
    "BackendUnavailable",
    "ConfigurationError",
    "CookieFrontend",
    "Frontend",
    "InvalidSessionData",
    "MemoryBackend",
    "MissingMiddlewareError",
    "SessionError",
    "SessionManager",
    "SessionModel",
]

__version__ = "0.1.0"
