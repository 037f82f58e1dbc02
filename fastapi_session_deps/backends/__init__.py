"""Session stores: the `Backend` protocol and the built-in backends.

`RedisBackend` and `SQLBackend` are resolved on first use, so importing this package never
imports redis or SQLAlchemy.
"""

from typing import TYPE_CHECKING

from .base import Backend as Backend
from .base import SessionLocks as SessionLocks
from .memory import MemoryBackend as MemoryBackend

if TYPE_CHECKING:
    from .redis import RedisBackend as RedisBackend
    from .sql import SQLBackend as SQLBackend

__all__ = ["Backend", "MemoryBackend", "RedisBackend", "SQLBackend", "SessionLocks"]


def __getattr__(name: str) -> object:
    if name == "RedisBackend":
        from .redis import RedisBackend

        return RedisBackend
    if name == "SQLBackend":
        from .sql import SQLBackend

        return SQLBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
