"""200 concurrent updates of one session through real uvicorn workers, per policy and store.

Bounded: 200 requests, 20 at a time, on loopback, with a time limit per run. The lost
updates of every run are printed at the end of the test session.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from fastapi_session_deps import SQLBackend

from .helpers import uvicorn_server
from .support import SQL_STORES, sql_url

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

REQUESTS, CONCURRENCY = 200, 20
APP_DIR = Path(__file__).parent
#: (policy, store, workers, what, lost) for the end-of-session report.
REPORT: list[tuple[str, str, int, str, int]] = []


@contextmanager
def serve(store: str, policy: str, workers: int, **settings: str) -> Iterator[str]:
    env = {"STORE": store, "POLICY": policy, "KEY_PREFIX": f"c:{uuid.uuid4()}:", **settings}
    with uvicorn_server(
        "concurrency_app:app", app_dir=APP_DIR, env=env, workers=workers, ready_path="/read"
    ) as base:
        yield base


async def hammer(client: httpx.AsyncClient, paths: list[str]) -> list[int]:
    limit = anyio.Semaphore(CONCURRENCY)
    statuses: list[int] = []

    async def one(path: str) -> None:
        async with limit:
            statuses.append((await client.post(path)).status_code)

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            for path in paths:
                group.start_soon(one, path)
    return statuses


async def store_settings(store: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The app's environment for ``store``: its server, and a table of its own on SQL."""
    if store == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    if store in SQL_STORES:
        url = sql_url(store, request)
        backend = SQLBackend.from_url(url, table_name=f"c_{uuid.uuid4().hex[:12]}")
        await backend.create_table()
        await backend.aclose()
        return {"STORE": "sql", "SQL_URL": url, "SQL_TABLE": backend.table.name}
    return {}


CASES = [
    ("memory", 1),  # a memory store is one process's: two workers would not share it
    ("redis", 1),
    ("redis", 2),
    ("sqlite", 2),  # two processes on one file
    ("postgres", 2),
    ("mariadb", 2),
]


@pytest.mark.parametrize(("store", "workers"), CASES, ids=[f"{s}-{w}w" for s, w in CASES])
@pytest.mark.parametrize("policy", ["lock", "merge"])
async def test_concurrent_updates_of_one_session(
    store: str, workers: int, policy: str, request: pytest.FixtureRequest
) -> None:
    settings = await store_settings(store, request)
    with serve(store, policy, workers, **settings) as base:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            await client.post("/start")
            await client.post("/mark/-1")  # creates the request.session one
            same_field = await hammer(client, ["/incr"] * REQUESTS)
            counted = int((await client.get("/read")).text)
            other_fields = await hammer(client, [f"/mark/{i}" for i in range(REQUESTS)])
            marks = int((await client.get("/marks")).text) - 1

        assert same_field == [200] * REQUESTS  # every increment was acknowledged
        assert other_fields == [200] * REQUESTS
        REPORT.append((policy, store, workers, "same field", REQUESTS - counted))
        REPORT.append((policy, store, workers, "different fields", REQUESTS - marks))
        # Changes to different fields are never lost, whatever the policy.
        assert marks == REQUESTS
        if policy == "lock":
            assert counted == REQUESTS  # the lock loses no update at all
        else:
            assert counted <= REQUESTS  # last writer wins on one field: reported, not zero


@pytest.mark.parametrize("store", ["redis", "postgres"])
async def test_a_session_revoked_on_one_worker_is_refused_by_every_worker(
    store: str, request: pytest.FixtureRequest
) -> None:
    settings = await store_settings(store, request)
    with serve(store, "merge", 2, **settings) as base:
        async with (
            httpx.AsyncClient(base_url=base) as phone,
            httpx.AsyncClient(base_url=base) as laptop,
        ):
            await phone.post("/sign-in")
            await laptop.post("/sign-in")
            assert (await phone.get("/signed-in")).json()["signed_in"]
            assert (await laptop.post("/sign-out-others")).json() == 1
            answers = []
            for _ in range(40):  # fresh connections, so both workers answer
                async with httpx.AsyncClient(base_url=base, cookies=phone.cookies) as fresh:
                    answers.append((await fresh.get("/signed-in")).json())
            assert (await laptop.get("/signed-in")).json()["signed_in"]
    assert len({answer["pid"] for answer in answers}) == 2
    assert not any(answer["signed_in"] for answer in answers)


def report_lines() -> list[str]:
    if not REPORT:
        return []
    lines = [
        f"lost updates out of {REQUESTS} concurrent ({CONCURRENCY} at a time), real uvicorn:",
        f"  {'policy':7} {'store':8} {'workers':>7}  {'updates to':17} {'lost':>4}",
    ]
    for policy, store, workers, what, lost in sorted(REPORT):
        lines.append(f"  {policy:7} {store:8} {workers:>7}  {what:17} {lost:>4}")
    return lines
