"""starsessions, as its README shows: a store, the middleware, load_session() in views."""

import os

from fastapi import FastAPI, Request
from starsessions import InMemoryStore, SessionMiddleware, load_session, regenerate_session_id


def create_app() -> FastAPI:
    redis_url = os.environ.get("BENCH_REDIS_URL")
    if redis_url:
        from starsessions.stores.redis import RedisStore

        store = RedisStore(url=redis_url)
    else:
        store = InMemoryStore()
    app = FastAPI()
    app.add_middleware(
        SessionMiddleware, store=store, cookie_https_only=False, lifetime=3600 * 24 * 14
    )

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(request: Request) -> dict[str, int]:
        await load_session(request)
        return {"counter": request.session.get("counter", 0)}

    @app.post("/incr")
    async def incr(request: Request) -> dict[str, int]:
        await load_session(request)
        request.session["counter"] = request.session.get("counter", 0) + 1
        return {"counter": request.session["counter"]}

    @app.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        await load_session(request)
        regenerate_session_id(request)
        request.session["user_id"] = 1
        return {"ok": True}

    return app
