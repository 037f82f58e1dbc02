"""`HTTPBackend`: sessions in a session service, reached over HTTP (the ``http`` extra)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from .._wire import (
    MAX_INDEX_PAGE,
    MAX_KEYS_PAGE,
    MAX_LISTING_BYTES,
    counted_stats,
    encode_fields,
    ended_records,
    json_object,
    listed_records,
    max_body_bytes,
    record_fields,
    string_list,
)
from ..exceptions import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    MissingDependencyError,
)
from ..signing import session_handle
from .base import (
    MAX_RECORD_BYTES,
    Backend,
    EndBatch,
    EndedRecord,
    SessionIndex,
    SessionLocks,
    StoreStats,
    UserRecord,
    batches,
)

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without httpx
    raise MissingDependencyError.of("HTTPBackend", "http", "httpx") from exc

__all__ = ["HTTPBackend"]

logger = logging.getLogger("fastapi_session_deps")

#: The ``Session-Expiry`` header of a merge: push the expiry out only, or set it exactly.
_EXPIRY = {False: "later", True: "exact"}


@dataclass(frozen=True)
class _Answer:
    """What the service answered: read in full, or ``oversized`` past the answer limit."""

    status: int
    content_type: str
    body: bytes
    oversized: bool = False
    #: ``Session-Deleted``, on the answer to a deletion: whether a live record was there.
    deleted: str | None = None


class HTTPBackend(Backend, SessionLocks, SessionIndex):
    """Session records in a session service (`fastapi_session_deps.service`), over HTTP.

    One pooled ``httpx.AsyncClient`` carries every call; each call has a ``timeout``, and
    reads and deletes, which are idempotent, are tried up to ``retries`` more times. A
    connection error, a timeout, a 5xx, or an answer that is not what the protocol says
    becomes `BackendUnavailable` (a 503 at the app). A 401 or 403 means the token is wrong:
    it is logged as a configuration error, and is a 503 too.

    Args:
        client: an ``httpx.AsyncClient`` whose ``base_url`` is the service. The backend
            never closes a client it was handed.
        token: the service's shared secret, sent as ``Authorization: Bearer <token>``.
        timeout: seconds any one call may take.
        retries: extra tries for reads and deletes.
        max_record_bytes: the record limit the service was given (the same default): an
            answer too large to carry such a record is not read past that size, and a read
            of one is "no session" (the record is deleted), never an error.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        token: str,
        timeout: float = 1.0,
        retries: int = 2,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        if not isinstance(client, httpx.AsyncClient):
            raise ConfigurationError(f"client must be an httpx.AsyncClient, not {client!r}.")
        if not token:
            raise ConfigurationError("token is required: the session service's shared secret.")
        if not timeout > 0 or retries < 0:
            raise ConfigurationError("timeout must be positive and retries not negative.")
        self.client = client
        self.timeout = timeout
        self.retries = retries
        self._auth = {"authorization": f"Bearer {token}"}
        self._max_answer = max_body_bytes(max_record_bytes)
        self._owns_client = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        token: str,
        timeout: float = 1.0,
        retries: int = 2,
        max_record_bytes: int = MAX_RECORD_BYTES,
        **client_options: Any,
    ) -> HTTPBackend:
        """Build a backend with a client of its own, which `aclose` closes."""
        client = httpx.AsyncClient(base_url=url, **client_options)
        backend = cls(
            client,
            token=token,
            timeout=timeout,
            retries=retries,
            max_record_bytes=max_record_bytes,
        )
        backend._owns_client = True
        return backend

    def __repr__(self) -> str:
        url = self.client.base_url
        shown = str(url)
        if url.userinfo:  # a password written into the URL is never shown
            shown = shown.replace(url.userinfo.decode("ascii") + "@", "***@", 1)
        return f"HTTPBackend(base_url={shown!r}, timeout={self.timeout!r})"

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        headers = {} if ttl is None else {"session-ttl": repr(ttl)}
        response = await self._request("GET", f"/v1/sessions/{key}", headers, retry=True)
        if response.status == 404:
            return None
        if response.oversized and response.status == 200:
            # Too large to be a record the library wrote: no session, rather than an error
            # for every request for as long as it lives.
            logger.warning(
                "Discarding a session record over the record limit (HTTPBackend)",
                extra={
                    "event": "record_oversized",
                    "store": "HTTPBackend",
                    "handle": session_handle(key),
                },
            )
            await self.delete(key)
            return None
        try:
            return record_fields(self._json(response, "get", 200))
        except ValueError as exc:
            raise self._malformed("get", str(exc)) from exc

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        response = await self._request(
            "PUT",
            f"/v1/sessions/{key}",
            {"session-ttl": repr(ttl)},
            json={"fields": encode_fields(dict(fields))},
        )
        self._expect(response, "set", 204)

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        response = await self._request(
            "PATCH",
            f"/v1/sessions/{key}",
            {"session-ttl": repr(ttl), "if-match": "*", "session-expiry": _EXPIRY[exact]},
            json={"changed": encode_fields(dict(changed)), "removed": list(removed)},
        )
        if response.status == 412:
            return False
        self._expect(response, "update", 204)
        return True

    async def replace_unchanged(
        self, key: str, replacements: Mapping[str, tuple[bytes, bytes]]
    ) -> None:
        old = encode_fields({name: pair[0] for name, pair in replacements.items()})
        new = encode_fields({name: pair[1] for name, pair in replacements.items()})
        body = {"fields": {name: (old[name], new[name]) for name in old}}
        response = await self._request(
            "POST", f"/v1/sessions/{key}/replace", {}, json=body, retry=True
        )
        self._expect(response, "replace_unchanged", 204)

    async def delete(self, key: str) -> bool | None:
        response = await self._request("DELETE", f"/v1/sessions/{key}", {}, retry=True)
        self._expect(response, "delete", 204)
        # A service that does not say (an older one) leaves it to the caller.
        return {"1": True, "0": False}.get(response.deleted or "")

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        response = await self._request(
            "POST",
            f"/v1/locks/{key}",
            {},
            json={"token": token, "ttl": ttl, "wait": wait},
            extra_time=wait,
        )
        held = self._json(response, "acquire_lock", 200).get("held")
        if not isinstance(held, bool):
            raise self._malformed("acquire_lock", "no 'held' boolean")
        return held

    async def release_lock(self, key: str, token: str) -> None:
        response = await self._request(
            "DELETE", f"/v1/locks/{key}", {}, params={"token": token}, retry=True
        )
        self._expect(response, "release_lock", 204)

    async def index_add(self, user: str, key: str, *, ttl: float) -> None:
        response = await self._request(
            "PUT", f"/v1/index/{key}", {}, json={"user": user, "ttl": ttl}, retry=True
        )
        self._expect(response, "index_add", 204)

    async def index_remove(self, user: str, keys: Collection[str]) -> None:
        if keys:
            response = await self._request(
                "POST", "/v1/index/remove", {}, json={"user": user, "keys": list(keys)}, retry=True
            )
            self._expect(response, "index_remove", 204)

    async def index_list(self, user: str) -> list[UserRecord]:
        response = await self._request(
            "POST",
            "/v1/index/list",
            {},
            json={"user": user},
            retry=True,
            max_answer=MAX_LISTING_BYTES,
        )
        try:
            return listed_records(self._json(response, "index_list", 200))
        except ValueError as exc:
            raise self._malformed("index_list", str(exc)) from exc

    async def index_keys(self, user: str, *, offset: int = 0, limit: int = 1000) -> list[str]:
        found: list[str] = []
        for start in range(offset, offset + limit, MAX_KEYS_PAGE):
            size = min(MAX_KEYS_PAGE, offset + limit - start)
            query = {"user": user, "offset": start, "limit": size}
            response = await self._request(
                "POST", "/v1/index/keys", {}, json=query, retry=True, max_answer=MAX_LISTING_BYTES
            )
            try:
                page = string_list(self._json(response, "index_keys", 200), "keys")
            except ValueError as exc:
                raise self._malformed("index_keys", str(exc)) from exc
            found += page
            if len(page) < size:
                break
        return found

    async def index_page(
        self, user: str, *, offset: int = 0, limit: int = 100
    ) -> list[UserRecord]:
        query = {"user": user, "offset": offset, "limit": min(limit, MAX_INDEX_PAGE)}
        response = await self._request(
            "POST", "/v1/index/page", {}, json=query, retry=True, max_answer=MAX_LISTING_BYTES
        )
        try:
            return listed_records(self._json(response, "index_page", 200))
        except ValueError as exc:
            raise self._malformed("index_page", str(exc)) from exc

    async def index_end_some(
        self, user: str, *, keep: Collection[str] = (), after: str | None = None, limit: int = 1000
    ) -> EndBatch:
        query = {"user": user, "keep": list(keep), "after": after, "limit": limit}
        response = await self._request("POST", "/v1/index/end-some", {}, json=query)
        try:
            document = self._json(response, "index_end_some", 200)
            going_on = document.get("after")
            if going_on is not None and not isinstance(going_on, str):
                raise ValueError("after is not text")
            return ended_records(document), going_on
        except ValueError as exc:
            raise self._malformed("index_end_some", str(exc)) from exc

    async def index_end(self, user: str, keys: Collection[str]) -> list[EndedRecord]:
        ended: list[EndedRecord] = []
        for batch in batches(list(keys), MAX_INDEX_PAGE):
            response = await self._request(
                "POST", "/v1/index/end", {}, json={"user": user, "keys": list(batch)}
            )
            try:
                ended += ended_records(self._json(response, "index_end", 200))
            except ValueError as exc:
                raise self._malformed("index_end", str(exc)) from exc
        return ended

    async def stats(self, *, top: int = 10) -> StoreStats | None:
        response = await self._request("GET", f"/v1/stats?top={int(top)}", {}, retry=True)
        if response.status == 501:
            return None
        try:
            return StoreStats(*counted_stats(self._json(response, "stats", 200)))
        except ValueError as exc:
            raise self._malformed("stats", str(exc)) from exc

    async def aclose(self) -> None:
        if self._owns_client:
            self._owns_client = False
            await self.client.aclose()

    # -- plumbing ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        retry: bool = False,
        extra_time: float = 0.0,
        max_answer: int | None = None,
        **options: Any,
    ) -> _Answer:
        limit = self._max_answer if max_answer is None else max_answer
        attempts = 1 + (self.retries if retry else 0)
        problem = "no attempt"
        for _ in range(attempts):
            try:
                with anyio.fail_after(self.timeout + extra_time):
                    async with self.client.stream(
                        method, path, headers={**self._auth, **headers}, **options
                    ) as response:
                        body = bytearray()
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) > limit:
                                break  # read no further than any record needs
                        answer = _Answer(
                            response.status_code,
                            response.headers.get("content-type", ""),
                            bytes(body),
                            oversized=len(body) > limit,
                            deleted=response.headers.get("session-deleted"),
                        )
            except (httpx.HTTPError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if answer.status in (401, 403):
                logger.error(
                    "The session service refused our token (%s): check the token both sides "
                    "are configured with.",
                    answer.status,
                    extra={"event": "service_token_refused", "store": "HTTPBackend"},
                )
                raise BackendUnavailable(
                    f"session service refused the token ({answer.status})",
                    backend="HTTPBackend",
                    operation=method,
                )
            if answer.status >= 500 and answer.status != 501:  # 501: never, not "not now"
                problem = f"service answered {answer.status}"
                continue
            return answer
        raise BackendUnavailable(
            f"session service unavailable for {method} {path.split('/')[2]}: {problem}",
            backend="HTTPBackend",
            operation=method,
        )

    def _json(self, answer: _Answer, operation: str, status: int) -> dict[str, Any]:
        self._expect(answer, operation, status)
        try:
            return json_object(answer.content_type, answer.body)
        except ValueError as exc:
            raise self._malformed(operation, str(exc)) from exc

    def _expect(self, answer: _Answer, operation: str, status: int) -> None:
        if answer.status == 501:
            # The service's store cannot do this at all (no locks, no index): a
            # misconfiguration, never "try again shortly".
            try:
                why = str(json_object(answer.content_type, answer.body).get("detail"))
            except ValueError:
                why = "not implemented"
            raise BackendError(
                f"The session service cannot do {operation}: {why}",
                backend="HTTPBackend",
                operation=operation,
            )
        if answer.status != status:
            raise self._malformed(operation, f"unexpected status {answer.status}")
        if answer.oversized:
            raise self._malformed(operation, "answer too large")

    @staticmethod
    def _malformed(operation: str, why: str) -> BackendUnavailable:
        return BackendUnavailable(
            f"malformed answer from the session service ({why})",
            backend="HTTPBackend",
            operation=operation,
        )
