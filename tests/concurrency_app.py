"""The app the concurrency tests serve with uvicorn, configured from the environment.

STORE (memory | redis | sql), REDIS_URL, KEY_PREFIX, SQL_URL, SQL_TABLE and POLICY (merge |
lock). The typed session
counts increments in one field; the `request.session` one gets a key per request. A user's
sessions can be signed in, and all but the current one revoked.

The tests count lost updates, not waits: 20 requests at once queue for one session's lock
(on SQLite, two processes on one file), so a loaded machine gets generous bounds.
"""

import os
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, Request

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    MemoryBackend,
    RedisBackend,
    SessionManager,
    SessionMiddleware,
    SessionModel,
    SQLBackend,
    load_session,
)

SECRET = "concurrency-test-secret-key-0123456789"
POLICY = os.environ.get("POLICY", "merge")
STORE_TIMEOUT, LOCK_TIMEOUT = 10.0, 30.0


class Counter(SessionModel):
    started: bool = False
    counter: int = 0


backend: Backend
if os.environ.get("STORE") == "redis":
    backend = RedisBackend.from_url(
        os.environ["REDIS_URL"],
        key_prefix=os.environ.get("KEY_PREFIX", "session:"),
        timeout=STORE_TIMEOUT,
    )
elif os.environ.get("STORE") == "sql":
    backend = SQLBackend.from_url(
        os.environ["SQL_URL"], table_name=os.environ["SQL_TABLE"], timeout=STORE_TIMEOUT
    )
else:
    backend = MemoryBackend()

sessions = SessionManager(
    Counter,
    frontend=CookieFrontend(SECRET, secure=False),
    backend=backend,
    concurrency=POLICY,  # type: ignore[arg-type]
    lock_timeout=LOCK_TIMEOUT,
    user_index=True,
)
app = FastAPI(lifespan=sessions.lifespan)
app.add_middleware(sessions.middleware)
app.add_middleware(
    SessionMiddleware,
    secret_key=SECRET,
    session_cookie="dsession",
    https_only=False,
    backend=backend,
    concurrency=POLICY,
    lock_timeout=LOCK_TIMEOUT,
)


@app.post("/start")
async def start(session: Annotated[Counter, Depends(sessions.get_session)]) -> None:
    session.started = True  # a change, so the session is stored and its cookie set


@app.post("/incr")
async def incr(session: Annotated[Counter, Depends(sessions.get_session)]) -> int:
    value = session.counter
    await anyio.sleep(0.001)  # the route's own I/O (a database call, say)
    session.counter = value + 1
    return session.counter


@app.get("/read")
async def read(session: Annotated[Counter, Depends(sessions.get_session_readonly)]) -> int:
    return session.counter


@app.post("/mark/{index}")
async def mark(index: int, request: Request) -> None:
    await load_session(request)
    await anyio.sleep(0.001)
    request.session[f"k{index}"] = index


@app.get("/marks")
async def marks(request: Request) -> int:
    await load_session(request)
    return len(request.session)


@app.post("/sign-in")
async def sign_in(session: Annotated[Counter, Depends(sessions.get_session)]) -> None:
    await sessions.login(session, "alice")


@app.post("/sign-out-others")
async def sign_out_others(session: Annotated[Counter, Depends(sessions.require_session)]) -> int:
    return await sessions.users.revoke_all("alice", keep=session)


@app.get("/signed-in")
async def signed_in(
    session: Annotated[Counter, Depends(sessions.get_session_readonly)],
) -> dict[str, object]:
    users = await sessions.users.list("alice", current=session)
    return {"pid": os.getpid(), "signed_in": any(info.current for info in users)}
