"""`FunctionBackend`: a store made of three async functions (get, save, delete)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import anyio

from ..exceptions import BackendUnavailable, ConfigurationError
from ..signing import session_handle
from ._json_record import join_fields, split_fields
from .base import Backend

__all__ = ["FunctionBackend"]

logger = logging.getLogger("fastapi_session_deps")


def _extra(event: str, handle: str | None = None) -> dict[str, str]:
    """The stable fields of a log record: never a token, a key or a stored value."""
    extra = {"event": event, "store": "FunctionBackend"}
    if handle is not None:
        extra["handle"] = handle
    return extra


R = TypeVar("R")

#: ``get(key) -> dict | None``: the record saved under ``key``, or ``None``.
GetFunction = Callable[[str], Awaitable[Any]]
#: ``save(key, record)``: store the JSON-able ``record`` under ``key``, replacing any.
SaveFunction = Callable[[str, dict[str, Any]], Awaitable[object]]
#: ``delete(key)``: remove the record under ``key``; no error if there is none.
DeleteFunction = Callable[[str], Awaitable[object]]


class FunctionBackend(Backend):
    """A session store made of three async functions: any async store in ten lines.

    ```python
    async def get(key: str) -> dict | None: ...        # the saved dict, or None
    async def save(key: str, data: dict) -> None: ...  # store it, replacing any
    async def delete(key: str) -> None: ...            # remove it

    backend = FunctionBackend(get, save, delete)
    ```

    ``key`` is the store key: a hash of the session id, never the id itself. ``data`` is a
    dict of JSON values (``{"fields": {...}, "meta": {...}, "expires": <epoch seconds>}``)
    to keep as it is and hand back from ``get``. The functions know nothing of expiry: the
    time a record expires travels inside it, and the backend enforces it on every read,
    deleting an expired record when it meets one. A store of its own that can expire keys
    may also drop records after ``expires``.

    Every call is bounded by ``timeout``. Any exception a function raises is a store fault:
    logged with its traceback, and a 503 with ``Retry-After`` at the app. A record that
    ``get`` returns in a shape this backend did not write is damaged: it is deleted, logged
    without its contents, and the request goes on without a session.

    ``update`` reads, merges and saves: it is not atomic. Two requests that change different
    fields of one session at the same moment can lose one of the changes, which
    `RedisBackend` and `MemoryBackend` never do. For the same reason it has no session locks,
    and ``concurrency="lock"`` is refused with it.

    Args:
        get: ``async get(key) -> dict | None``.
        save: ``async save(key, data: dict)``.
        delete: ``async delete(key)``.
        timeout: seconds any one call may take.
        clock: seconds since the epoch; tests may pass a fake one.

    Raises:
        ConfigurationError: a function that is not callable, or a non-positive timeout.
    """

    def __init__(
        self,
        get: GetFunction,
        save: SaveFunction,
        delete: DeleteFunction,
        *,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, function in (("get", get), ("save", save), ("delete", delete)):
            if not callable(function):
                raise ConfigurationError(
                    f"FunctionBackend({name}=...) must be an async function, not {function!r}."
                )
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}."
            )
        self._get = get
        self._save = save
        self._delete = delete
        self.timeout = float(timeout)
        self._clock = clock

    def __repr__(self) -> str:
        names = ", ".join(
            getattr(f, "__qualname__", repr(f)) for f in (self._get, self._save, self._delete)
        )
        return f"FunctionBackend({names}, timeout={self.timeout!r})"

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        fields = await self._read(key)
        if fields is not None and ttl is not None:
            await self._write(key, fields, ttl)
        return fields

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        await self._write(key, fields, ttl)

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        found = await self._read_record(key)
        if found is None:
            return False
        fields, expires = found
        fields.update(changed)
        for name in removed:
            fields.pop(name, None)
        now = self._clock()
        await self._write(key, fields, ttl if exact else max(ttl, expires - now))
        return True

    async def delete(self, key: str) -> None:
        """Delete through the ``delete`` function, which does not say whether the record
        was there (see `Backend.delete`)."""
        await self._call("delete", self._delete, key)

    # -- the record's shape ------------------------------------------------------------------

    async def _read(self, key: str) -> dict[str, bytes] | None:
        """The live record under ``key``; ``None`` if there is none, or it expired or broke."""
        found = await self._read_record(key)
        return None if found is None else found[0]

    async def _read_record(self, key: str) -> tuple[dict[str, bytes], float] | None:
        """The live record under ``key`` and when it expires; ``None`` if there is none, or
        it expired or broke."""
        raw = await self._call("get", self._get, key)
        if raw is None:
            return None
        try:
            fields, expires = _decode(raw)
        except (TypeError, ValueError) as exc:
            # Never log the record itself: it holds someone's session data.
            logger.warning(
                "Discarding a damaged session record from FunctionBackend: %s",
                exc,
                extra=_extra("record_undecodable", session_handle(key)),
            )
            await self.delete(key)
            return None
        if expires <= self._clock():
            await self.delete(key)
            return None
        return fields, expires

    async def _write(self, key: str, fields: Mapping[str, bytes], ttl: float) -> None:
        await self._call("save", self._save, key, _encode(fields, self._clock() + ttl))

    async def _call(self, operation: str, function: Callable[..., Awaitable[R]], *args: Any) -> R:
        try:
            with anyio.fail_after(self.timeout):
                return await function(*args)
        except TimeoutError as exc:
            logger.warning(
                "FunctionBackend: %s did not finish within %g s",
                operation,
                self.timeout,
                extra=_extra("store_timeout"),
            )
            raise BackendUnavailable(
                f"the {operation} function did not finish within {self.timeout:g} s",
                backend="FunctionBackend",
                operation=operation,
            ) from exc
        except Exception as exc:
            logger.warning(
                "FunctionBackend: the %s function failed",
                operation,
                exc_info=True,
                extra=_extra("store_function_failed"),
            )
            raise BackendUnavailable(
                f"the {operation} function failed: {type(exc).__name__}",
                backend="FunctionBackend",
                operation=operation,
            ) from exc


def _encode(fields: Mapping[str, bytes], expires: float) -> dict[str, Any]:
    """A record as a JSON-able dict: field values are the UTF-8 text the serializer wrote."""
    data, meta = split_fields(fields)
    return {"fields": data, "meta": meta, "expires": expires}


def _decode(raw: object) -> tuple[dict[str, bytes], float]:
    """The inverse of `_encode`. Raises ``TypeError`` or ``ValueError`` on any other shape."""
    if not isinstance(raw, dict):
        raise TypeError(f"a record is a dict, not a {type(raw).__name__}")
    expires = raw.get("expires")
    if (
        isinstance(expires, bool)
        or not isinstance(expires, (int, float))
        or not math.isfinite(expires)
    ):
        raise TypeError("'expires' must be a finite number")
    return join_fields(raw.get("fields"), raw.get("meta")), float(expires)
