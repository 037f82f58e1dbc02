"""Sessions in Redis, shared by every worker process and machine that serves the app.

Configured from the environment:

- ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``)
- ``SESSION_SECRET_KEY`` (required: at least 32 bytes)

Serve it with several workers, e.g.::

    SESSION_SECRET_KEY=... uvicorn redis_app:app --app-dir examples --workers 4
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI

from fastapi_session_deps import (
    CookieFrontend,
    RedisBackend,
    SessionManager,
    SessionModel,
)


class UserSession(SessionModel):
    user_id: int | None = None
    cart: list[str] = []


sessions = SessionManager(
    UserSession,
    # secret_key=None: read SESSION_SECRET_KEY; a missing or short key stops start-up.
    # secure=True is the default; set COOKIE_SECURE=0 only for plain-HTTP local runs.
    frontend=CookieFrontend(secure=os.environ.get("COOKIE_SECURE", "1") != "0"),
    backend=RedisBackend.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
    idle_timeout=30 * 60,
    absolute_timeout=12 * 60 * 60,
)
app = FastAPI(lifespan=sessions.lifespan)  # closes the Redis connections at shutdown
app.add_middleware(sessions.middleware)

Session = Annotated[UserSession, Depends(sessions.get_session)]
LoggedIn = Annotated[UserSession, Depends(sessions.verifier(lambda s: s.user_id is not None))]


@app.post("/login")
async def login(user_id: int, session: Session) -> dict[str, bool]:
    await sessions.regenerate(session)
    session.user_id = user_id
    return {"ok": True}


@app.get("/me")
async def me(session: LoggedIn) -> dict[str, object]:
    # `worker` shows which process answered: any of them sees the same session.
    return {"user_id": session.user_id, "cart": session.cart, "worker": os.getpid()}


@app.post("/cart")
async def add(item: str, session: LoggedIn) -> list[str]:
    session.cart.append(item)
    return session.cart


@app.post("/logout")
async def logout(session: Session) -> dict[str, bool]:
    await sessions.destroy(session)
    return {"ok": True}
