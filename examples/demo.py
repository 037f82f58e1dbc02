"""A small shop with log-in, a profile, a cart and log-out, on the embedded SQLite store.

Run it with ``bash scripts/demo.sh`` (or ``python examples/demo.py`` in an environment that
has the package with its ``demo`` extra), then open http://127.0.0.1:8000. Sessions live in
``data/sessions.db``: stop the demo, start it again, and the browser is still logged in.
"Your devices" lists every browser signed in as you and signs any of them out; "Session"
shows this browser's session as the library sees it. Every form carries the session's CSRF
token, log-in and log-out leave a one-time message, and every value in the database is
encrypted.
"""

import html
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from fastapi_session_deps import (
    CookieFrontend,
    CSRFError,
    CSRFProtection,
    EncryptedBackend,
    SessionInfo,
    SessionManager,
    SessionModel,
    SQLBackend,
    csrf_error_response,
    flash,
    get_flashed_messages,
    local_path,
)
from fastapi_session_deps.backends.encrypted import new_key

HOST, PORT = "127.0.0.1", int(os.environ.get("DEMO_PORT", "8000"))
#: The demo's data: the SQLite database, and the key that signs its cookies. Its owner's
#: only: the database holds user names, and when each of their sessions expires.
DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR") or Path(__file__).resolve().parents[1] / "data")
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
DATA_DIR.chmod(0o700)  # an older demo's, or one given in DEMO_DATA_DIR


class ShopSession(SessionModel):
    username: str | None = None
    cart: list[str] = []
    visits: int = 0


def kept_key(variable: str, filename: str, make: Callable[[], str]) -> str:
    """A key from the environment, as a real app reads it; else one the demo made up on
    its first run and keeps in its data directory, readable by its owner only, so that
    what one run signed or sealed still opens in the next."""
    if os.environ.get(variable):
        return os.environ[variable]
    path = DATA_DIR / filename
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(make())
    return path.read_text().strip()


#: "Keep me signed in": 30 days idle, 90 days at most.
REMEMBER_IDLE, REMEMBER_AT_MOST = timedelta(days=30), timedelta(days=90)

store = SQLBackend.from_url(f"sqlite+aiosqlite:///{DATA_DIR / 'sessions.db'}")
# Every value in the database is sealed with AES-256-GCM.
backend = EncryptedBackend(
    store, keys=[kept_key("SESSION_ENCRYPTION_KEYS", "encryption-key", new_key)]
)
sessions = SessionManager(
    ShopSession,
    # secure=False: the demo is served over plain HTTP. Keep the default (True) in production.
    frontend=CookieFrontend(
        kept_key("SESSION_SECRET_KEY", "secret-key", lambda: secrets.token_urlsafe(48)),
        secure=False,
    ),
    backend=backend,
    # A signed-out browser on a members' page is sent to the log-in form (scripts get 403).
    login_url="/",
    idle_timeout=30 * 60,  # signed out after 30 minutes idle, or 12 hours after log-in,
    absolute_timeout=12 * 60 * 60,
    max_idle_timeout=REMEMBER_IDLE,  # unless "Keep me signed in" was ticked
    max_absolute_timeout=REMEMBER_AT_MOST,
    cleanup_interval=10 * 60,  # expired sessions leave the database every ten minutes
    user_index=True,  # "Your devices": each user's sessions, listed and revoked
    record_client=True,  # with the address and browser each signed in from
)
STORE = "SQLite, every value encrypted (AES-256-GCM)"  # no server path, to any visitor


async def make_table() -> None:
    """The demo makes its own table (a real app migrates); one left by an older demo
    without the user_id column is made again: demo sessions only."""

    def columns(connection: sa.Connection) -> set[str]:
        inspector = sa.inspect(connection)
        if not inspector.has_table(store.table.name):
            return set()
        return {column["name"] for column in inspector.get_columns(store.table.name)}

    async with store.engine.connect() as connection:
        found = await connection.run_sync(columns)
    if found and not set(store.table.c.keys()) <= found:
        await store.drop_table()
    await store.create_table()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await make_table()
    async with sessions.lifespan(app):
        yield


