"""`SessionMiddleware` settings in every spelling users bring, and `SessionAutoloadMiddleware`.

Spellings: Starlette's own, starsessions' and the tutorial's, each with the meaning it has
there. A refused configuration stops the app's start-up (and uvicorn) with its message.
"""

import inspect
import re
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fastapi_session_deps import (
    ConfigurationError,
    MemoryBackend,
    SessionAutoloadMiddleware,
    SessionMiddleware,
    SessionNotLoaded,
)
from fastapi_session_deps._starlette_settings import SPELLINGS

from .helpers import SECRET, Clock, CountingBackend, free_port

pytestmark = pytest.mark.anyio


async def write(request: Request) -> JSONResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse(dict(request.session))


async def read(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.session))


ROUTES = [
    Route("/write", write, methods=["POST"]),
    Route("/read", read),
    Route("/admin/read", read),
    Route("/api/v1/read", read),
]


def app_with(*middleware: Middleware) -> Starlette:
    return Starlette(routes=ROUTES, middleware=list(middleware))


def client(app: Any, base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def cookie_attributes(response: httpx.Response) -> dict[str, str]:
    name_value, *parts = response.headers["set-cookie"].split("; ")
    attributes = dict(part.split("=", 1) if "=" in part else (part, "") for part in parts)
    return {"name": name_value.split("=", 1)[0], **attributes}


def start_up_error(app: Starlette) -> str:
    """The message that stopped the app's start-up (TestClient runs the lifespan)."""
    with pytest.raises(ConfigurationError) as caught, TestClient(app):
        pass  # pragma: no cover - start-up fails
    return str(caught.value)


# -- each spelling has its meaning ----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"session_cookie": "sid"}, {"name": "sid"}),
        ({"cookie_name": "sid"}, {"name": "sid"}),
        ({"same_site": "strict"}, {"samesite": "strict"}),
        ({"cookie_same_site": "strict"}, {"samesite": "strict"}),
        ({"https_only": True}, {"secure": ""}),
        ({"cookie_https_only": True}, {"secure": ""}),
        ({"domain": "example.org"}, {"domain": "example.org"}),
        ({"cookie_domain": "example.org"}, {"domain": "example.org"}),
        ({"path": "/app"}, {"path": "/app"}),
        ({"cookie_path": "/app"}, {"path": "/app"}),
        ({"max_age": 600}, {"Max-Age": "600"}),
        ({"lifetime": 600}, {"Max-Age": "600"}),
    ],
)
async def test_each_cookie_spelling_reaches_the_cookie(
    options: dict[str, Any], expected: dict[str, str]
) -> None:
    app = app_with(
        Middleware(SessionMiddleware, secret_key=SECRET, backend=MemoryBackend(), **options)
    )
    async with client(app) as http:
        attributes = cookie_attributes(await http.post("/write"))
    assert expected.items() <= attributes.items()


async def test_a_timedelta_lifetime_counts_in_seconds() -> None:
    app = app_with(
        Middleware(
            SessionMiddleware,
            secret_key=SECRET,
            backend=MemoryBackend(),
            lifetime=timedelta(minutes=10),
            rolling=True,
        )
    )
    async with client(app) as http:
        assert cookie_attributes(await http.post("/write"))["Max-Age"] == "600"


def test_the_signature_shows_which_keywords_were_left_to_their_default() -> None:
    signature = str(inspect.signature(SessionMiddleware))
    assert "session_cookie: 'str' = <default>" in signature
    assert "**settings" in signature


async def test_starsessions_lifetime_zero_is_a_browser_session_cookie() -> None:
    app = app_with(
        Middleware(SessionMiddleware, secret_key=SECRET, backend=MemoryBackend(), lifetime=0)
    )
    async with client(app) as http:
        response = await http.post("/write")
        assert "Max-Age" not in cookie_attributes(response)
        assert (await http.get("/read")).json() == {"n": 1}


def lifetime_app(clock: Clock, **options: Any) -> Starlette:
    return app_with(
        Middleware(
            SessionMiddleware,
            secret_key=SECRET,
            backend=MemoryBackend(clock=clock),
            clock=clock,
            **options,
        )
    )


async def test_starsessions_lifetime_is_counted_from_creation_unless_rolling(clock: Clock) -> None:
    # starsessions: lifetime=N without rolling ends a session N seconds after its creation,
    # however active it is.
    async with client(lifetime_app(clock, lifetime=100)) as http:
        await http.post("/write")
        for _ in range(3):
            clock.advance(30)
            assert (await http.post("/write")).status_code == 200
        clock.advance(15)  # 105 s after creation, 15 s after the last request
        assert (await http.get("/read")).json() == {}


