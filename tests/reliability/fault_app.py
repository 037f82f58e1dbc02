"""The app the fault tests serve with uvicorn: a counter in a session on Redis or SQL.

Configured from the environment: REDIS_URL and KEY_PREFIX, or SQL_URL and SQL_TABLE;
STORE_TIMEOUT (seconds).
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    RedisBackend,
    SessionManager,
    SessionModel,
    SQLBackend,
)

TIMEOUT = float(os.environ.get("STORE_TIMEOUT", "0.5"))


class Counter(SessionModel):
    counter: int = 0


backend: Backend
if "SQL_URL" in os.environ:
    backend = SQLBackend.from_url(
        os.environ["SQL_URL"], table_name=os.environ["SQL_TABLE"], timeout=TIMEOUT
    )
else:
    backend = RedisBackend.from_url(
        os.environ["REDIS_URL"],
        key_prefix=os.environ.get("KEY_PREFIX", "session:"),
        timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
    )
sessions = SessionManager(
    Counter,
    frontend=CookieFrontend("reliability-test-secret-key-0123456789", secure=False),
    backend=backend,
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
