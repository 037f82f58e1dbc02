"""An app written the way the common FastAPI session tutorials write it.

The changes from a tutorial that uses Starlette's cookie sessions are the import, the
``backend=`` argument, and one line at log-in: ``await regenerate_session(request)``. With
the data on the server, a log-in that keeps the session id would let an id planted in the
visitor's browser before log-in ride along into the logged-in session (session fixation);
Starlette's cookie-only sessions carry no id, so they never needed it.
"""

import os
import secrets

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse

# was: from starlette.middleware.sessions import SessionMiddleware
from fastapi_session_deps import MemoryBackend, SessionMiddleware, regenerate_session

app = FastAPI()
app.add_middleware(
    SessionMiddleware,
    secret_key=os.environ.get("SESSION_SECRET_KEY") or secrets.token_urlsafe(48),
    https_only=False,  # a plain-HTTP local example; keep the secure default in production
    backend=MemoryBackend(),
)


@app.post("/login")
async def login(request: Request, username: str) -> RedirectResponse:
    await regenerate_session(request)  # a new id at log-in: the defence against fixation
    request.session.update({"user": username, "visits": 0})
    return RedirectResponse("/profile", status_code=303)


@app.get("/profile")
async def profile(request: Request) -> dict[str, object]:
    user = request.session.get("user")
    if user is None:
        raise HTTPException(status_code=401, detail="Not logged in")
    request.session["visits"] = request.session.get("visits", 0) + 1
    return {"user": user, "visits": request.session["visits"]}


@app.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@app.get("/")
async def home() -> dict[str, str]:
    return {"hello": "world"}
