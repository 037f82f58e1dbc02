"""The app the fault tests serve with uvicorn: a counter in a session on Redis.

Configured from the environment: REDIS_URL, KEY_PREFIX, STORE_TIMEOUT (seconds).
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI

from fastapi_session_deps import CookieFrontend, RedisBackend, SessionManager, SessionModel

TIMEOUT = float(os.environ.get("STORE_TIMEOUT", "0.5"))


class Counter(SessionModel):
    counter: int = 0


sessions = SessionManager(
    Counter,
    frontend=CookieFrontend("reliability-test-secret-key-0123456789", secure=False),
    backend=RedisBackend.from_url(
        os.environ["REDIS_URL"],
        key_prefix=os.environ.get("KEY_PREFIX", "session:"),
        timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
    ),
)
app = FastAPI(lifespan=sessions.lifespan)
app.add_middleware(sessions.middleware)
Session = Annotated[Counter, Depends(sessions.get_session)]


@app.post("/incr")
async def incr(session: Session) -> dict[str, int]:
    session.counter += 1
    return {"counter": session.counter}


@app.get("/read")
async def read(
    session: Annotated[Counter, Depends(sessions.get_session_readonly)],
) -> dict[str, int]:
    return {"counter": session.counter}