@pytest.mark.parametrize(
    "options",
    [{"lifetime": 100, "rolling": True}, {"max_age": 100}, {"max_age": 100, "rolling": True}],
)
async def test_rolling_sessions_slide_with_activity(clock: Clock, options: dict[str, Any]) -> None:
    # starsessions' rolling=True, and Starlette's max_age: ends 100 s after the last activity.
    async with client(lifetime_app(clock, **options)) as http:
        await http.post("/write")
        for _ in range(4):
            clock.advance(30)
            assert (await http.post("/write")).status_code == 200
        assert (await http.get("/read")).json() == {"n": 5}
        clock.advance(101)
        assert (await http.get("/read")).json() == {}


async def test_rolling_false_with_max_age_ends_a_session_from_its_creation(clock: Clock) -> None:
    async with client(lifetime_app(clock, max_age=100, rolling=False)) as http:
        await http.post("/write")
        clock.advance(60)
        await http.post("/write")
        clock.advance(45)
        assert (await http.get("/read")).json() == {}


@pytest.mark.parametrize("alias", ["store", "backend"])
async def test_store_and_backend_both_name_the_store(alias: str) -> None:
    backend = CountingBackend(MemoryBackend())
    app = app_with(Middleware(SessionMiddleware, secret_key=SECRET, **{alias: backend}))
    async with client(app) as http:
        await http.post("/write")
    assert backend.calls["set"] == 1


@pytest.mark.parametrize("spelling", ["autoload", "autoload_cookie"])
async def test_autoload_false_in_either_spelling_loads_lazily(spelling: str) -> None:
    app = app_with(
        Middleware(
            SessionMiddleware, secret_key=SECRET, backend=MemoryBackend(), **{spelling: False}
        )
    )
    async with client(app) as http:
        await http.post("/write")
        with pytest.raises(SessionNotLoaded):
            await http.get("/read")


async def test_a_bytes_secret_key_works() -> None:
    app = app_with(
        Middleware(SessionMiddleware, secret_key=b"\x00\xff" * 16, backend=MemoryBackend())
    )
    async with client(app) as http:
        await http.post("/write")
        assert (await http.get("/read")).json() == {"n": 1}


# -- refused configurations stop the start-up -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "alias"), [(n, a) for n, aliases in SPELLINGS.items() for a in aliases]
)
def test_two_spellings_of_one_setting_are_refused_naming_both(name: str, alias: str) -> None:
    values = {
        "session_cookie": "sid",
        "same_site": "lax",
        "https_only": False,
        "domain": "example.org",
        "path": "/",
        "max_age": 60,
        "autoload": True,
        "backend": MemoryBackend(),
    }
    options = {"secret_key": SECRET, name: values[name], alias: values[name]}
    if "backend" not in options:
        options["backend"] = MemoryBackend()
    message = start_up_error(app_with(Middleware(SessionMiddleware, **options)))
    assert f"{name}=" in message
    assert f"{alias}=" in message


def test_rolling_false_and_an_absolute_timeout_are_two_spellings_of_one_setting() -> None:
    message = start_up_error(
        app_with(
            Middleware(
                SessionMiddleware,
                secret_key=SECRET,
                backend=MemoryBackend(),
                lifetime=60,
                absolute_timeout=120,
            )
        )
    )
    assert "rolling=False" in message
    assert "absolute_timeout=" in message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cookie_nmae": "x"}, "unknown keyword cookie_nmae=. Did you mean cookie_name=?"),
        ({"frobnicate": 1}, "unknown keyword frobnicate="),
        ({"serializer": object()}, "no serializer= (starsessions has)"),
        ({"encryptor": object()}, "no encryptor= (starsessions has)"),
        ({"secret_key": "example"}, "at least 32 bytes"),
        ({"same_site": "none", "https_only": False}, "samesite='none' requires secure"),
        ({"max_age": "forever"}, "max_age='forever'"),
        ({"path": "no-slash"}, "must start with '/'"),
        (
            {"concurrency": "lock", "backend": MemoryBackend(), "idle_timeout": -1},
            "must be positive",
        ),
    ],
)
def test_a_refused_configuration_stops_the_start_up_with_its_message(
    options: dict[str, Any], message: str
) -> None:
    options = {"secret_key": SECRET, "backend": MemoryBackend(), **options}
    app = app_with(Middleware(SessionMiddleware, **options))
    assert message in start_up_error(app)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        TestClient(app).get("/read")  # no lifespan: every request raises it


