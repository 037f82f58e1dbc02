"""Deleting expired records in the background, from an app's lifespan (``cleanup_interval=``).

Off by default: cron (``python -m fastapi_session_deps cleanup``) is the usual choice when
many app servers share one database. Every worker that runs it deletes in small batches, so
several at once only share the work.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from ._faults import faults
from .backends.base import Backend
from .exceptions import BackendError, BackendUnavailable

__all__ = ["clean_periodically", "cleaning"]

logger = logging.getLogger("fastapi_session_deps")


async def clean_periodically(
    backend: Backend,
    interval: float,
    *,
    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    spread: Callable[[], float] | None = None,
) -> None:
    """Run ``backend.delete_expired()`` every ``interval`` seconds, until cancelled.

    The first run comes after a random part of the interval, so that workers started
    together do not all clean at once; later ones every ``interval`` give or take 10 %.
    A store fault is logged and the next run tried as planned: cleanup never stops the app.
    """
    spread = spread or random.random
    await sleep(interval * spread())
    while True:
        try:
            deleted = await backend.delete_expired()
        except (BackendUnavailable, BackendError) as exc:
            faults.report("Expired sessions not deleted this time", exc)
        else:
            if deleted:
                logger.info(
                    "Deleted %d expired sessions",
                    deleted,
                    extra={"event": "cleanup", "deleted": deleted},
                )
        await sleep(interval * (0.9 + 0.2 * spread()))


@asynccontextmanager
async def cleaning(backend: Backend, interval: float | None) -> AsyncIterator[None]:
    """Clean ``backend`` every ``interval`` seconds while the block runs (never if None)."""
    if interval is None:
        yield
        return
    async with anyio.create_task_group() as group:
        group.start_soon(clean_periodically, backend, interval)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
