"""The app the key-rotation race serves with uvicorn: an account in an encrypted session.

`create_app` (``uvicorn --factory``) is configured from the environment: REDIS_URL and
KEY_PREFIX, or SQL_URL and SQL_TABLE; SESSION_ENCRYPTION_KEYS, the key ring.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    EncryptedBackend,
    RedisBackend,
    SessionManager,
    SessionModel,
    SQLBackend,
)

SECRET = "rotation-test-secret-key-0123456789abcdef"


class Account(SessionModel):
    user_id: int | None = None
    role: str = "guest"
    counter: int = 0


def build(store: Backend, keys: list[str] | None = None) -> FastAPI:
    """The app on ``store`` (wrapped in `EncryptedBackend`, keys from the environment when
    none are given)."""
    sessions = SessionManager(
        Account,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=EncryptedBackend(store, keys=keys),
    )
    app = FastAPI(lifespan=sessions.lifespan)
    app.add_middleware(sessions.middleware)
    Session = Annotated[Account, Depends(sessions.get_session)]

    @app.post("/login")
    async def login(session: Session) -> None:
        await sessions.regenerate(session)
        session.user_id, session.role = 7, "admin"

    @app.get("/me")
    async def me(session: Session) -> Account:
        return session

    @app.post("/demote")
    async def demote(session: Session) -> None:
        session.user_id, session.role = None, "user"

    @app.post("/incr")
    async def incr(session: Session) -> None:
        session.counter += 1

    return app


def create_app() -> FastAPI:
    store: Backend
    if "SQL_URL" in os.environ:
        store = SQLBackend.from_url(os.environ["SQL_URL"], table_name=os.environ["SQL_TABLE"])
    else:
        store = RedisBackend.from_url(os.environ["REDIS_URL"], key_prefix=os.environ["KEY_PREFIX"])
    return build(store)
