"""FastAPI with no sessions at all: the floor every other row is measured against."""

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read() -> dict[str, int]:
        return {"counter": 0}

    @app.post("/incr")
    async def incr() -> dict[str, int]:
        return {"counter": 1}

    @app.post("/login")
    async def login() -> dict[str, bool]:
        return {"ok": True}

    return app
