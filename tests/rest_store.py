"""A small REST session store, as the tutorial's second program imagines one.

``GET /sessions/{id}`` answers the JSON body last ``PUT`` there (404 if none), ``DELETE``
removes it. It keeps records in a dict that a test can read, and counts the requests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class RestStore:
    """The store's state, and the ASGI app that serves it."""

    def __init__(self) -> None:
        self.records: dict[str, Any] = {}
        self.requests: Counter[str] = Counter()
        self.app = Starlette(
            routes=[Route("/sessions/{key}", self._endpoint, methods=["GET", "PUT", "DELETE"])]
        )

    async def _endpoint(self, request: Request) -> Response:
        key = request.path_params["key"]
        self.requests[request.method] += 1
        if request.method == "GET":
            if key not in self.records:
                return JSONResponse({"detail": "no such session"}, status_code=404)
            return JSONResponse(self.records[key])
        if request.method == "PUT":
            self.records[key] = json.loads(await request.body())
            return Response(status_code=204)
        self.records.pop(key, None)
        return Response(status_code=204)


Functions = tuple[
    Callable[[str], Awaitable[Any]],
    Callable[[str, dict[str, Any]], Awaitable[None]],
    Callable[[str], Awaitable[None]],
]


@asynccontextmanager
async def rest_functions(url: str) -> AsyncIterator[Functions]:
    """The tutorial's three functions, on one pooled client: GET, PUT and DELETE ``url + key``.

    As in the tutorial, a 4xx or 5xx on GET means "no session"; anything else that goes
    wrong raises.
    """
    async with httpx.AsyncClient() as client:

        async def get(key: str) -> Any:
            response = await client.get(f"{url}{key}")
            if response.is_error:
                return None
            return response.json()

        async def save(key: str, data: dict[str, Any]) -> None:
            (await client.put(f"{url}{key}", json=data)).raise_for_status()

        async def delete(key: str) -> None:
            (await client.delete(f"{url}{key}")).raise_for_status()

        yield get, save, delete
