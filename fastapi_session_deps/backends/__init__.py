"""Session stores: the `Backend` protocol and the built-in backends."""

from .base import Backend as Backend
from .memory import MemoryBackend as MemoryBackend

__all__ = ["Backend", "MemoryBackend"]
