"""This checkout against an earlier commit, per request, in one run.

Makes a temporary git worktree of REV, and measures both trees in alternating child
processes (each importing its own tree's package) on the same routes, on memory and on a
real local Redis: µs per request in process, median of the repetitions. Prints both and
the change. A refactoring should come out within the noise (a few per cent on this class
of machine); compare only within one run.

    .venv/bin/python bench/against.py HEAD~1 [--repeats 7] [--requests 2000]
        [--without opentelemetry] [--fastest]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_servers import RedisServer  # noqa: E402

#: Run in a child process, with the tree to measure first on sys.path.
CHILD = r"""
import asyncio, json, sys, time
tree, store, url, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for blocked in filter(None, sys.argv[5].split(",")):  # as if not installed
    sys.modules[blocked] = None
sys.path.insert(0, tree)
from typing import Annotated
from fastapi import Depends, FastAPI
import fastapi_session_deps as fsd
assert fsd.__file__.startswith(tree), fsd.__file__

class Data(fsd.SessionModel):
    user_id: int | None = None
    counter: int = 0
    cart: list[str] = []

backend = fsd.MemoryBackend() if store == "memory" else fsd.RedisBackend.from_url(url)
sessions = fsd.SessionManager(
    Data, frontend=fsd.CookieFrontend("bench-secret-key-0123456789-abcdefghij", secure=False),
    backend=backend,
)
app = FastAPI()
app.add_middleware(sessions.middleware)
Session = Annotated[Data, Depends(sessions.get_session)]

@app.get("/noop")
async def noop():
    return {"ok": True}

@app.get("/read")
async def read(session: Session):
    return {"user_id": session.user_id}

@app.post("/incr")
async def incr(session: Session):
    session.counter += 1
    return {"counter": session.counter}

@app.post("/login")
async def login(session: Session):
    await sessions.regenerate(session)
    session.user_id = 1
    return {"ok": True}

def scope(path, method, headers):
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "headers": headers,
            "client": ("127.0.0.1", 1), "server": ("testserver", 80)}

async def call(path, method, headers):
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    await app(scope(path, method, headers), receive, send)
    return sent

async def main():
    start = (await call("/login", "POST", []))[0]
    cookie = next(v for k, v in start["headers"] if k == b"set-cookie").split(b";")[0]
    headers = [(b"cookie", cookie)]
    results = {}
    for path, method, hdrs in (("/noop", "GET", headers), ("/read", "GET", headers),
                               ("/incr", "POST", headers), ("/login", "POST", [])):
        for _ in range(200):
            await call(path, method, hdrs)
        began = time.perf_counter()
        for _ in range(count):
            await call(path, method, hdrs)
        results[path] = (time.perf_counter() - began) / count * 1e6
    print(json.dumps(results))

asyncio.run(main())
"""


def measure(tree: Path, store: str, url: str, count: int, without: str) -> dict[str, float]:
    output = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", CHILD, str(tree), store, url, str(count), without],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--without", default="", metavar="MODULES", help="packages to measure as not installed"
    )
    parser.add_argument(
        "--fastest", action="store_true", help="the fastest repetition, not the median"
    )
    options = parser.parse_args()
    estimate = min if options.fastest else statistics.median
    with tempfile.TemporaryDirectory(prefix="against-") as scratch:
        before = Path(scratch) / "before"
        git = shutil.which("git") or "git"
        subprocess.run(  # noqa: S603 - git, on this repository
            [git, "-C", str(ROOT), "worktree", "add", "--detach", str(before), options.rev],
            check=True,
            capture_output=True,
        )
        server = RedisServer(Path(scratch) / "redis").start()
        try:
            trees = {"before": before, "after": ROOT}
            samples: dict[tuple[str, str, str], list[float]] = {}
            for _ in range(options.repeats):
                for store in ("memory", "redis"):
                    for name, tree in trees.items():
                        for path, value in measure(
                            tree, store, server.url, options.requests, options.without
                        ).items():
                            samples.setdefault((name, store, path), []).append(value)
        finally:
            server.stop()
            subprocess.run(  # noqa: S603
                [git, "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                check=False,
                capture_output=True,
            )
    how = "fastest" if options.fastest else "median"
    without = f"; without {options.without}" if options.without else ""
    print(
        f"µs per request in process, {how} of {options.repeats}; before = {options.rev}{without}"
    )
    print(f"{'store':8} {'route':8} {'before':>9} {'after':>9} {'change':>8}")
    for store in ("memory", "redis"):
        for path in ("/noop", "/read", "/incr", "/login"):
            old = estimate(samples[("before", store, path)])
            new = estimate(samples[("after", store, path)])
            print(f"{store:8} {path:8} {old:9.1f} {new:9.1f} {(new - old) / old:+8.1%}")


if __name__ == "__main__":
    main()
