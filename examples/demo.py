"""A small shop with log-in, a profile, a cart and log-out, on the embedded SQLite store.

Run it with ``bash scripts/demo.sh`` (or ``python examples/demo.py`` in an environment that
has the package with its ``demo`` extra), then open http://127.0.0.1:8000. Sessions live in
``data/sessions.db``: stop the demo, start it again, and the browser is still logged in.
"""

import html
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from fastapi_session_deps import CookieFrontend, SessionManager, SessionModel, SQLBackend

HOST, PORT = "127.0.0.1", int(os.environ.get("DEMO_PORT", "8000"))
#: The demo's data: the SQLite database, and the key that signs its cookies.
DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR") or Path(__file__).resolve().parents[1] / "data")


class ShopSession(SessionModel):
    username: str | None = None
    cart: list[str] = []
    visits: int = 0
    flash: str | None = None


def secret_key() -> str:
    """SESSION_SECRET_KEY, as a real app reads it; else one the demo made up on its first run
    and keeps in its data directory, readable by its owner only, so that the cookies of one
    run still verify in the next."""
    if os.environ.get("SESSION_SECRET_KEY"):
        return os.environ["SESSION_SECRET_KEY"]
    path = DATA_DIR / "secret-key"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


backend = SQLBackend.from_url(f"sqlite+aiosqlite:///{DATA_DIR / 'sessions.db'}")
sessions = SessionManager(
    ShopSession,
    # secure=False: the demo is served over plain HTTP. Keep the default (True) in production.
    frontend=CookieFrontend(secret_key(), secure=False),
    backend=backend,
    idle_timeout=30 * 60,
    absolute_timeout=12 * 60 * 60,
    cleanup_interval=10 * 60,  # expired sessions leave the database every ten minutes
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await backend.create_table()  # the demo makes its own table; a real app migrates
    async with sessions.lifespan(app):
        yield


app = FastAPI(title="fastapi-session-deps demo", lifespan=lifespan)
app.add_middleware(sessions.middleware)

Session = Annotated[ShopSession, Depends(sessions.get_session)]
LoggedIn = Annotated[ShopSession, Depends(sessions.verifier(lambda s: s.username is not None))]


async def form(request: Request) -> dict[str, str]:
    """The posted form's fields (first value of each), without extra dependencies."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body).items()}


def page(body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Session demo</title>"
        "<style>body{font:16px system-ui;max-width:36em;margin:3em auto}"
        "form{margin:1em 0}.flash{background:#eef;padding:.5em}</style>" + body
    )


@app.get("/", response_class=HTMLResponse)
async def home(session: Session) -> HTMLResponse:
    session.visits += 1
    flash = f"<p class=flash>{html.escape(session.flash)}</p>" if session.flash else ""
    session.flash = None
    if session.username is None:
        return page(
            f"{flash}<h1>Welcome</h1><p>Visits this session: {session.visits}</p>"
            "<form method=post action=/login><input name=username placeholder='your name' "
            "required> <button>Log in</button></form>"
        )
    items = "".join(f"<li>{html.escape(item)}</li>" for item in session.cart) or "<li>empty</li>"
    return page(
        f"{flash}<h1>Hello, {html.escape(session.username)}</h1>"
        f"<p>Visits this session: {session.visits} · <a href=/profile>profile (JSON)</a></p>"
        f"<h2>Cart</h2><ul>{items}</ul>"
        "<form method=post action=/cart><input name=item placeholder='an item' required> "
        "<button>Add to cart</button></form>"
        "<form method=post action=/logout><button>Log out</button></form>"
    )


@app.post("/login")
async def login(request: Request, session: Session) -> RedirectResponse:
    username = (await form(request)).get("username", "").strip()[:40]
    if username:
        await sessions.regenerate(session)  # a new id at log-in: no session fixation
        session.username = username
        session.flash = f"Logged in as {username}."
    return RedirectResponse("/", status_code=303)


@app.get("/profile")
async def profile(session: LoggedIn) -> dict[str, object]:
    return {"username": session.username, "cart": session.cart, "visits": session.visits}


@app.post("/cart")
async def add_to_cart(request: Request, session: LoggedIn) -> RedirectResponse:
    item = (await form(request)).get("item", "").strip()[:60]
    if item:
        session.cart.append(item)
    return RedirectResponse("/", status_code=303)


@app.post("/logout")
async def logout(session: Session) -> RedirectResponse:
    await sessions.destroy(session)
    session.flash = "You have been logged out."  # lives in a fresh, anonymous session
    return RedirectResponse("/", status_code=303)


if __name__ == "__main__":
    import uvicorn

    print(f"fastapi-session-deps demo: open http://{HOST}:{PORT} in your browser", flush=True)
    print(f"(sessions are kept in {DATA_DIR / 'sessions.db'})", flush=True)
    uvicorn.run(app, host=HOST, port=PORT)
