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
                                        ``Session-TTL`` pushes the expiry out, never sooner;
                                        with ``Session-Expiry: exact``, sets it exactly.
``POST /v1/sessions/{key}/replace``     ``{"fields": {name: [old, new]}}``: write each new
                                        value where the record still holds the old one
                                        (`Backend.replace_unchanged`). 204.
``DELETE /v1/sessions/{key}``           204, whether or not it existed; ``Session-Deleted``
                                        says whether a live record was there (1 or 0).
``POST /v1/locks/{key}``                ``{"token", "ttl", "wait"}``: 200 ``{"held": bool}``.
``DELETE /v1/locks/{key}?token=...``    release, if that token holds it. 204.
``PUT /v1/index/{key}``                 ``{"user", "ttl"}``: add the record to the user's index.
                                        204.
``POST /v1/index/remove``               ``{"user", "keys": [...]}``: take them out of it. 204.
``POST /v1/index/list``                 ``{"user"}``: 200 ``{"sessions": [{"key", "fields",
                                        "ttl"}]}``, the user's live records, with only the
                                        library's own fields (names starting with NUL).
``POST /v1/index/keys``                 ``{"user", "offset", "limit"}``: 200 ``{"keys":
                                        [...]}``, a page of the user's index, the latest to
                                        expire first (at most 10,000).
``POST /v1/index/page``                 the same body: 200 ``{"sessions": [...]}``, a page of
                                        the listing above.
``POST /v1/index/end``                  ``{"user", "keys": [...]}`` (at most 1,000): delete
                                        those records that are the user's, take every key
                                        out of the index. 200 ``{"ended": [{"key",
                                        "fields"}]}``, with the library's fields only.
``POST /v1/index/end-some``             ``{"user", "keep", "after", "limit"}``: end a batch of
                                        the user's sessions (`SessionIndex.index_end_some`).
                                        200 ``{"ended": [...], "after"}``.
``GET /v1/stats?top=10``                200 ``{"live", "users", "top_users": [[user, n]]}``
                                        (`Backend.stats`), or 501.
======================================  =========================================================

The index endpoints answer 501 when the service's store keeps no index of users' sessions,
and the stats endpoint when it cannot count its sessions.

Keys are the hashes the library stores sessions under: a key never reveals a session id.

The token is checked before anything else, and bodies are capped at the size of the
largest record (``max_record_bytes``), so an unauthenticated or oversized request costs
the service neither the reading nor the parsing of its body. The service publishes no
``/docs``, ``/redoc`` or ``/openapi.json``.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._http import retry_later_response, send_json
from ._record import MAX_RECORD_BYTES, MAX_USER_LENGTH, reserved_fields
from ._wire import (
    MAX_INDEX_PAGE,
    MAX_KEYS_PAGE,
    MAX_TTL_SECONDS,
    SERVICE_TOKEN_ENV,
    decode_fields,
    encode_fields,
    max_body_bytes,
)
from .backends.base import Backend, SessionIndex, SessionLocks, UserRecord
from .backends.memory import MemoryBackend
from .exceptions import BackendUnavailable, ConfigurationError
from .signing import MIN_SECRET_KEY_BYTES

__all__ = ["create_app", "from_env"]

logger = logging.getLogger("fastapi_session_deps")

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


class Replacements(BaseModel):
    fields: dict[str, tuple[str, str]]


class IndexEntry(BaseModel):
    user: str = Field(min_length=1, max_length=MAX_USER_LENGTH)
    ttl: float = Field(gt=0, le=MAX_TTL_SECONDS)


class IndexRemoval(BaseModel):
    user: str = Field(min_length=1, max_length=MAX_USER_LENGTH)
    keys: list[str] = Field(max_length=100_000)


class IndexQuery(BaseModel):
    user: str = Field(min_length=1, max_length=MAX_USER_LENGTH)


class IndexPage(IndexQuery):
    offset: int = Field(ge=0, default=0)
    limit: int = Field(gt=0, le=MAX_INDEX_PAGE, default=100)


class KeysPage(IndexQuery):
    offset: int = Field(ge=0, default=0)
    limit: int = Field(gt=0, le=MAX_KEYS_PAGE, default=1000)


class IndexEnd(IndexQuery):
    keys: list[str] = Field(max_length=MAX_INDEX_PAGE)


