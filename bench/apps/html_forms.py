"""A server-rendered page and the form it posts, with the HTML app features switched on
by the environment: ``BENCH_CSRF`` (CSRFProtection on every route, the page renders the
token, the form posts it) and ``BENCH_FLASH`` (the form's handler flashes a message, the
page shows it). On memory, or on Redis with ``BENCH_REDIS_URL``.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    CSRFProtection,
    MemoryBackend,
    RedisBackend,
    SessionManager,
    SessionModel,
    csrf_token,
    flash,
    get_flashed_messages,
)

SECRET = "bench-secret-key-0123456789-abcdefghijkl"  # noqa: S105 - a bench key


class ShopSession(SessionModel):
    cart: list[str] = []


def create_app() -> FastAPI:
    redis_url = os.environ.get("BENCH_REDIS_URL")
    backend: Backend = RedisBackend.from_url(redis_url) if redis_url else MemoryBackend()
    sessions = SessionManager(
        ShopSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=backend,
    )
    with_csrf, with_flash = bool(os.environ.get("BENCH_CSRF")), bool(os.environ.get("BENCH_FLASH"))
    csrf = CSRFProtection(sessions)
    app = FastAPI(dependencies=[Depends(csrf)] if with_csrf else [])
    app.add_middleware(sessions.middleware)
    Session = Annotated[ShopSession, Depends(sessions.get_session)]

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/start")
    async def start(session: Session) -> str:
        """A session for the bench, and the token its forms carry (if any)."""
        session.cart = ["tea"]
        return csrf_token(session) if with_csrf else ""

    @app.get("/page", response_class=HTMLResponse)
    async def page(session: Session) -> str:
        shown = get_flashed_messages(session) if with_flash else []
        token = f"<input type=hidden name=csrf_token value={csrf.token(session)}>" * with_csrf
        return (
            "".join(f"<p>{message.text}</p>" for message in shown)
            + f"<p>{len(session.cart)} items</p><form method=post>{token}"
            "<input name=item><button>Add</button></form>"
        )

    @app.post("/add")
    async def add(session: Session) -> None:
        session.cart = [*session.cart[-3:], "scone"]  # a change of the same size each time
        if with_flash:
            flash(session, "Added to your cart.")

    return app
