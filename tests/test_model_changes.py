"""A deploy that changes the session model, over stored sessions: the two models of
docs/how-to/model-changes.md, taken from the page, on the memory store, Redis and SQLite.
Every visitor stays logged in, with their data carried over."""

import re
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import AliasChoices, Field, field_validator

from fastapi_session_deps import Backend, CookieFrontend, SessionManager, SessionModel

from .helpers import SECRET, Clock
from .support import StoreRecords, each_store

pytestmark = pytest.mark.anyio

PAGE = Path(__file__).parents[1] / "docs" / "how-to" / "model-changes.md"
BLOCK = re.compile(r'```python title="model (before|after)"\n(.*?)```', re.DOTALL)

backend = pytest.fixture(params=["memory", "redis", "sqlite"], name="backend")(each_store)


def models() -> dict[str, type[SessionModel]]:
    """The page's two models, each run as the page shows it."""
    found: dict[str, type[SessionModel]] = {}
    for which, code in BLOCK.findall(PAGE.read_text()):
        namespace: dict[str, Any] = {
            "SessionModel": SessionModel,
            "Field": Field,
            "AliasChoices": AliasChoices,
            "field_validator": field_validator,
        }
        exec(compile(code, f"{PAGE.name}:{which}", "exec"), namespace)  # noqa: S102 - our docs
        found[which] = namespace["UserSession"]
    assert set(found) == {"before", "after"}
    return found


def shop(model: type[SessionModel], store: Backend, clock: Clock) -> FastAPI:
    sessions = SessionManager(
        model, frontend=CookieFrontend(SECRET, secure=False), backend=store, clock=clock
    )
    app = FastAPI()
    app.add_middleware(sessions.middleware)

    @app.post("/login")
    async def login(session: Annotated[Any, Depends(sessions.get_session)]) -> None:
        await sessions.regenerate(session)
        session.user_id = 7
        session.cart = "tea,scone"
        session.nickname = "ada"
        session.theme = "dark"

    @app.get("/me")
    async def me(session: Annotated[Any, Depends(sessions.require_session)]) -> dict[str, Any]:
        return session.model_dump()

    return app


async def test_a_deploy_of_the_changed_model_keeps_every_visitor_logged_in(
    backend: Backend, clock: Clock, store_records: StoreRecords
) -> None:
    before, after = models()["before"], models()["after"]
    transport = httpx.ASGITransport(app=shop(before, backend, clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as old:
        await old.post("/login")
        cookies = dict(old.cookies)
        assert (await old.get("/me")).json()["nickname"] == "ada"

    # The deploy: the same store and key, the new model.
    transport = httpx.ASGITransport(app=shop(after, backend, clock))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies=cookies
    ) as new:
        me = await new.get("/me")
        assert me.status_code == 200  # still logged in
        assert me.json() == {
            "user_id": 7,
            "cart": ["tea", "scone"],  # a changed type, converted
            "display_name": "ada",  # a renamed field, read under its old name
            "currency": "EUR",  # a new field, its default
        }
        # That request saved the new shape: the old names are gone from the record.
        (record,) = (await store_records()).values()
        assert {"display_name", "currency"} <= set(record)
        assert not {"nickname", "theme"} & set(record)
        assert record["cart"] == b'["tea","scone"]'
        assert (await new.get("/me")).json()["display_name"] == "ada"
