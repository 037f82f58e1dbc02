"""The public attributes of the two entry points are exactly the documented ones.

The reference page (docs/reference.md) lists each class's members; its docstring's
``Attributes:`` section lists what instances carry. Nothing more is public, nothing less.
"""

import re
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from fastapi_session_deps import CookieFrontend, MemoryBackend, SessionManager, SessionMiddleware

from .helpers import SECRET
from .support import AppSession

REFERENCE = (Path(__file__).parents[1] / "docs" / "reference.md").read_text()


def documented(cls: type) -> set[str]:
    block = REFERENCE.split(f"::: fastapi_session_deps.{cls.__name__}\n", 1)[1].split(":::", 1)[0]
    members = set(re.findall(r"^\s+- (\w+)$", block, re.MULTILINE))
    attributes = (cls.__doc__ or "").split("Attributes:", 1)[1].split("\n\n", 1)[0]
    return members | set(re.findall(r"^ {8}(\w+):", attributes, re.MULTILINE))


def public(instance: Any) -> set[str]:
    return {name for name in dir(instance) if not name.startswith("_")}


def test_session_manager_has_exactly_the_documented_public_attributes() -> None:
    sessions = SessionManager(AppSession, frontend=CookieFrontend(SECRET), backend=MemoryBackend())
    assert public(sessions) == documented(SessionManager)


def test_session_middleware_has_exactly_the_documented_public_attributes() -> None:
    middleware = SessionMiddleware(Starlette(), secret_key=SECRET, backend=MemoryBackend())
    assert public(middleware) == documented(SessionMiddleware)
