"""A session service: any `Backend` served over HTTP, for `HTTPBackend` to talk to.

```bash
SESSION_SERVICE_TOKEN=... SESSION_SERVICE_REDIS_URL=redis://127.0.0.1:6379/0 \\
uvicorn --factory fastapi_session_deps.service:from_env --host 127.0.0.1 --port 8100
```

The protocol (every request carries ``Authorization: Bearer <token>``):

======================================  =========================================================
``GET /v1/sessions/{key}``              200 ``{"fields": {name: base64}}``, or 404. A
                                        ``Session-TTL`` header (seconds) also slides the expiry.
``PUT /v1/sessions/{key}``              replace the record, ``{"fields": {...}}``; expiry in
                                        ``Session-TTL``. 204.
``PATCH /v1/sessions/{key}``            with ``If-Match: *``: merge ``{"changed": {...},
                                        "removed": [...]}`` only if the record exists. 204, or
                                        412 when it does not (it is never brought back).
``DELETE /v1/sessions/{key}``           204, whether or not it existed.
``POST /v1/locks/{key}``                ``{"token", "ttl", "wait"}``: 200 ``{"held": bool}``.
``DELETE /v1/locks/{key}?token=...``    release, if that token holds it. 204.
======================================  =========================================================

Keys are the hashes the library stores sessions under: a key never reveals a session id.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .backends.base import Backend, SessionLocks
from .backends.memory import MemoryBackend
from .exceptions import BackendUnavailable, ConfigurationError
from .signing import MIN_SECRET_KEY_BYTES

__all__ = ["create_app", "from_env"]

logger = logging.getLogger("fastapi_session_deps")

TOKEN_ENV = "SESSION_SERVICE_TOKEN"  # noqa: S105 - a variable name
REDIS_URL_ENV = "SESSION_SERVICE_REDIS_URL"
_KEY = r"[A-Za-z0-9_-]{1,128}"
_KEY_RE = re.compile(_KEY)
#: The longest lock wait a client may ask for, in seconds.
MAX_LOCK_WAIT = 30.0


class Record(BaseModel):
    fields: dict[str, str]


class Changes(BaseModel):
    changed: dict[str, str] = {}
    removed: list[str] = []


class LockRequest(BaseModel):
    token: str = Field(min_length=1, max_length=256)
    ttl: float = Field(gt=0, le=3600)
    wait: float = Field(ge=0, le=MAX_LOCK_WAIT)


def encode_fields(fields: dict[str, bytes]) -> dict[str, str]:
    """Field values as base64 text, for JSON."""
    return {name: base64.b64encode(value).decode("ascii") for name, value in fields.items()}


def decode_fields(fields: dict[str, str]) -> dict[str, bytes]:
    """The inverse of `encode_fields`. Raises ``ValueError`` on anything that is not base64."""
    try:
        return {name: base64.b64decode(value, validate=True) for name, value in fields.items()}
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"a field value is not base64: {exc}") from exc


def create_app(backend: Backend, *, token: str) -> FastAPI:
    """The session service over ``backend``, for clients that present ``token``.

    Args:
        backend: where the sessions live (`MemoryBackend`, `RedisBackend`, ...).
        token: the shared secret clients send as ``Authorization: Bearer <token>``; at least
            32 bytes.

    Raises:
        ConfigurationError: a missing or short token.
    """
    if len(token.encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigurationError(
            f"The session service token must be at least {MIN_SECRET_KEY_BYTES} bytes: "
            f"set {TOKEN_ENV} to the output of "
            'python -c "import secrets; print(secrets.token_urlsafe(48))".'
        )
    expected = f"Bearer {token}".encode()

    async def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        presented = (authorization or "").encode()
        if not hmac.compare_digest(presented, expected):
            raise HTTPException(401, "Bad or missing token", {"WWW-Authenticate": "Bearer"})

    def checked(key: str) -> str:
        if _KEY_RE.fullmatch(key) is None:
            raise HTTPException(400, "Not a session key")
        return key

    def ttl_of(value: str | None, *, required: bool) -> float | None:
        if value is None:
            if required:
                raise HTTPException(400, "Session-TTL header required")
            return None
        try:
            seconds = float(value)
        except ValueError:
            raise HTTPException(400, "Session-TTL must be a number of seconds") from None
        if not 0 < seconds <= 366 * 86400:
            raise HTTPException(400, "Session-TTL out of range")
        return seconds

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await backend.aclose()

    app = FastAPI(
        title="fastapi-session-deps session service",
        dependencies=[Depends(authorised)],
        lifespan=lifespan,
    )

    @app.exception_handler(BackendUnavailable)
    async def unavailable(request: Request, exc: BackendUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "store unavailable"}, 503, {"Retry-After": "1"})

    @app.get("/v1/sessions/{key}")
    async def read(
        key: str, session_ttl: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        fields = await backend.get(checked(key), ttl=ttl_of(session_ttl, required=False))
        if fields is None:
            raise HTTPException(404, "No such session")
        return {"fields": encode_fields(fields)}

    @app.put("/v1/sessions/{key}", status_code=204)
    async def replace(
        key: str, record: Record, session_ttl: Annotated[str | None, Header()] = None
    ) -> Response:
        ttl = ttl_of(session_ttl, required=True)
        assert ttl is not None  # noqa: S101 - required=True
        try:
            fields = decode_fields(record.fields)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        await backend.set(checked(key), fields, ttl=ttl)
        return Response(status_code=204)

    @app.patch("/v1/sessions/{key}", status_code=204)
    async def merge(
        key: str,
        changes: Changes,
        session_ttl: Annotated[str | None, Header()] = None,
        if_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        if if_match != "*":
            raise HTTPException(428, "PATCH needs If-Match: * (merge only into a live record)")
        ttl = ttl_of(session_ttl, required=True)
        assert ttl is not None  # noqa: S101 - required=True
        try:
            changed = decode_fields(changes.changed)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if not await backend.update(checked(key), changed, changes.removed, ttl=ttl):
            raise HTTPException(412, "No such session")
        return Response(status_code=204)

    @app.delete("/v1/sessions/{key}", status_code=204)
    async def delete(key: str) -> Response:
        await backend.delete(checked(key))
        return Response(status_code=204)

    def locks() -> SessionLocks:
        if not isinstance(backend, SessionLocks):
            raise HTTPException(501, "This store has no session locks")
        return backend

    @app.post("/v1/locks/{key}")
    async def acquire(key: str, request: LockRequest) -> dict[str, bool]:
        held = await locks().acquire_lock(
            checked(key), request.token, ttl=request.ttl, wait=request.wait
        )
        return {"held": held}

    @app.delete("/v1/locks/{key}", status_code=204)
    async def release(key: str, token: str) -> Response:
        await locks().release_lock(checked(key), token)
        return Response(status_code=204)

    return app


def from_env() -> FastAPI:
    """The service configured from the environment, for ``uvicorn --factory``.

    ``SESSION_SERVICE_TOKEN`` (required) and ``SESSION_SERVICE_REDIS_URL`` (without it, the
    sessions live in the service's memory, with a warning).
    """
    token = os.environ.get(TOKEN_ENV, "")
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        from .backends.redis import RedisBackend

        backend: Backend = RedisBackend.from_url(url)
    else:
        logger.warning("%s is not set: sessions live in this process's memory", REDIS_URL_ENV)
        backend = MemoryBackend()
    return create_app(backend, token=token)
