"""Every Python snippet of the README and the docs runs.

Complete programs (a block titled ``name.py``) are driven by tests/test_docs.py, the
README's quickstart is examples/quickstart.py, and the models of the model-changes how-to
run in tests/test_model_changes.py. Every other block is a fragment of an app: it runs here,
top-level ``await`` included, in the context the docs take for granted (a ``UserSession``,
a ``sessions`` manager, an ``app`` with its middleware, a ``backend``, a ``Session``
alias...). A fragment that works on a request's session (it names ``session`` or
``request`` outside any function) runs inside a request; a test it writes (``test_*``) is
run with a client of the app. Then the app it leaves behind is built, middleware and all,
and must have no refused setting.
"""

import ast
import os
import re
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.templating import Jinja2Templates

import fastapi_session_deps
from fastapi_session_deps import (
    CookieFrontend,
    CSRFProtection,
    MemoryBackend,
    SessionManager,
)
from fastapi_session_deps.backends.encrypted import new_key as new_encryption_key
from fastapi_session_deps.cli import find_sessions
from fastapi_session_deps.keys import new_secret_key

from .support import AppSession as UserSession
from .support import build_app

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^( *)```python([^\n]*)\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
#: Names a fragment may use on a request's session, which only a request has.
IN_A_REQUEST = {"session", "request"}


def fragments() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            if "title=" in match.group(2):
                continue  # a program, run by its own test
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", textwrap.dedent(match.group(3))))
    return found


def is_the_quickstart(code: str) -> bool:
    return code == (ROOT / "examples" / "quickstart.py").read_text().partition('"""\n\n')[2]


class AuditLog:
    def __init__(self) -> None:
        self.written: list[tuple[Any, ...]] = []

    async def write(self, *fields: Any) -> None:
        self.written.append(fields)


def context(redis_url: str) -> dict[str, Any]:
    """What the docs' fragments take for granted, made afresh for each."""
    names: dict[str, Any] = {
        name: getattr(fastapi_session_deps, name) for name in fastapi_session_deps.__all__
    }
    secret = new_secret_key()
    backend = MemoryBackend()
    sessions = SessionManager(
        UserSession,
        frontend=CookieFrontend(secret, secure=False),
        backend=backend,
        user_index=True,
        max_idle_timeout=timedelta(days=30),  # "Keep me signed in" may choose that much
    )
    app = build_app(sessions)  # with the quickstart's /login and /me among its routes
    names.update(
        Annotated=Annotated,
        Any=Any,
        Depends=Depends,
        FastAPI=FastAPI,
        Form=Form,
        Request=Request,
        HTMLResponse=HTMLResponse,
        JSONResponse=JSONResponse,
        RedirectResponse=RedirectResponse,
        Jinja2Templates=Jinja2Templates,
        httpx=httpx,
        os=os,
        re=re,
        UserSession=UserSession,
        SECRET_KEY=secret,
        frontend=CookieFrontend(secret, secure=False),
        new_key=new_secret_key(),
        old_key=secret,
        URL=redis_url,
        url=redis_url,
        backend=backend,
        sessions=sessions,
        app=app,
        Session=Annotated[UserSession, Depends(sessions.get_session)],
        csrf=CSRFProtection(sessions),
        audit_log=AuditLog(),
        user_id="7",
        timedelta=timedelta,
        remember=True,
    )
    return names


def needs_a_request(code: str) -> bool:
    """Whether the fragment names the request or its session outside any function."""
    tree = ast.parse(code)
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inside.update(id(child) for child in ast.walk(node) if child is not node)
    return any(
        isinstance(node, ast.Name) and node.id in IN_A_REQUEST and id(node) not in inside
        for node in ast.walk(tree)
    )


async def run(code: str, where: str, names: dict[str, Any]) -> None:
    compiled = compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, names)  # noqa: S307 - our own docs
    if result is not None:
        await result


@pytest.mark.parametrize(("where", "code"), fragments(), ids=[w for w, _ in fragments()])
async def test_every_snippet_of_the_docs_runs(
    where: str, code: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if is_the_quickstart(code):
        pytest.skip("examples/quickstart.py, run by tests/test_examples.py")
    monkeypatch.setenv("SESSION_SECRET_KEY", new_secret_key())
    monkeypatch.setenv("SESSION_ENCRYPTION_KEYS", new_encryption_key())
    monkeypatch.setenv("SESSION_SERVICE_TOKEN", new_secret_key())
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    names = context(redis_url)
    if needs_a_request(code):
        # Run it as the body of a route, on the request's own session.
        sessions, outer = names["sessions"], FastAPI()
        outer.add_middleware(sessions.middleware)
        Session = Annotated[UserSession, Depends(sessions.get_session)]

        @outer.post("/fragment")
        async def fragment(request: Request, session: Session) -> None:
            await run(code, where, {**names, "request": request, "session": session})

        transport = httpx.ASGITransport(app=outer)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.post("/fragment")).status_code == 200
    else:
        await run(code, where, names)
    # A test the fragment wrote for your app's sessions is run on the app, with a client.
    tests = [value for name, value in names.items() if name.startswith("test_")]
    transport = httpx.ASGITransport(app=names["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for test in tests:
            await test(client)
    found = find_sessions(names["app"], names)
    assert found.refusals == [], found.refusals
    for value in names.values():  # the stores a fragment made are closed
        if isinstance(value, fastapi_session_deps.Backend):
            await value.aclose()


#: What only the `request.session` drop-in offers, and what only the typed API does.
DROP_IN = re.compile(
    r"request\.session|\b(SessionMiddleware|SessionAutoloadMiddleware|regenerate_session|"
    r"login_session|load_session|destroy_session|user_sessions|set_session_lifetime|"
    r"get_session_remaining_seconds)\b"
)
TYPED = re.compile(r"Depends\(sessions\.|\bsessions\.(get_session|require_session|verifier)\b")


@pytest.mark.parametrize(("where", "code"), fragments(), ids=[w for w, _ in fragments()])
def test_a_snippet_says_which_api_it_is_for_and_never_mixes_them(where: str, code: str) -> None:
    bare = re.sub(r"#[^\n]*", "", code)  # what it does, not what its comments mention
    drop_in, typed = DROP_IN.search(bare), TYPED.search(bare)
    assert not (drop_in and typed), f"{where} mixes request.session with the typed API"
    if drop_in and not where.startswith("docs/how-to/migrate-starlette.md"):
        # Outside the migration guide, a drop-in snippet names it: by its import, or a
        # comment that says request.session.
        said = re.search(
            r"^from fastapi_session_deps import .*\b(Session\w*Middleware)", code, re.M
        )
        assert said or re.search(r"#.*request\.session", code), where
