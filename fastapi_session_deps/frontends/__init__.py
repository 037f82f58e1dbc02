"""Session-id transports: the `Frontend` protocol and the built-in frontends."""

from .base import Frontend as Frontend
from .cookie import CookieFrontend as CookieFrontend

__all__ = ["CookieFrontend", "Frontend"]
