"""The tutorial the project started from: both programs, and both commented variants, run.

The programs are copied from ``../shared/seed-tutorial`` (or ``SEED_TUTORIAL_DIR``) and
changed only where that folder's README allows: the import line (the module name, and
``as`` aliases in it), ``SESSION_BACKEND_URL``, and, for a variant, uncommenting it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from fastapi_session_deps.signing import store_key

from .helpers import served_in_thread
from .rest_store import RestStore

pytestmark = pytest.mark.anyio

TUTORIAL_DIR = Path(
    os.environ.get("SEED_TUTORIAL_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "seed-tutorial"
)


def source(name: str) -> str:
    path = TUTORIAL_DIR / name
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: the tutorial's programs live in ../shared/seed-tutorial "
            "beside this checkout (or set SEED_TUTORIAL_DIR)."
        )
    return path.read_text()


def change(text: str, old: str, new: str) -> str:
    """Replace ``old``, which must occur exactly once (so a changed tutorial fails loudly)."""
    assert text.count(old) == 1, f"expected exactly one {old!r} in the tutorial"
    return text.replace(old, new)


def uncomment(text: str, block: str) -> str:
    """Uncomment ``block`` (commented lines as the tutorial prints them)."""
    lines = [line.replace("# ", "", 1) for line in block.splitlines()]
    return change(text, block, "\n".join(lines))


def load(name: str, text: str, tmp_path: Path) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}_{id(text)}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def client_for(module: ModuleType) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=module.app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


# -- the first program -----------------------------------------------------------------------


def tutorial_1(*, autoload_variant: bool) -> str:
    text = change(
        source("tutorial_1.py"),
        "from fastapi_sessions import SessionMiddleware, SessionAutoloadMiddleware",
        "from fastapi_session_deps import SessionMiddleware, SessionAutoloadMiddleware",
    )
    if autoload_variant:
        text = uncomment(
            text,
            "# app.add_middleware(\n# SessionAutoloadMiddleware,\n# secret_key=SECRET_KEY\n# )",
        )
    return text


@pytest.mark.parametrize("autoload_variant", [False, True], ids=["as-printed", "autoload"])
async def test_the_first_program_logs_in_shows_the_profile_and_logs_out(
    tmp_path: Path, autoload_variant: bool
) -> None:
    program = load("tutorial_1", tutorial_1(autoload_variant=autoload_variant), tmp_path)
    async with client_for(program) as client:
        assert (await client.get("/profile")).status_code == 401
        login = await client.get("/login")
        assert login.json() == {"message": "Logged in successfully!"}
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("my_app_session=")  # cookie_name=
        assert "secure" not in cookie  # cookie_https_only=False
        assert "testuser" not in cookie  # the data stays on the server
        assert (await client.get("/profile")).json() == {
            "user_id": 123,
            "username": "testuser",
        }
        logout = await client.get("/logout")
        assert logout.json() == {"message": "Logged out successfully!"}
        assert (await client.get("/profile")).status_code == 401


async def test_the_autoload_middleware_alone_serves_the_first_program(tmp_path: Path) -> None:
    # The variant as an alternative: SessionAutoloadMiddleware(secret_key=...) on its own.
    text = tutorial_1(autoload_variant=True)
    alone = change(
        text,
        "app.add_middleware(\n    SessionMiddleware,",
        "app.add_middleware(\n    SessionAutoloadMiddleware,",
    ).replace("    autoload_cookie=True # Automatically load session data\n", "")
    program = load("tutorial_1_alone", alone, tmp_path)
    async with client_for(program) as client:
        await client.get("/login")
        assert (await client.get("/profile")).json()["user_id"] == 123
        await client.get("/logout")
        assert (await client.get("/profile")).status_code == 401


# -- the second program ----------------------------------------------------------------------


@pytest.fixture
def rest_store() -> Iterator[tuple[RestStore, str]]:
    """The tutorial's "session backend service", served by uvicorn on a loopback port."""
    store = RestStore()
    with served_in_thread(store.app) as base:
        yield store, f"{base}/sessions/"


def tutorial_2(url: str, *, function_backend: bool) -> str:
    text = change(
        source("tutorial_2.py"),
        "from fastapi_sessions import SessionMiddleware, InmemoryBackend",
        "from fastapi_session_deps import SessionMiddleware, MemoryBackend as InmemoryBackend"
        + (", FunctionBackend" if function_backend else ""),
    )
    text = change(
        text,
        'SESSION_BACKEND_URL = "http://your-session-backend.com/sessions/"',
        f"SESSION_BACKEND_URL = {url!r}",
    )
    if function_backend:
        text = change(
            text,
            "    # backend=MyAsyncBackend(get_session_data, save_session_data, "
            "delete_session_data)",
            "    backend=FunctionBackend(get_session_data, save_session_data, "
            "delete_session_data)",
        )
        # Both backend= lines at once would be a repeated keyword (a SyntaxError): the
        # wish replaces the placeholder it is written above.
        text = change(
            text,
            "    backend=InmemoryBackend() # Using",
            "    # backend=InmemoryBackend() # Using",
        )
    return text


async def log_in_and_read_the_profile(client: httpx.AsyncClient) -> None:
    assert (await client.get("/profile_async")).status_code == 401
    assert (await client.get("/login_async")).json() == {"message": "Async login simulated!"}
    assert (await client.get("/profile_async")).json() == {"user_id": 456, "source": "async_api"}


async def test_the_second_program_runs_on_the_memory_backend(
    tmp_path: Path, rest_store: tuple[RestStore, str]
) -> None:
    store, url = rest_store
    program = load("tutorial_2", tutorial_2(url, function_backend=False), tmp_path)
    async with client_for(program) as client:
        await log_in_and_read_the_profile(client)
    assert store.requests == {}  # the functions are defined but not wired


async def test_the_second_program_keeps_sessions_in_the_rest_store_through_its_functions(
    tmp_path: Path, rest_store: tuple[RestStore, str]
) -> None:
    store, url = rest_store
    program = load("tutorial_2_functions", tutorial_2(url, function_backend=True), tmp_path)
    async with client_for(program) as client:
        await log_in_and_read_the_profile(client)
        assert store.requests["PUT"] == 1
        # One record, under the hash of the session id, never the id the cookie carries.
        [(key, record)] = store.records.items()
        session_id = client.cookies["my_app_session"].split(".")[0]
        assert key == store_key(session_id)
        assert session_id not in str(record)
        assert record["fields"] == {"user_id": "456", "source": '"async_api"'}

        # A record removed from the service: the next request simply has no session.
        store.records.clear()
        assert (await client.get("/profile_async")).status_code == 401


async def test_the_second_program_answers_503_while_the_rest_store_is_down(
    tmp_path: Path,
) -> None:
    store = RestStore()
    async with contextlib.AsyncExitStack() as stack:
        with served_in_thread(store.app) as base:
            url = f"{base}/sessions/"
            program = load("tutorial_2_down", tutorial_2(url, function_backend=True), tmp_path)
            client = await stack.enter_async_context(client_for(program))
            await client.get("/login_async")
            assert (await client.get("/profile_async")).status_code == 200
        # The service has stopped: its port refuses connections, and httpx raises
        # ConnectError inside the tutorial's own get function.
        response = await client.get("/profile_async")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
