"""What hiredis buys: Redis replies parsed in C, against redis-py's own parser, in one run.

1. A `RedisBackend` read (one ``HGETALL``) of records of several shapes, from a log-in's
   few small fields to hundreds of fields: µs per read, with hiredis and without, and the
   ratio.
2. The benchmark's four routes in process (``bench/apps/ours.py`` on Redis), with hiredis
   and without, as in ``bench/RESULTS.md``.

(A script named after the package would shadow it: redis-py would find no hiredis.)

Every variant runs in every round (interleaved), against one private redis-server on
loopback; the fastest round is reported. A write alone is the ``/login`` route.

    bash bench/run.sh parsers [--quick] [--output bench/PARSERS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis._parsers import _AsyncRESP2Parser  # noqa: E402
from redis.utils import HIREDIS_AVAILABLE  # noqa: E402

from bench.compare import (  # noqa: E402
    LIBRARIES,
    build,
    interleaved,
    publish,
    report_header,
    timing_table,
    versions,
)
from fastapi_session_deps import RedisBackend  # noqa: E402
from fastapi_session_deps._record import CREATED_FIELD  # noqa: E402
from tests.redis_servers import RedisServer  # noqa: E402

#: Records by what they stand for: field name -> stored value, as a commit writes them.
SHAPES: dict[str, dict[str, bytes]] = {
    "a log-in: 2 small fields": {"user_id": b"1", "counter": b"0"},
    "a cart: 50 fields of 200 B": {f"item_{i}": b'"' + b"x" * 198 + b'"' for i in range(50)},
    "500 fields of 100 B": {f"field_{i}": b'"' + b"x" * 98 + b'"' for i in range(500)},
    "one field of 32 KB": {"document": b'"' + b"x" * 32_766 + b'"'},
}
PARSERS = ("with hiredis", "without hiredis")


async def reads(redis_url: str, repeats: int, count: int) -> dict[str, dict[str, float]]:
    """µs per `RedisBackend.get` of each shape, with each parser: the fastest round."""
    backends = {
        "with hiredis": RedisBackend.from_url(redis_url),
        "without hiredis": RedisBackend.from_url(redis_url, parser_class=_AsyncRESP2Parser),
    }
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        for shape, fields in SHAPES.items():
            record = {**fields, CREATED_FIELD: b"1796000000.0"}
            await backends["with hiredis"].set(shape, record, ttl=3600)
        for backend in backends.values():  # warm up: connections
            for shape in SHAPES:
                for _ in range(20):
                    await backend.get(shape)
        for _ in range(repeats):
            for shape in SHAPES:
                for parser, backend in backends.items():
                    started = time.perf_counter()
                    for _ in range(count):
                        if await backend.get(shape) is None:
                            raise RuntimeError(f"{shape}: the record is gone")
                    elapsed = (time.perf_counter() - started) / count * 1e6
                    samples.setdefault((shape, parser), []).append(elapsed)
    finally:
        for backend in backends.values():
            await backend.aclose()
    return {shape: {p: min(samples[(shape, p)]) for p in PARSERS} for shape in SHAPES}


def reads_table(timing: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "",
        "### A RedisBackend read (HGETALL) by record: µs (fastest round), and the ratio",
        "",
        "| record | bytes | " + " | ".join(PARSERS) + " | ratio |",
        "| --- | ---: |" + " ---: |" * (len(PARSERS) + 1),
    ]
    for shape, row in timing.items():
        size = sum(len(name) + len(value) for name, value in SHAPES[shape].items())
        with_it, without = (row[p] for p in PARSERS)
        lines.append(
            f"| {shape} | {size:,} | {with_it:.1f} | {without:.1f} | x{with_it / without:.2f} |"
        )
    return lines


async def main(options: argparse.Namespace) -> None:
    if not HIREDIS_AVAILABLE:  # both rows would measure redis-py's own parser
        raise SystemExit("redis-py does not find hiredis: install the redis extra")
    repeats, count = (5, 100) if options.quick else (21, 300)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        redis = RedisServer(Path(directory) / "redis").start()
        try:
            by_shape = await reads(redis.url, repeats, count)
            names = (
                "bare FastAPI",
                "fastapi-session-deps, Redis",
                "fastapi-session-deps, Redis, without hiredis",
            )
            apps = {
                lib.name.replace("fastapi-session-deps, ", ""): build(lib, redis.url)
                for lib in LIBRARIES
                if lib.name in names
            }
            routes = await interleaved(apps, repeats, count, estimate=min)
        finally:
            redis.stop()
    settings = (
        f"{'quick' if options.quick else 'full'} run: the fastest of {repeats} interleaved "
        f"rounds of {count} calls or requests each; took {time.monotonic() - started:.0f} s"
    )
    lines = report_header(settings, f"{versions()}, hiredis {version('hiredis')}")
    lines += reads_table(by_shape)
    lines += [
        "",
        "Bytes are the record's field names and values, the creation time not counted.",
    ]
    table = timing_table(routes, "library", "fastest round")
    lines += ["", "### The benchmark's routes on Redis: µs per request in process", *table[2:]]
    await publish("\n".join(lines) + "\n", options.output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--output", help="also write the report (Markdown) to this file")
    asyncio.run(main(parser.parse_args()))