STATIC = Path(__file__).parent / "static"
#: The longest name and cart item kept (the forms say so too, with maxlength).
MAX_NAME, MAX_ITEM = 40, 60

# Every POST must carry the session's CSRF token and come from the demo's own pages.
csrf = CSRFProtection(sessions)
app = FastAPI(
    title="fastapi-session-deps demo",
    lifespan=lifespan,
    dependencies=[Depends(csrf)],
    exception_handlers={CSRFError: csrf_error_response},
)
app.add_middleware(sessions.middleware)
app.mount("/static", StaticFiles(directory=STATIC), name="static")

Session = Annotated[ShopSession, Depends(sessions.get_session)]
LoggedIn = Annotated[ShopSession, Depends(sessions.verifier(lambda s: s.username is not None))]


def post_form(action: str, session: ShopSession, fields: str, attributes: str = "") -> str:
    """A form that posts to ``action``, with the session's CSRF token in it."""
    return f"<form{attributes} method=post action={action}>{csrf.input(session)}{fields}</form>"


async def form(request: Request) -> dict[str, str]:
    """The posted form's fields (first value of each), without extra dependencies."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body).items()}


def page(body: str, session: ShopSession, here: str = "/") -> HTMLResponse:
    """A page of the demo: the bar (with who is signed in), then ``body``."""
    links = [("/", "Shop"), ("/devices", "Your devices"), ("/session", "Session")]
    nav = "".join(
        f"<a href={href}{' class=here' if href == here else ''}>{label}</a>"
        for href, label in links
        if href == "/" or session.username is not None or href == "/session"
    )
    who = (
        f"Signed in as <strong>{html.escape(session.username)}</strong>"
        if session.username
        else "Not signed in"
    )
    shown = "".join(
        f"<p class='flash {html.escape(message.category)}'>{html.escape(message.text)}</p>"
        for message in get_flashed_messages(session)  # shown once
    )
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>Session demo</title><link rel=stylesheet href=/static/demo.css>"
        "<link rel=icon href=/static/favicon.svg type=image/svg+xml>"
        # for scripts: fetch(..., {headers: {"X-CSRF-Token": <this content>}})
        f"<meta name=csrf-token content={csrf.token(session)}>"
        "<header><div class=bar><a class=brand href=/>session<span>·</span>shop</a>"
        f"<nav>{nav}</nav><span class=who>{who}</span></div></header>"
        f"<main>{shown}{body}</main>"
        "<footer>fastapi-session-deps demo · sessions in SQLite, kept across restarts</footer>"
    )


@app.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    # For clients that ask before reading the page's <link rel=icon>.
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@app.get("/", response_class=HTMLResponse)
async def home(session: Session, next: str | None = None) -> HTMLResponse:
    session.visits += 1
    if session.username is None:
        back = local_path(next, default="")  # where to go once logged in: this site only
        return page(
            "<div class=card><h1>Welcome</h1>"
            + (f"<p class=lead>Log in to see {html.escape(back)}.</p>" if back else "")
            + f"<p class=lead>Visits this session: {session.visits}</p>"
            + post_form(
                "/login",
                session,
                f"<input name=username placeholder='your name' maxlength={MAX_NAME} required>"
                f"<input type=hidden name=next value='{html.escape(back)}'>"
                "<button>Log in</button>"
                "<label class=remember><input type=checkbox name=remember value=1> "
                "Keep me signed in</label>",
                " class='inline login'",
            )
            + "</div>",
            session,
        )
    items = "".join(f"<li>{html.escape(item)}</li>" for item in session.cart) or "<li>empty</li>"
    return page(
        f"<div class=card><h1>Hello, {html.escape(session.username)}</h1>"
        f"<p class=lead>Visits this session: {session.visits} · "
        "<a href=/profile>profile (JSON)</a></p>"
        f"<h2>Cart</h2><ul class=cart>{items}</ul>"
        + post_form(
            "/cart",
            session,
            f"<input name=item placeholder='an item' maxlength={MAX_ITEM} required>"
            "<button>Add to cart</button>",
            " class=inline",
        )
        + "<div class=actions>"
        + post_form("/logout", session, "<button class=quiet>Log out</button>")
        + "</div></div>",
        session,
    )


@app.post("/login")
async def login(request: Request, session: Session) -> RedirectResponse:
    fields = await form(request)
    username = fields.get("username", "").strip()[:MAX_NAME]
    if username:
        if fields.get("remember"):
            # Weeks, across browser restarts (the cookie gets a Max-Age).
            await sessions.set_lifetime(
                session, idle=REMEMBER_IDLE, absolute=REMEMBER_AT_MOST, persistent=True
            )
        else:
            # The app's timeouts, and a cookie the browser drops when it closes.
            await sessions.set_lifetime(session, persistent=False)
        # A new id, bound to the user: no session fixation, and listed in "Your devices".
        await sessions.login(session, username, request)
        session.username = username
        flash(session, f"Logged in as {username}.")
    return RedirectResponse(local_path(fields.get("next")), status_code=303)


@app.get("/profile")
async def profile(session: LoggedIn) -> dict[str, object]:
    return {"username": session.username, "cart": session.cart, "visits": session.visits}


@app.post("/cart")
async def add_to_cart(request: Request, session: LoggedIn) -> RedirectResponse:
    item = (await form(request)).get("item", "").strip()[:MAX_ITEM]
    if item:
        session.cart.append(item)
    return RedirectResponse("/", status_code=303)


@app.post("/logout")
async def logout(session: Session) -> RedirectResponse:
    await sessions.destroy(session)
    flash(session, "You have been logged out.")  # lives in a fresh, anonymous session
    return RedirectResponse("/", status_code=303)


# -- your devices, and the session as the library sees it -------------------------------------


def device_name(agent: str | None) -> str:
    """A browser and system a person recognises, from a User-Agent header."""
    if not agent:
        return "Unknown device"
    browsers = [("Edg/", "Edge"), ("HeadlessChrome", "Headless Chrome"), ("Chrome/", "Chrome")]
    browsers += [("Firefox/", "Firefox"), ("Safari/", "Safari"), ("curl/", "curl")]
    systems = [("Android", "Android"), ("iPhone", "iPhone"), ("Windows", "Windows")]
    systems += [("Mac OS X", "macOS"), ("Linux", "Linux")]
    browser = next((name for mark, name in browsers if mark in agent), "A browser")
    system = next((name for mark, name in systems if mark in agent), None)
    return f"{browser} on {system}" if system else browser


def ago(moment: float) -> str:
    seconds = max(0, int(time.time() - moment))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d")


def kept_until(info: SessionInfo) -> str:
    """Until when a device stays signed in, as "Your devices" says it."""
    if not info.remembered:
        return "until the browser closes"
    day = datetime.fromtimestamp(info.expires_at, timezone.utc).strftime("%Y-%m-%d")
    return f"<span class=badge>remembered</span> until {day}"


def device_row(info: SessionInfo, session: ShopSession) -> str:
    name = html.escape(device_name(info.user_agent))
    badge = " <span class=badge>this device</span>" if info.current else ""
    action = (
        "<span class=muted>—</span>"
        if info.current
        else post_form(
            f"/devices/{info.handle}/sign-out", session, "<button class=danger>Sign out</button>"
        )
    )
    return (
        f"<tr{' class=current' if info.current else ''} data-handle={info.handle}>"
        f"<td><div class=device>{name}{badge}</div>"
        f"<div class=agent>{html.escape(info.user_agent or '')}</div></td>"
        f"<td data-label=Address>{html.escape(info.ip or 'unknown')}</td>"
        f"<td data-label='Signed in'>{ago(info.created_at)}</td>"
        f"<td data-label='Last seen'>{ago(info.last_seen)}</td>"
        f"<td data-label='Stays signed in'>{kept_until(info)}</td><td>{action}</td></tr>"
    )


@app.get("/devices", response_class=HTMLResponse)
async def devices(session: LoggedIn) -> HTMLResponse:
    assert session.username is not None  # noqa: S101 - LoggedIn checked it
    listed = await sessions.users.list(session.username, current=session)
    others = sum(not info.current for info in listed)
    rows = "".join(device_row(info, session) for info in listed)
    everywhere = (
        post_form(
            "/devices/sign-out-others",
            session,
            f"<button class=danger>Sign out everywhere else ({others})</button>",
        )
        if others
        else "<span class=muted>This is the only device signed in.</span>"
    )
    return page(
        "<div class=card><h1>Your devices</h1>"
        f"<p class=lead>Where {html.escape(session.username)} is signed in. Sign out any "
        "device you do not recognise: its next request starts signed out.</p>"
        "<table class=devices><tr class=head><th>Device</th><th>Address</th><th>Signed in</th>"
        f"<th>Last seen</th><th>Stays signed in</th><th></th></tr>{rows}</table>"
        f"<div class=actions>{everywhere}</div></div>",
        session,
        "/devices",
    )


@app.post("/devices/{handle}/sign-out")
async def sign_out_device(handle: str, session: LoggedIn) -> RedirectResponse:
    assert session.username is not None  # noqa: S101 - LoggedIn checked it
    if await sessions.users.revoke(session.username, handle):
        flash(session, "That device has been signed out.")
    return RedirectResponse("/devices", status_code=303)


@app.post("/devices/sign-out-others")
async def sign_out_others(session: LoggedIn) -> RedirectResponse:
    assert session.username is not None  # noqa: S101 - LoggedIn checked it
    count = await sessions.users.revoke_all(session.username, keep=session)
    flash(session, f"Signed out {count} other device{'s' if count != 1 else ''}.")
    return RedirectResponse("/devices", status_code=303)


def in_words(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{round(seconds / 86400)} days"
    minutes = max(0, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    return (
        " ".join(
            part for part in (f"{hours} h" * bool(hours), f"{minutes} min" * bool(minutes)) if part
        )
        or "0 min"
    )


@app.get("/session", response_class=HTMLResponse)
async def session_page(session: Session) -> HTMLResponse:
    data = html.escape(json.dumps(session.model_dump(), indent=2))
    facts = [("Store", html.escape(STORE))]
    mine = None
    if session.username is not None:
        listed = await sessions.users.list(session.username, current=session)
        mine = next((info for info in listed if info.current), None)
    if mine is not None:
        left = mine.expires_at - time.time()
        lifetime = sessions.lifetime(session)
        facts += [
            ("Handle", f"<code>{mine.handle}</code>"),
            ("Bound to", html.escape(mine.user)),
            ("Created", ago(mine.created_at)),
            ("Last seen", ago(mine.last_seen)),
            ("Expires in", f"{in_words(left)} if left idle"),
            ("Kept", kept_until(mine)),
            ("Idle timeout", in_words(lifetime.idle_timeout)),
            ("Absolute timeout", in_words(lifetime.absolute_timeout or 0)),
        ]
    else:
        facts.append(("Bound to", "nobody: log in to bind this session to a user"))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return page(
        "<div class=card><h1>This session</h1>"
        "<p class=lead>What the library keeps for this browser. The cookie carries only a "
        "signed id; the store keys the record by a hash of it, and lists it by a handle "
        f"derived from that.</p><dl class=facts>{rows}</dl>"
        f"<h2>Data</h2><pre>{data}</pre></div>",
        session,
        "/session",
    )


if __name__ == "__main__":
    import uvicorn

    print(f"fastapi-session-deps demo: open http://{HOST}:{PORT} in your browser", flush=True)
    print(f"(sessions are kept in {DATA_DIR / 'sessions.db'})", flush=True)
    uvicorn.run(app, host=HOST, port=PORT)
