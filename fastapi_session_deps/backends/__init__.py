"""Session stores: the `Backend` protocol and the built-in backends.

`RedisBackend` is resolved on first use, so importing this package never imports redis.
"""

from typing import TYPE_CHECKING

from .base import Backend as Backend
from .base import SessionLocks as SessionLocks
from .memory import MemoryBackend as MemoryBackend

if TYPE_CHECKING:
    from .redis import RedisBackend as RedisBackend

__all__ = ["Backend", "MemoryBackend", "RedisBackend", "SessionLocks"]


def __getattr__(name: str) -> object:
    if name == "RedisBackend":
        from .redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
