"""Many clients' store calls at once, through a PgBouncer in transaction mode.

``python -m tests.backends.astray URL`` runs them on a store without the
``transaction_pooling`` setting and prints how many calls failed and how many of those
named a lost prepared statement (tests/backends/test_pgbouncer.py runs it in a process
of its own). Any failure other than `BackendUnavailable` ends it with a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys

import anyio

from fastapi_session_deps import BackendUnavailable, SQLBackend
from fastapi_session_deps._record import OWNER_FIELD

#: Clients at once, against PgBouncer's four server connections.
CLIENTS = 24
ROUNDS = 8


async def many_at_once(store: SQLBackend) -> list[BaseException]:
    """Every store operation a request makes, from many clients at once; the failures."""
    failures: list[BaseException] = []

    async def client(number: int) -> None:
        key = f"client-{number}"
        try:
            fields = {"n": b"0", "\x00created": b"1.0", OWNER_FIELD: b'"ada"'}
            await store.set(key, fields, ttl=60)
            for round_ in range(ROUNDS):
                assert await store.get(key, ttl=60) is not None
                assert await store.update(key, {"n": str(round_).encode()}, ttl=60)
                await store.index_add("ada", key, ttl=60)
            assert (await store.get(key) or {}).get("n") == str(ROUNDS - 1).encode()
        except BackendUnavailable as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for number in range(CLIENTS):
            group.start_soon(client, number)
    return failures


async def main(url: str) -> None:
    store = SQLBackend.from_url(url, table_name=f"astray_{os.getpid()}", timeout=10)
    try:
        await store.create_table()
        failures = await many_at_once(store)
    finally:
        await store.drop_table()
        await store.aclose()
    astray = sum("prepared statement" in str(failure) for failure in failures)
    print(len(failures), astray)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
