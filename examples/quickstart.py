"""The quickstart of the README, exactly as written there."""

from typing import Annotated
from fastapi import Depends, FastAPI
from fastapi_session_deps import CookieFrontend, MemoryBackend, SessionManager, SessionModel

class UserSession(SessionModel):
    user_id: int | None = None
    cart: list[str] = []

sessions = SessionManager(
    UserSession,
    frontend=CookieFrontend(secret_key="a-32-byte-or-longer-secret-key-here!!", secure=False),
    backend=MemoryBackend(),
    idle_timeout=1800,          # seconds, or a timedelta
    absolute_timeout=86400,     # seconds, or a timedelta; None = no absolute limit
)
app = FastAPI(lifespan=sessions.lifespan)
app.add_middleware(sessions.middleware)   # the commit point: see below

Session = Annotated[UserSession, Depends(sessions.get_session)]

@app.post("/login")
async def login(session: Session):
    await sessions.regenerate(session)   # new id, same data: fixation defence
    session.user_id = 1
    return {"ok": True}

@app.get("/me")
async def me(session: Annotated[UserSession, Depends(sessions.require_session)]):
    return {"user_id": session.user_id}   # 401 when there is no valid session

@app.post("/cart")
async def add(item: str, session: Session):
    session.cart.append(item)             # in-place edit is saved
    return session.cart

@app.post("/logout")
async def logout(session: Session):
    await sessions.destroy(session)       # server-side delete + expired cookie
    return {"ok": True}

logged_in = sessions.verifier(lambda s: s.user_id is not None)   # 403 when false
