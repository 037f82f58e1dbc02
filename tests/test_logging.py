"""Every log record of the library: under its logger, with stable fields, never a token."""

import ast
import logging
import re
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_session_deps import MemoryBackend

from .helpers import Clock
from .support import AppSession, build_app, manager_factory

pytestmark = pytest.mark.anyio

PACKAGE = Path(__file__).parents[1] / "fastapi_session_deps"
PAGE = Path(__file__).parents[1] / "docs" / "how-to" / "operations.md"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def log_calls() -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEVELS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logger"
            ):
                found.append((f"{path.name}:{node.lineno}", node))
    return found


def event_of(call: ast.Call) -> str | None:
    """The ``event`` a log call names in its ``extra``, if it names one literally."""
    for keyword in call.keywords:
        if keyword.arg != "extra":
            continue
        value = keyword.value
        if isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "event":
                    return item.value if isinstance(item, ast.Constant) else "?"
        if isinstance(value, ast.Call) and value.args and isinstance(value.args[0], ast.Constant):
            return str(value.args[0].value)  # _extra("event", ...), self._log_extra("event", ...)
    return None


def test_every_log_call_names_its_event_and_the_docs_list_them_all() -> None:
    calls = log_calls()
    assert len(calls) >= 25
    missing = [where for where, call in calls if event_of(call) is None]
    assert missing == []
    documented = set(re.findall(r"^\| `(\w+)` \|", PAGE.read_text(), re.MULTILINE))
    events = {event_of(call) for _, call in calls}
    assert events - documented == set()


def test_every_logger_is_under_the_library_s_name() -> None:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        names |= set(re.findall(r'getLogger\("([^"]+)"\)', path.read_text()))
    assert names
    assert all(name.split(".")[0] == "fastapi_session_deps" for name in names)


async def test_a_record_carries_event_store_and_handle_never_the_token(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = MemoryBackend(clock=clock)
    sessions = manager_factory(backend, clock)()
    transport = httpx.ASGITransport(app=build_app(sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        token = client.cookies["session"]
        ((_, entry),) = backend._records.items()
        entry["counter"] = b"not a number"
        with caplog.at_level(logging.WARNING, "fastapi_session_deps"):
            await client.get("/read")
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "record_undecodable"]
    assert record.name == "fastapi_session_deps"
    assert record.store == "MemoryBackend"  # type: ignore[attr-defined]
    assert len(record.handle) == 22  # type: ignore[attr-defined]
    assert token not in caplog.text
    assert token.split(".")[0] not in caplog.text  # not even the id


async def test_a_record_about_a_session_never_stored_has_no_handle(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = manager_factory(MemoryBackend(clock=clock), clock)()
    app = FastAPI()
    app.add_middleware(sessions.middleware)

    @app.post("/touch")
    async def touch(session: AppSession = Depends(sessions.get_session_readonly)) -> None:  # noqa: B008
        session.counter += 1  # changed, though loaded read-only: not saved

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with caplog.at_level(logging.WARNING, "fastapi_session_deps"):
            await client.post("/touch")
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "readonly_changed"]
    assert record.store == "MemoryBackend"  # type: ignore[attr-defined]
    assert not hasattr(record, "handle")  # a new session has none to give