class IndexEndSome(IndexQuery):
    keep: list[str] = Field(max_length=MAX_INDEX_PAGE, default=[])
    after: str | None = Field(max_length=1024, default=None)
    limit: int = Field(gt=0, le=MAX_INDEX_PAGE, default=1000)


class LockRequest(BaseModel):
    token: str = Field(min_length=1, max_length=256)
    ttl: float = Field(gt=0, le=3600)
    wait: float = Field(ge=0, le=MAX_LOCK_WAIT)


def create_app(
    backend: Backend, *, token: str, max_record_bytes: int = MAX_RECORD_BYTES
) -> ASGIApp:
    """The session service over ``backend``, for clients that present ``token``.

    Args:
        backend: where the sessions live (`MemoryBackend`, `RedisBackend`, ...).
        token: the shared secret clients send as ``Authorization: Bearer <token>``; at least
            32 bytes.
        max_record_bytes: the record limit its clients use (the same default): bodies
            larger than such a record needs are refused (413) unread.

    Raises:
        ConfigurationError: a missing or short token.
    """
    if len(token.encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigurationError(
            f"The session service token must be at least {MIN_SECRET_KEY_BYTES} bytes: "
            f"set {SERVICE_TOKEN_ENV} to the output of `fastapi-session-deps keygen`."
        )

    def checked(key: str) -> str:
        if _KEY_RE.fullmatch(key) is None:
            raise HTTPException(400, "Not a session key")
        return key

    def ttl_of(value: str | None) -> float:
        if value is None:
            raise HTTPException(400, "Session-TTL header required")
        try:
            seconds = float(value)
        except ValueError:
            raise HTTPException(400, "Session-TTL must be a number of seconds") from None
        if not 0 < seconds <= MAX_TTL_SECONDS:
            raise HTTPException(400, "Session-TTL out of range")
        return seconds

    def fields_of(encoded: dict[str, str]) -> dict[str, bytes]:
        try:
            return decode_fields(encoded)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await backend.aclose()

    app = FastAPI(
        title="fastapi-session-deps session service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(BackendUnavailable)
    async def unavailable(request: Request, exc: BackendUnavailable) -> JSONResponse:
        return retry_later_response(exc)

    # (The guard below checks the token and the body's size before this app runs.)

    @app.get("/v1/sessions/{key}")
    async def read(
        key: str, session_ttl: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        ttl = None if session_ttl is None else ttl_of(session_ttl)
        fields = await backend.get(checked(key), ttl=ttl)
        if fields is None:
            raise HTTPException(404, "No such session")
        return {"fields": encode_fields(fields)}

    @app.put("/v1/sessions/{key}", status_code=204)
    async def replace(
        key: str, record: Record, session_ttl: Annotated[str | None, Header()] = None
    ) -> Response:
        await backend.set(checked(key), fields_of(record.fields), ttl=ttl_of(session_ttl))
        return Response(status_code=204)

    @app.patch("/v1/sessions/{key}", status_code=204)
    async def merge(
        key: str,
        changes: Changes,
        session_ttl: Annotated[str | None, Header()] = None,
        if_match: Annotated[str | None, Header()] = None,
        session_expiry: Annotated[Literal["later", "exact"], Header()] = "later",
    ) -> Response:
        if if_match != "*":
            raise HTTPException(428, "PATCH needs If-Match: * (merge only into a live record)")
        changed = fields_of(changes.changed)
        exact = session_expiry == "exact"
        if not await backend.update(
            checked(key), changed, changes.removed, ttl=ttl_of(session_ttl), exact=exact
        ):
            raise HTTPException(412, "No such session")
        return Response(status_code=204)

    @app.post("/v1/sessions/{key}/replace", status_code=204)
    async def replace_unchanged(key: str, replacements: Replacements) -> Response:
        old = fields_of({name: pair[0] for name, pair in replacements.fields.items()})
        new = fields_of({name: pair[1] for name, pair in replacements.fields.items()})
        swaps = {name: (old[name], new[name]) for name in old}
        await backend.replace_unchanged(checked(key), swaps)
        return Response(status_code=204)

    @app.delete("/v1/sessions/{key}", status_code=204)
    async def delete(key: str) -> Response:
        live = await backend.delete(checked(key))
        said = {} if live is None else {"Session-Deleted": "1" if live else "0"}
        return Response(status_code=204, headers=said)

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

    def index() -> SessionIndex:
        if not isinstance(backend, SessionIndex):
            raise HTTPException(501, "This store keeps no index of users' sessions")
        return backend

    @app.put("/v1/index/{key}", status_code=204)
    async def index_add(key: str, entry: IndexEntry) -> Response:
        await index().index_add(entry.user, checked(key), ttl=entry.ttl)
        return Response(status_code=204)

    @app.post("/v1/index/remove", status_code=204)
    async def index_remove(removal: IndexRemoval) -> Response:
        await index().index_remove(removal.user, [checked(key) for key in removal.keys])
        return Response(status_code=204)

    @app.post("/v1/index/end-some")
    async def index_end_some(query: IndexEndSome) -> dict[str, Any]:
        ended, after = await index().index_end_some(
            query.user, keep=query.keep, after=query.after, limit=query.limit
        )
        found = [{"key": key, "fields": encode_fields(facts)} for key, facts in ended]
        return {"ended": found, "after": after}

    @app.get("/v1/stats")
    async def stats(top: int = 10) -> dict[str, Any]:
        counted = await backend.stats(top=min(max(top, 0), 1000))
        if counted is None:
            raise HTTPException(501, "This store cannot count its sessions")
        return {
            "live": counted.live,
            "users": counted.users,
            "top_users": [[user, count] for user, count in counted.top_users],
        }

    @app.post("/v1/index/list")
    async def index_list(query: IndexQuery) -> dict[str, Any]:
        return _listing(await index().index_list(query.user))

    @app.post("/v1/index/keys")
    async def index_keys(query: KeysPage) -> dict[str, Any]:
        keys = await index().index_keys(query.user, offset=query.offset, limit=query.limit)
        return {"keys": keys}

    @app.post("/v1/index/page")
    async def index_page(query: IndexPage) -> dict[str, Any]:
        records = await index().index_page(query.user, offset=query.offset, limit=query.limit)
        return _listing(records)

    @app.post("/v1/index/end")
    async def index_end(query: IndexEnd) -> dict[str, Any]:
        ended = await index().index_end(query.user, [checked(key) for key in query.keys])
        return {"ended": [{"key": key, "fields": encode_fields(facts)} for key, facts in ended]}

    return _Guard(app, f"Bearer {token}".encode(), max_body_bytes(max_record_bytes))


def _listing(records: list[UserRecord]) -> dict[str, Any]:
    """A listing's answer: each record with only the library's fields (a listing needs no
    session data)."""
    return {
        "sessions": [
            {"key": key, "fields": encode_fields(reserved_fields(fields)), "ttl": left}
            for key, fields, left in records
        ]
    }


class _Guard:
    """Pure ASGI, in front of the service: the token first, then the body's size.

    A request without the right token is answered 401 before a byte of its body is read; a
    body larger than any record needs is answered 413 as soon as that is known, from
    ``Content-Length`` or while it arrives.
    """

    def __init__(self, app: ASGIApp, expected: bytes, max_body: int) -> None:
        self.app = app
        self.expected = expected
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            await send_json(
                send, 401, {"detail": "Bad or missing token"}, [(b"www-authenticate", b"Bearer")]
            )
            return
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body:
            await send_json(send, 413, {"detail": "Body too large"})
            return
        received = 0

        async def capped_receive() -> Message:
            # A body sent without Content-Length (chunked) is counted as it arrives; the
            # app's exception handling answers the 413.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise HTTPException(413, "Body too large")
            return message

        await self.app(scope, capped_receive, send)


def from_env() -> ASGIApp:
    """The service configured from the environment, for ``uvicorn --factory``.

    ``SESSION_SERVICE_TOKEN`` (required) and ``SESSION_SERVICE_REDIS_URL`` (without it, the
    sessions live in the service's memory, with a warning).
    """
    token = os.environ.get(SERVICE_TOKEN_ENV, "")
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        from .backends.redis import RedisBackend

        backend: Backend = RedisBackend.from_url(url)
    else:
        logger.warning(
            "%s is not set: sessions live in this process's memory",
            REDIS_URL_ENV,
            extra={"event": "memory_store_default", "store": "MemoryBackend"},
        )
        backend = MemoryBackend()
    return create_app(backend, token=token)
