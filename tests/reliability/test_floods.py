"""Form-body floods against the CSRF check: bounded memory, and no stall of the event loop.

An anonymous visitor who opened one page with a form (so their session has a CSRF
secret) sends, with no header token, bodies built to be expensive to look through: a
million empty fields, an 8 MB body without a length, a 12 MiB upload to a route that
declares no file. Each is refused (413, or 400 for too many fields) after reading at most
``max_body_bytes``. A heartbeat task measures the longest the event loop went without
running it, and tracemalloc the most memory the request held.
"""

import re
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import anyio
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.types import Message, Receive

from fastapi_session_deps import CSRFProtection, MemoryBackend, SessionManager

from ..helpers import Clock, call, cookie_header, http_scope
from ..support import AppSession, manager_factory

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

#: The longest the check may keep the event loop from other tasks.
MAX_STALL = 0.050
#: The most memory one flood may hold at once.
MAX_HELD = 4 * 1024 * 1024
CHUNK = 64 * 1024


def flood_app(clock: Clock) -> tuple[FastAPI, SessionManager[AppSession]]:
    sessions = manager_factory(MemoryBackend(clock=clock), clock)()
    csrf = CSRFProtection(sessions)
    app = FastAPI(dependencies=[Depends(csrf)])
    app.add_middleware(sessions.middleware)

    @app.get("/form", response_class=HTMLResponse)
    async def form(session: Annotated[AppSession, Depends(sessions.get_session)]) -> str:
        return f"<form method=post>{csrf.input(session)}</form>"

    @app.post("/submit")
    async def submit(request: Request) -> int:
        return len(await request.body())

    return app, sessions


def streamed(pieces: Callable[[], AsyncIterator[bytes]]) -> Receive:
    """An ASGI ``receive`` that hands the body over a chunk at a time, as a server does,
    made as it goes: the sender holds no more than a chunk."""
    chunks = pieces()

    async def receive() -> Message:
        try:
            return {"type": "http.request", "body": await anext(chunks), "more_body": True}
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}

    return receive


def repeated(piece: bytes, total: int) -> Callable[[], AsyncIterator[bytes]]:
    async def pieces() -> AsyncIterator[bytes]:
        block = piece * (CHUNK // len(piece))
        for _ in range(total // len(block)):
            yield block

    return pieces


def multipart(total: int) -> Callable[[], AsyncIterator[bytes]]:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'--B\r\nContent-Disposition: form-data; name="f"; filename="f.bin"\r\n\r\n'
        for _ in range(total // CHUNK):
            yield b"\0" * CHUNK
        yield b"\r\n--B--\r\n"

    return pieces


FLOODS = {
    # name: (content type, body, Content-Length or none, the answer)
    "a million empty fields": (
        "application/x-www-form-urlencoded",
        repeated(b"a&", 2**21),
        True,
        413,
    ),
    "8 MB without a length": (
        "application/x-www-form-urlencoded",
        repeated(b"x", 2**23),
        False,
        413,
    ),
    "500,000 fields under the byte limit": (
        "application/x-www-form-urlencoded",
        repeated(b"a&", 2**20),
        True,
        400,
    ),
    "a 12 MiB upload": ("multipart/form-data; boundary=B", multipart(12 * 2**20), True, 413),
}


async def send_flood(app: FastAPI, cookie: str, name: str) -> int:
    content_type, pieces, with_length, _ = FLOODS[name]
    headers = [*cookie_header(cookie), (b"content-type", content_type.encode())]
    if with_length:
        headers.append((b"content-length", str(sum([len(p) async for p in pieces()])).encode()))
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await app(http_scope("/submit", "POST", headers), streamed(pieces), send)
    return next(m["status"] for m in messages if m["type"] == "http.response.start")


async def a_visitor_with_a_form(app: FastAPI) -> str:
    page = await call(app, "/form")
    assert re.search(rb'name="csrf_token"', page.body)
    cookie = page.cookie()
    assert cookie
    return cookie


@pytest.mark.parametrize("name", FLOODS)
async def test_a_flood_is_refused_without_stalling_the_loop(clock: Clock, name: str) -> None:
    app, _ = flood_app(clock)
    cookie = await a_visitor_with_a_form(app)
    stalls: list[float] = []
    done, beating = anyio.Event(), anyio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await anyio.sleep(0.002)
            stalls.append(time.perf_counter() - started - 0.002)
            if len(stalls) == 3:
                beating.set()

    async with anyio.create_task_group() as group:
        group.start_soon(heartbeat)
        await beating.wait()  # the heartbeat runs before the flood starts
        status = await send_flood(app, cookie, name)
        done.set()  # the beat under way when the flood ended is still measured
    assert status == FLOODS[name][3]
    assert len(stalls) > 3
    assert max(stalls) < MAX_STALL


@pytest.mark.parametrize("name", FLOODS)
async def test_a_flood_holds_bounded_memory(clock: Clock, name: str) -> None:
    app, _ = flood_app(clock)
    cookie = await a_visitor_with_a_form(app)
    tracemalloc.start()
    try:
        status = await send_flood(app, cookie, name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == FLOODS[name][3]
    assert peak < MAX_HELD
