"""Is the session store there? `ping` for code, `health_router` for readiness probes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .backends.base import Backend, backend_name
from .backends.base import ping as ping_backend
from .exceptions import BackendError, BackendUnavailable

if TYPE_CHECKING:
    from .manager import SessionManager

__all__ = ["health_router", "ping"]

logger = logging.getLogger("fastapi_session_deps")


async def ping(store: Backend | SessionManager[Any]) -> float:
    """Read from the store once, within its timeout, and return how long it took (s).

    The read is of a key no session has, through the same call a request makes, so it
    proves what a request needs: the store answers, in time.

    Raises:
        BackendUnavailable: the store did not answer in time, or refused.
        BackendError: it answered something that is not a store's answer.
    """
    return await ping_backend(store if isinstance(store, Backend) else store.backend)


def health_router(
    store: Backend | SessionManager[Any], *, path: str = "/health/sessions"
) -> APIRouter:
    """A router with one route for readiness probes: ``GET path`` answers 200 when the
    store answers, 503 when it does not.

    ```python
    app.include_router(health_router(sessions))   # or health_router(backend)
    ```

    The body is JSON: ``{"status": "ok", "store": "RedisBackend", "latency_ms": 0.4}``, or
    ``{"status": "unavailable", "store": ..., "error": "BackendUnavailable"}``; never
    cached. The route is left out of the OpenAPI schema.
    """
    backend = store if isinstance(store, Backend) else store.backend
    name = backend_name(backend)
    router = APIRouter()

    @router.get(path, include_in_schema=False)
    async def session_store_health() -> JSONResponse:
        headers = {"Cache-Control": "no-store"}
        try:
            took = await ping_backend(backend)
        except (BackendUnavailable, BackendError) as exc:
            logger.warning(
                "Session store health check failed: %s",
                exc,
                extra={"event": "health_failed", "store": name},
            )
            failed = {"status": "unavailable", "store": name, "error": type(exc).__name__}
            return JSONResponse(failed, 503, headers)
        body: dict[str, object] = {"status": "ok", "store": name}
        body["latency_ms"] = round(took * 1000, 3)
        return JSONResponse(body, 200, headers)

    return router
