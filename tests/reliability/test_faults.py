"""Store faults under load: Redis stopped, restarted and paused under 20 concurrent clients.

A real uvicorn serves ``fault_app`` on a loopback port; a real redis-server of the test's own
(``appendfsync always``, so an acknowledged write is on disk) is stopped and restarted by
its pid and paused with SIGSTOP while 20 clients keep incrementing counters in sessions of
their own. Bounded: about 12 seconds of load, every request with a time limit.

Counted: answers that are 5xx but not 503 (must be 0), answers slower than twice the store
timeout (0), and acknowledged increments missing afterwards (0).
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest

from ..helpers import uvicorn_server
from ..redis_servers import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

CLIENTS = 20
STORE_TIMEOUT = 0.5
#: Seconds of load before each fault, and after the last.
PHASE_SECONDS = 2.0


@dataclass
class Client:
    acknowledged: list[int] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    slow: int = 0


async def run_client(http: httpx.AsyncClient, client: Client, stop: anyio.Event) -> None:
    while not stop.is_set():
        begin = time.monotonic()
        try:
            response = await http.post("/incr", timeout=10)
        except httpx.TransportError:  # pragma: no cover - the app server itself never stops
            client.statuses.append(0)
            continue
        if time.monotonic() - begin > 2 * STORE_TIMEOUT:
            client.slow += 1
        client.statuses.append(response.status_code)
        if response.status_code == 200:
            client.acknowledged.append(response.json()["counter"])
        else:
            await anyio.sleep(0.02)  # as a client honouring Retry-After a little


async def test_stop_restart_and_pause_under_load_lose_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis", durable=True).start()
    env = {
        "REDIS_URL": redis.url,
        "KEY_PREFIX": f"faults:{uuid.uuid4().hex}:",
        "STORE_TIMEOUT": str(STORE_TIMEOUT),
    }
    faults: list[Callable[[], object]] = [
        redis.stop,  # refused connections
        redis.start,  # same port, same append-only file
        redis.pause,  # SIGSTOP: connections hang until the timeout
        redis.resume,
    ]
    clients = [Client() for _ in range(CLIENTS)]
    try:
        with uvicorn_server(
            "tests.reliability.fault_app:app",
            app_dir=Path(__file__).parents[2],
            env=env,
            ready_path="/read",
        ) as base:
            https = [httpx.AsyncClient(base_url=base) for _ in range(CLIENTS)]
            try:
                stop = anyio.Event()
                with anyio.fail_after(60):
                    async with anyio.create_task_group() as group:
                        for http, client in zip(https, clients, strict=True):
                            group.start_soon(run_client, http, client, stop)
                        for fault in faults:
                            await anyio.sleep(PHASE_SECONDS)
                            fault()
                        await anyio.sleep(PHASE_SECONDS)  # recovered: load goes on
                        stop.set()
                final = [(await http.get("/read")).json()["counter"] for http in https]
            finally:
                for http in https:
                    await http.aclose()
    finally:
        redis.stop()

    statuses = [status for client in clients for status in client.statuses]
    errors = [status for status in statuses if status >= 500 and status != 503]
    unavailable = statuses.count(503)
    slow = sum(client.slow for client in clients)
    lost = sum(
        1
        for client, counter in zip(clients, final, strict=True)
        for value in client.acknowledged
        if value > counter
    )
    print(
        f"\nfaults under load: {len(statuses)} requests, {statuses.count(200)} ok, "
        f"{unavailable} answered 503, {len(errors)} other 5xx, {slow} over "
        f"{2 * STORE_TIMEOUT:g} s, {lost} acknowledged writes lost"
    )
    assert errors == []
    assert slow == 0
    assert lost == 0
    assert unavailable > 0  # the faults did happen
    assert statuses.count(200) > 0
    for client, counter in zip(clients, final, strict=True):
        assert client.acknowledged, "every client got answers after the recovery"
        assert client.acknowledged[-1] == counter  # its last acknowledged write is the state
