"""What each optional feature of fastapi-session-deps costs per request, in one run.

Encryption at rest (`EncryptedBackend`, AES-256-GCM over each stored value) on the memory
store, on Redis and on SQLite, beside the same store without it: µs per request in process
(raw ASGI calls), the median of interleaved repetitions, with the difference to bare
FastAPI and the ratio.

Run it with ``bash bench/run.sh features`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare import interleaved, publish, report_header, timing_table  # noqa: E402
from bench.stores import Store, build, make_table, versions  # noqa: E402
from fastapi_session_deps.backends.encrypted import new_key  # noqa: E402
from tests.redis_servers import RedisServer  # noqa: E402


async def main(options: argparse.Namespace) -> None:
    repeats, count = (3, 300) if options.quick else (7, 2000)
    started = time.monotonic()
    key = {"BENCH_ENCRYPTION_KEY": new_key()}
    with tempfile.TemporaryDirectory() as directory:
        redis = RedisServer(Path(directory) / "redis").start()
        try:
            sqlite = {"BENCH_SQL_URL": f"sqlite+aiosqlite:///{directory}/sessions.db"}
            await make_table(sqlite["BENCH_SQL_URL"])
            redis_env = {"BENCH_REDIS_URL": redis.url}
            stores = [
                Store("bare FastAPI", "bare"),
                Store("memory"),
                Store("memory, encrypted", env=key),
                Store("Redis", env=redis_env),
                Store("Redis, encrypted", env={**redis_env, **key}),
                Store("SQLite", env=sqlite),
                Store("SQLite, encrypted", env={**sqlite, **key}),
            ]
            timing = await interleaved({s.name: build(s) for s in stores}, repeats, count)
        finally:
            redis.stop()
    settings = (
        f"{'quick' if options.quick else 'full'} run: {repeats} interleaved repetitions of "
        f"{count} requests per route; took {time.monotonic() - started:.0f} s"
    )
    lines = report_header(settings, versions()) + timing_table(timing, "store")
    lines += [
        "",
        "Encryption seals each changed value on a write and opens every value on a read",
        "(AES-256-GCM, `cryptography`); /noop touches no session and pays nothing.",
    ]
    await publish("\n".join(lines) + "\n", options.output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--output", help="also write the report (Markdown) to this file")
    asyncio.run(main(parser.parse_args()))
