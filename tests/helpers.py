"""Test helpers: a settable clock, store wrappers, and a raw ASGI caller."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.types import ASGIApp, Message, Receive

from fastapi_session_deps import Backend, BackendUnavailable, SessionIndex, SessionLocks
from fastapi_session_deps.backends.base import EndBatch, EndedRecord, UserRecord

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
OLD_SECRET = "old-secret-key-0123456789-abcdefghijklmnopq"


class Clock:
    """A clock that only moves when told to; one instance drives manager and store."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingBackend(Backend, SessionLocks, SessionIndex):
    """Delegates every call to a real backend and counts them by name."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        #: The ``ttl`` of every ``get``, in order: ``None`` when the expiry was left alone.
        self.get_ttls: list[float | None] = []

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()
        self.get_ttls.clear()

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        self.calls["get"] += 1
        self.get_ttls.append(ttl)
        return await self.inner.get(key, ttl=ttl)

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        self.calls["set"] += 1
        await self.inner.set(key, fields, ttl=ttl)

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        self.calls["update"] += 1
        return await self.inner.update(key, changed, removed, ttl=ttl, exact=exact)

    async def delete(self, key: str) -> bool | None:
        self.calls["delete"] += 1
        return await self.inner.delete(key)

    async def replace_unchanged(
        self, key: str, replacements: Mapping[str, tuple[bytes, bytes]]
    ) -> None:
        self.calls["replace_unchanged"] += 1
        await self.inner.replace_unchanged(key, replacements)

    async def aclose(self) -> None:
        self.calls["aclose"] += 1
        await self.inner.aclose()

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        self.calls["acquire_lock"] += 1
        assert isinstance(self.inner, SessionLocks)
        return await self.inner.acquire_lock(key, token, ttl=ttl, wait=wait)

    async def release_lock(self, key: str, token: str) -> None:
        self.calls["release_lock"] += 1
        assert isinstance(self.inner, SessionLocks)
        await self.inner.release_lock(key, token)

    async def index_add(self, user: str, key: str, *, ttl: float) -> None:
        self.calls["index_add"] += 1
        assert isinstance(self.inner, SessionIndex)
        await self.inner.index_add(user, key, ttl=ttl)

    async def index_remove(self, user: str, keys: Collection[str]) -> None:
        self.calls["index_remove"] += 1
        assert isinstance(self.inner, SessionIndex)
        await self.inner.index_remove(user, keys)

    async def index_list(self, user: str) -> list[UserRecord]:
        self.calls["index_list"] += 1
        assert isinstance(self.inner, SessionIndex)
        return await self.inner.index_list(user)

    async def index_keys(self, user: str, *, offset: int = 0, limit: int = 1000) -> list[str]:
        self.calls["index_keys"] += 1
        assert isinstance(self.inner, SessionIndex)
        return await self.inner.index_keys(user, offset=offset, limit=limit)

    async def index_page(
        self, user: str, *, offset: int = 0, limit: int = 100
    ) -> list[UserRecord]:
        self.calls["index_page"] += 1
        assert isinstance(self.inner, SessionIndex)
        return await self.inner.index_page(user, offset=offset, limit=limit)

    async def index_end_some(
        self, user: str, *, keep: Collection[str] = (), after: str | None = None, limit: int = 1000
    ) -> EndBatch:
        self.calls["index_end_some"] += 1
        assert isinstance(self.inner, SessionIndex)
        return await self.inner.index_end_some(user, keep=keep, after=after, limit=limit)

    async def index_end(self, user: str, keys: Collection[str]) -> list[EndedRecord]:
        self.calls["index_end"] += 1
        assert isinstance(self.inner, SessionIndex)
        return await self.inner.index_end(user, keys)


class SwitchableBackend(CountingBackend):
    """A real backend behind a switch: while ``down`` names an operation, it fails.

    Stands in for a store that is unreachable at a chosen moment; the Redis fault tests use
    a real server that is stopped instead.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.down: set[str] = set()

    def _check(self, operation: str) -> None:
        if operation in self.down:
            raise BackendUnavailable("store is down", backend="test", operation=operation)

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        self._check("get")
        return await super().get(key, ttl=ttl)

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        self._check("set")
        await super().set(key, fields, ttl=ttl)

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        self._check("update")
        return await super().update(key, changed, removed, ttl=ttl, exact=exact)

    async def delete(self, key: str) -> bool | None:
        self._check("delete")
        return await super().delete(key)

    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        self._check("acquire_lock")
        return await super().acquire_lock(key, token, ttl=ttl, wait=wait)

    async def release_lock(self, key: str, token: str) -> None:
        self._check("release_lock")
        await super().release_lock(key, token)


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    messages: list[Message] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.header_list(name)
        return values[0] if values else None

    def header_list(self, name: str) -> list[str]:
        wanted = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.headers if k.lower() == wanted]

    def cookie(self, name: str = "session") -> str | None:
        """The value the response sets for cookie ``name`` ('' when it clears it)."""
        for header in self.header_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            if name in jar:
                return jar[name].value
        return None


def empty_body_receiver() -> Receive:
    """An ASGI ``receive`` for a request with no body, whose client then stays connected."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # Nothing more until the response ends, as with a real server.
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    return receive


def http_scope(
    path: str = "/", method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def call(
    app: ASGIApp,
    path: str = "/",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> RawResponse:
    """Call ``app`` once over raw ASGI, with byte-exact request headers."""
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await app(http_scope(path, method, headers), empty_body_receiver(), send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return RawResponse(start["status"], list(start.get("headers", [])), body, messages)


def cookie_header(value: str | bytes, name: str = "session") -> list[tuple[bytes, bytes]]:
    raw = value if isinstance(value, bytes) else value.encode("latin-1")
    return [(b"cookie", name.encode() + b"=" + raw)]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served(str):
    """A served app's base URL, which also knows the server's process id."""

    pid: int


@contextmanager
def uvicorn_server(
    app: str,
    *,
    app_dir: Path | None = None,
    env: dict[str, str] | None = None,
    workers: int = 1,
    factory: bool = False,
    ready_path: str = "/",
    log: Path | None = None,
) -> Iterator[Served]:
    """Serve ``app`` (``module:attribute``) with uvicorn on a free loopback port.

    Yields the base URL (with ``.pid``) once ``ready_path`` answers; stops the server (and
    its workers) on the way out, resuming it first if a test paused it. Bounded: 30 s to
    start, 20 s to stop. With ``log``, uvicorn logs at info level into that file.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning" if log is None else "info",
        "--no-access-log",
        # Idle keep-alive connections outlive a slow machine's pause between a test's
        # phases: uvicorn's 5 s default can close one just as the client reuses it.
        "--timeout-keep-alive",
        "60",
    ]
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    if factory:
        command.append("--factory")
    output = None if log is None else log.open("w")
    process = subprocess.Popen(  # noqa: S603
        command, env={**os.environ, **(env or {})}, stderr=output
    )
    base = Served(f"http://127.0.0.1:{port}")
    base.pid = process.pid
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + ready_path, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start {app}") from None
                time.sleep(0.1)
        yield base
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=20)
        if output is not None:
            output.close()


SERVICE_TOKEN = "service-token-0123456789-abcdefghijklmnop"


@contextmanager
def served_in_thread(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread of this process, on a free loopback port.

    In-process, so the app may share objects with the test (a store on the test's clock).
    """
    import threading

    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", timeout_keep_alive=60
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-thread uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


class NoLocksBackend(Backend):
    """A store that keeps nothing and has no session locks: for the paths that need locks."""

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        return None

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        pass

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        return False

    async def delete(self, key: str) -> None:
        pass
