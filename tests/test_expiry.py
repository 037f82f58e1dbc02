"""Expiry decided to the sub-second, whatever the resolution of the token's stamp.

Tokens carry their issue time in whole seconds, rounded down, so a token can be up to a
second younger than its stamp says. A session is never refused before its idle or absolute
deadline for that: the store's own expiry, which is exact, decides. On every store, the
session service included, with the test's clock.
"""

import pytest

from .helpers import Clock, call, cookie_header
from .support import WITH_THE_SERVICE, ManagerFactory, PassTime, build_app, each_store

pytestmark = pytest.mark.anyio

backend = pytest.fixture(params=WITH_THE_SERVICE, name="backend")(each_store)


@pytest.mark.parametrize("into_the_second", [0.1, 0.5, 0.9])
async def test_an_idle_session_lives_its_whole_idle_timeout(
    make_manager: ManagerFactory, clock: Clock, pass_time: PassTime, into_the_second: float
) -> None:
    clock.advance(into_the_second)  # the token's stamp is this far behind its issue
    app = build_app(make_manager(idle_timeout=10))
    token = (await call(app, "/login", "POST")).cookie()
    assert token
    await pass_time(9.5)  # half a second of idle time left
    alive = await call(app, "/me", headers=cookie_header(token))
    assert alive.status == 200
    renewed = alive.cookie() or token
    await pass_time(10.1)  # untouched for longer than the idle timeout
    assert (await call(app, "/me", headers=cookie_header(renewed))).status == 401


@pytest.mark.parametrize("into_the_second", [0.1, 0.5, 0.9])
async def test_a_session_lives_until_its_absolute_deadline_and_not_after(
    make_manager: ManagerFactory, clock: Clock, pass_time: PassTime, into_the_second: float
) -> None:
    clock.advance(into_the_second)
    app = build_app(make_manager(idle_timeout=10, absolute_timeout=10))
    token = (await call(app, "/login", "POST")).cookie()
    assert token
    await pass_time(9.5)  # half a second of absolute lifetime left
    alive = await call(app, "/incr", "POST", headers=cookie_header(token))
    assert alive.status == 200
    assert b'"counter":1' in alive.body  # the same session, not a fresh one
    await pass_time(0.6)
    assert (await call(app, "/me", headers=cookie_header(alive.cookie() or token))).status == 401