APP_TEMPLATE = """
from fastapi import FastAPI
from fastapi_session_deps import MemoryBackend, SessionMiddleware

app = FastAPI()
app.add_middleware(SessionMiddleware, backend=MemoryBackend(), {options})

@app.get("/")
async def home():
    return {{"ok": True}}
"""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('secret_key="too-short"', "at least 32 bytes"),
        (f'secret_key="{SECRET}", cookie_nmae="x"', "unknown keyword cookie_nmae="),
        (f'secret_key="{SECRET}", same_site="none", https_only=False', "requires secure"),
    ],
)
def test_uvicorn_exits_with_the_message_instead_of_serving_500s(
    tmp_path: Path, options: str, message: str
) -> None:
    (tmp_path / "refused_app.py").write_text(textwrap.dedent(APP_TEMPLATE.format(options=options)))
    result = subprocess.run(  # noqa: S603 - our own interpreter and a loopback port
        [
            sys.executable,
            "-m",
            "uvicorn",
            "refused_app:app",
            "--app-dir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Application startup failed" in result.stderr


# -- SessionAutoloadMiddleware -----------------------------------------------------------------


@pytest.fixture
def store() -> CountingBackend:
    return CountingBackend(MemoryBackend())


def beside(store: CountingBackend, **autoload: Any) -> Starlette:
    """starsessions' layout: the loader added first, so it runs inside SessionMiddleware."""
    return app_with(
        Middleware(SessionMiddleware, secret_key=SECRET, backend=store, autoload=False),
        Middleware(SessionAutoloadMiddleware, **autoload),
    )


async def test_beside_session_middleware_it_loads_for_every_path_by_default(
    store: CountingBackend,
) -> None:
    async with client(beside(store)) as http:
        await http.post("/write")
        assert (await http.get("/read")).json() == {"n": 1}
        assert (await http.get("/admin/read")).json() == {"n": 1}


async def test_paths_are_strings_or_compiled_patterns_matched_at_the_start(
    store: CountingBackend,
) -> None:
    app = beside(store, paths=["/admin", re.compile(r"/api/v\d+/")])
    async with client(app) as http:
        await http.post("/write")  # no cookie yet: nothing to load
        store.reset()
        assert (await http.get("/admin/read")).json() == {"n": 1}
        assert (await http.get("/api/v1/read")).json() == {"n": 1}
        assert store.calls["get"] == 2
        with pytest.raises(SessionNotLoaded):
            await http.get("/read")  # outside the paths: lazy, and this route is async


async def test_on_its_own_with_a_secret_key_it_is_a_session_middleware() -> None:
    app = app_with(
        Middleware(SessionAutoloadMiddleware, secret_key=SECRET, backend=MemoryBackend())
    )
    async with client(app) as http:
        await http.post("/write")
        await http.post("/write")
        assert (await http.get("/read")).json() == {"n": 2}


async def test_on_its_own_with_paths_it_loads_only_there(store: CountingBackend) -> None:
    app = app_with(
        Middleware(SessionAutoloadMiddleware, paths=["/admin"], secret_key=SECRET, backend=store)
    )
    async with client(app) as http:
        await http.post("/write")
        assert (await http.get("/admin/read")).json() == {"n": 1}
        with pytest.raises(SessionNotLoaded):
            await http.get("/read")


def test_without_a_session_middleware_around_it_the_start_up_fails(store: CountingBackend) -> None:
    # Added after SessionMiddleware, it runs outside it and finds no session to load.
    misordered = app_with(
        Middleware(SessionAutoloadMiddleware),
        Middleware(SessionMiddleware, secret_key=SECRET, backend=store, autoload=False),
    )
    assert "add_middleware(SessionMiddleware" in start_up_error(misordered)
    alone = app_with(Middleware(SessionAutoloadMiddleware))
    assert "there is none" in start_up_error(alone)
    with pytest.raises(ConfigurationError, match="there is none"):
        TestClient(alone).get("/read")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"paths": ["("]}, "is not a regular expression"),
        ({"paths": [42]}, "neither a string nor a compiled pattern"),
        ({"secret_key": SECRET, "autoload": False}, "always loads"),
        ({"secret_key": "short"}, "at least 32 bytes"),
    ],
)
def test_its_refused_settings_stop_the_start_up(options: dict[str, Any], message: str) -> None:
    assert message in start_up_error(app_with(Middleware(SessionAutoloadMiddleware, **options)))


async def test_its_loading_answers_503_when_the_store_is_down() -> None:
    from .helpers import SwitchableBackend, call, cookie_header

    store = SwitchableBackend(MemoryBackend())
    app = beside(CountingBackend(store))
    first = await call(app, "/write", "POST")
    store.down = {"get"}
    response = await call(app, "/read", headers=cookie_header(first.cookie() or ""))
    assert response.status == 503
    assert response.header("retry-after") == "1"
