"""Starlette's SessionMiddleware, as its docs show: the whole session in a signed cookie."""

from fastapi import FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware

SECRET = "bench-secret-key-0123456789-abcdefghijkl"  # noqa: S105 - a bench key


def create_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET)

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(request: Request) -> dict[str, int]:
        return {"counter": request.session.get("counter", 0)}

    @app.post("/incr")
    async def incr(request: Request) -> dict[str, int]:
        request.session["counter"] = request.session.get("counter", 0) + 1
        return {"counter": request.session["counter"]}

    @app.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        request.session["user_id"] = 1
        return {"ok": True}

    return app
