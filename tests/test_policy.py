"""`SessionPolicy`: one frozen, validated object for how sessions live."""

import dataclasses
import typing
from datetime import timedelta

import pytest
from fastapi import Depends
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    MemoryBackend,
    MissingDependencyError,
    SessionManager,
    SessionMiddleware,
    SessionPolicy,
    destroy_session,
)
from fastapi_session_deps.policy import POLICY_SETTINGS, PolicySettings

from .helpers import SECRET, call, cookie_header
from .support import AppSession, build_app

pytestmark = pytest.mark.anyio


def test_the_settings_keywords_are_exactly_the_policy_fields() -> None:
    assert set(typing.get_type_hints(PolicySettings)) == POLICY_SETTINGS
    assert {field.name for field in dataclasses.fields(SessionPolicy)} == POLICY_SETTINGS


def test_the_policy_is_frozen_and_keeps_seconds() -> None:
    policy = SessionPolicy.from_settings(
        {"idle_timeout": timedelta(minutes=5), "lock_ttl": timedelta(seconds=7)}
    )
    assert (policy.idle_timeout, policy.lock_ttl) == (300.0, 7.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.idle_timeout = 1  # type: ignore[misc]


def test_a_manager_shows_the_policy_it_built() -> None:
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET),
        backend=MemoryBackend(),
        idle_timeout=60,
        concurrency="lock",
    )
    assert sessions.policy == SessionPolicy(idle_timeout=60, concurrency="lock")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"clock": 42}, "clock must be a function"),
        ({"idle_timeout": 0}, "idle_timeout must be positive"),
        ({"max_record_bytes": True}, "max_record_bytes"),
        ({"colour": "blue"}, "Unknown session settings: colour"),
    ],
)
def test_bad_settings_are_refused_naming_them(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SessionPolicy.from_settings(settings)  # type: ignore[arg-type]


async def test_regenerate_after_destroy_keeps_the_session_ended() -> None:
    sessions = SessionManager(
        AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=MemoryBackend()
    )
    app = build_app(sessions)

    @app.post("/logout-then-regenerate")
    async def both(session: typing.Annotated[AppSession, Depends(sessions.get_session)]) -> None:
        await sessions.destroy(session)
        await sessions.regenerate(session)

    token = (await call(app, "/login", "POST")).cookie() or ""
    response = await call(app, "/logout-then-regenerate", "POST", headers=cookie_header(token))
    assert response.cookie() == ""  # cleared, not moved
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401


async def test_a_log_out_under_a_zero_lifetime_still_clears_the_cookie() -> None:
    async def logout(request: Request) -> JSONResponse:
        await destroy_session(request)
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/logout", logout, methods=["POST"])],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, max_age=0)],
    )
    response = await call(app, "/logout", "POST")
    assert "session=null" in (response.header("set-cookie") or "")


def test_a_missing_extra_names_the_install_line() -> None:
    error = MissingDependencyError.of("SQLBackend", "sql", "SQLAlchemy")
    assert str(error) == "SQLBackend needs SQLAlchemy: pip install 'fastapi-session-deps[sql]'"
