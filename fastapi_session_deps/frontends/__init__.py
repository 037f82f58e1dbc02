"""Session-id transports: the `Frontend` protocol and the built-in frontends."""

from .base import Frontend as Frontend
from .cookie import CookieFrontend as CookieFrontend
from .header import HeaderFrontend as HeaderFrontend

__all__ = ["CookieFrontend", "Frontend", "HeaderFrontend"]
