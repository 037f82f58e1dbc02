"""A lifetime per session: "Keep me signed in".

A route gives one session an idle timeout, an absolute timeout and a cookie that outlives
the browser or not (`SessionManager.set_lifetime`, `set_session_lifetime`), within the
app's bounds. The choice lives in the record: every store's expiry, the token's age check
and the cookie's Max-Age follow it. On every store, the session service included, with
the test's clock.
"""

import re
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Annotated, Any

import anyio
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    HeaderFrontend,
    MemoryBackend,
    SessionManager,
    SessionMiddleware,
    get_session_remaining_seconds,
    set_session_lifetime,
)
from fastapi_session_deps._engine import bound_state
from fastapi_session_deps._record import (
    LIFETIME_FIELD,
    StoredLifetime,
    lifetime_field,
    lifetime_of,
)
from fastapi_session_deps.signing import TokenSigner

from .helpers import SECRET, Clock, RawResponse, call, cookie_header
from .support import (
    WITH_THE_SERVICE,
    AppSession,
    ManagerFactory,
    PassTime,
    StoreRecords,
    build_app,
    each_store,
)

pytestmark = pytest.mark.anyio

backend = pytest.fixture(params=WITH_THE_SERVICE, name="backend")(each_store)

#: The app's settings: sessions idle out after 10 s and end 60 s after they began; a
#: route may give one up to 100 s idle and 300 s in all.
IDLE, ABSOLUTE, LONGEST_IDLE, LONGEST_ABSOLUTE = 10, 60, 100, 300
SETTINGS: dict[str, Any] = {
    "idle_timeout": IDLE,
    "absolute_timeout": ABSOLUTE,
    "max_idle_timeout": LONGEST_IDLE,
    "max_absolute_timeout": LONGEST_ABSOLUTE,
    "user_index": True,
}


def lifetime_app(sessions: SessionManager[AppSession]) -> FastAPI:
    """The suite's app, and a log-in form with a "Keep me signed in" box."""
    app = build_app(sessions)
    app.state.gate = None
    Session = Annotated[AppSession, Depends(sessions.get_session)]

    async def choose(session: AppSession, remember: bool) -> None:
        if remember:
            await sessions.set_lifetime(
                session, idle=LONGEST_IDLE, absolute=LONGEST_ABSOLUTE, persistent=True
            )
        else:
            await sessions.set_lifetime(session, persistent=False)

    @app.post("/sign-in")
    async def sign_in(session: Session, remember: bool = False, first: str = "choose") -> Any:
        if first == "choose":
            await choose(session, remember)
        if first == "regenerate":  # a plain regeneration, then the choice
            await sessions.regenerate(session)
            await choose(session, remember)
        await sessions.login(session, "ada")
        session.user_id = 1
        if first == "login":
            await choose(session, remember)
        return {"ok": True}

    @app.post("/remember")
    async def remember(session: Session) -> Any:
        await choose(session, True)
        await _wait(app)
        return {"ok": True}

    @app.post("/forget")
    async def forget(session: Session) -> Any:
        await sessions.set_lifetime(session)  # the app's settings again
        return {"ok": True}

    @app.post("/slow-incr")
    async def slow_incr(session: Session) -> Any:
        session.counter += 1
        await _wait(app)
        return {"counter": session.counter}

    @app.get("/lifetime")
    async def lifetime(session: Session) -> Any:
        return vars(sessions.lifetime(session))

    @app.post("/choose")
    async def choose_any(session: Session, idle: float, absolute: float | None = None) -> Any:
        try:
            await sessions.set_lifetime(session, idle=idle, absolute=absolute)
        except ConfigurationError as exc:
            return JSONResponse({"refused": str(exc)}, status_code=400)
        return {"ok": True}

    return app


async def _wait(app: FastAPI) -> None:
    """Hold the request after its route ran, until the test lets it go (if it says so)."""
    gate: tuple[anyio.Event, anyio.Event] | None = app.state.gate
    if gate is not None:
        inside, go = gate
        inside.set()
        await go.wait()


def max_age(response: RawResponse, name: str = "session") -> str | None:
    """The Max-Age of the session cookie a response sets ('' for none: a browser-session
    cookie); ``None`` if it sets no cookie."""
    for header in response.header_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            return str(jar[name]["max-age"])
    return None


@pytest.fixture
def sessions(make_manager: ManagerFactory) -> SessionManager[AppSession]:
    return make_manager(**SETTINGS)


@pytest.fixture
def app(sessions: SessionManager[AppSession]) -> FastAPI:
    return lifetime_app(sessions)


async def sign_in(app: FastAPI, *, remember: bool, first: str = "choose") -> RawResponse:
    path = f"/sign-in?remember={str(remember).lower()}&first={first}"
    response = await call(app, path, "POST")
    assert response.status == 200
    return response


# -- expiry, on every store ------------------------------------------------------------------


async def test_a_remembered_session_outlives_the_apps_idle_timeout_and_ends_at_its_own(
    app: FastAPI, pass_time: PassTime
) -> None:
    remembered = (await sign_in(app, remember=True)).cookie()
    default = (await sign_in(app, remember=False)).cookie()
    assert remembered
    assert default
    await pass_time(50)  # five idle timeouts of the app's, half of the remembered one
    assert (await call(app, "/me", headers=cookie_header(default))).status == 401
    alive = await call(app, "/me", headers=cookie_header(remembered))
    assert alive.status == 200
    assert b'"user_id":1' in alive.body
    token = alive.cookie() or remembered
    await pass_time(LONGEST_IDLE + 1)  # idle for longer than its own idle timeout
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401


async def test_a_remembered_session_ends_at_its_own_absolute_timeout_however_active(
    app: FastAPI, pass_time: PassTime
) -> None:
    token = (await sign_in(app, remember=True)).cookie()
    assert token
    for _ in range(LONGEST_ABSOLUTE // 50 - 1):  # every 50 s until 250 s: past the app's 60
        await pass_time(50)
        answer = await call(app, "/incr", "POST", headers=cookie_header(token))
        assert answer.status == 200
        token = answer.cookie() or token
    assert b'"counter":5' in answer.body  # one session all along
    await pass_time(49)  # 299 s old: one second left
    assert (await call(app, "/me", headers=cookie_header(token))).status == 200
    await pass_time(1.1)
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401


async def test_a_default_session_keeps_the_apps_idle_and_absolute_timeouts(
    app: FastAPI, pass_time: PassTime
) -> None:
    token = (await sign_in(app, remember=False)).cookie()
    assert token
    for _ in range(ABSOLUTE // 9):  # active every 9 s: the idle timeout never runs out
        await pass_time(9)
        answer = await call(app, "/incr", "POST", headers=cookie_header(token))
        assert answer.status == 200
        token = answer.cookie() or token
    await pass_time(ABSOLUTE - 9 * (ABSOLUTE // 9) + 0.1)  # past the app's absolute timeout
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401


async def test_a_browser_session_cookie_has_no_max_age_and_still_idles_out_on_the_server(
    app: FastAPI, pass_time: PassTime
) -> None:
    signed_in = await sign_in(app, remember=False)
    assert max_age(signed_in) == ""  # no Max-Age: the browser drops it when it closes
    token = signed_in.cookie()
    assert token
    await pass_time(IDLE - 1)
    renewed = await call(app, "/me", headers=cookie_header(token))
    assert renewed.status == 200
    assert max_age(renewed) in (None, "")  # a renewed token is a browser-session one too
    await pass_time(IDLE + 1)
    assert (await call(app, "/me", headers=cookie_header(renewed.cookie() or token))).status == 401


async def test_the_cookie_never_outlives_the_session(app: FastAPI, pass_time: PassTime) -> None:
    remembered = await sign_in(app, remember=True)
    assert max_age(remembered) == str(LONGEST_IDLE)
    token = remembered.cookie()
    assert token
    for _ in range(5):  # to 250 s of the remembered session's 300
        await pass_time(50)
        answer = await call(app, "/me", headers=cookie_header(token))
        token = answer.cookie() or token
    assert max_age(answer) == str(LONGEST_ABSOLUTE - 250)  # what the session has left
    default = await call(app, "/incr", "POST")
    assert max_age(default) == str(IDLE)  # a session nobody chose for: as before


async def test_the_choice_survives_a_log_in_before_or_after_it_and_reaches_the_record(
    app: FastAPI, pass_time: PassTime, store_records: StoreRecords
) -> None:
    tokens = [
        (await sign_in(app, remember=True, first=first)).cookie()
        for first in ("choose", "login", "regenerate")
    ]
    records = [fields for fields in (await store_records()).values() if LIFETIME_FIELD in fields]
    expected = StoredLifetime(LONGEST_IDLE, LONGEST_ABSOLUTE, True)
    assert [lifetime_of(fields[LIFETIME_FIELD]) for fields in records] == [expected] * 3
    await pass_time(50)
    for token in tokens:
        assert token is not None
        assert (await call(app, "/me", headers=cookie_header(token))).status == 200


async def test_destroy_gives_the_next_session_the_apps_settings(
    app: FastAPI, pass_time: PassTime
) -> None:
    token = (await sign_in(app, remember=True)).cookie()
    assert token
    logged_out = await call(app, "/logout?note=bye", "POST", headers=cookie_header(token))
    fresh = logged_out.cookie()
    assert fresh
    assert max_age(logged_out) == str(IDLE)
    described = await call(app, "/lifetime", headers=cookie_header(fresh))
    assert b'"chosen":false' in described.body
    await pass_time(IDLE + 1)
    assert (await call(app, "/read", headers=cookie_header(fresh))).body.count(b"bye") == 0


async def test_going_back_to_the_apps_settings_shortens_the_stored_expiry(
    app: FastAPI, pass_time: PassTime
) -> None:
    token = (await sign_in(app, remember=True)).cookie()
    assert token
    forgot = await call(app, "/forget", "POST", headers=cookie_header(token))
    assert forgot.status == 200
    assert max_age(forgot) == str(IDLE)
    await pass_time(IDLE + 1)
    # Even the token issued for the longer life is refused: the record decides.
    for held in (token, forgot.cookie() or token):
        assert (await call(app, "/me", headers=cookie_header(held))).status == 401


async def test_the_session_says_how_long_it_lives(app: FastAPI, pass_time: PassTime) -> None:
    token = (await sign_in(app, remember=True)).cookie()
    assert token
    await pass_time(30)
    answer = await call(app, "/lifetime", headers=cookie_header(token))
    assert answer.status == 200
    assert b'"idle_timeout":100.0' in answer.body
    assert b'"absolute_timeout":300.0' in answer.body
    assert b'"persistent":true' in answer.body
    assert b'"chosen":true' in answer.body
    assert b'"seconds_left":100.0' in answer.body


async def test_your_devices_shows_which_sessions_are_remembered_and_until_when(
    app: FastAPI, sessions: SessionManager[AppSession], clock: Clock, pass_time: PassTime
) -> None:
    remembered = (await sign_in(app, remember=True)).cookie()
    assert remembered
    assert (await sign_in(app, remember=False)).cookie()
    await pass_time(5)
    listed = {info.remembered: info for info in await sessions.users.list("ada")}
    assert set(listed) == {True, False}
    assert listed[True].expires_at == pytest.approx(clock() + LONGEST_IDLE - 5, abs=1.5)
    assert listed[False].expires_at == pytest.approx(clock() + IDLE - 5, abs=1.5)
    assert await sessions.users.revoke("ada", listed[True].handle)
    assert (await call(app, "/me", headers=cookie_header(remembered))).status == 401
    assert [info.remembered for info in await sessions.users.list("ada")] == [False]
    again = (await sign_in(app, remember=True)).cookie()
    assert await sessions.users.revoke_all("ada") == 2  # remembered or not, all end
    assert (await call(app, "/me", headers=cookie_header(again or ""))).status == 401


# -- two requests of one session at once -----------------------------------------------------


@pytest.mark.parametrize("last", ["the change", "the choice"])
async def test_a_choice_and_a_change_made_at_once_both_persist(
    app: FastAPI, pass_time: PassTime, last: str
) -> None:
    token = (await sign_in(app, remember=False)).cookie()
    assert token
    held, quick = ("/slow-incr", "/remember") if last == "the change" else ("/remember", "/incr")
    inside, go = anyio.Event(), anyio.Event()
    answers: dict[str, RawResponse] = {}

    async def run(path: str) -> None:
        answers[path] = await call(app, path, "POST", headers=cookie_header(token))

    async with anyio.create_task_group() as group:
        app.state.gate = (inside, go)
        group.start_soon(run, held)  # loads the session, then waits before its commit
        await inside.wait()
        app.state.gate = None
        await run(quick)  # loads and commits while the other is in flight
        go.set()
    assert all(answer.status == 200 for answer in answers.values())
    tokens = {answer.cookie() for answer in answers.values()} - {None}
    assert tokens  # the choice sends one, with the new lifetime
    # Whichever of them the browser kept (the answers may arrive in either order): the
    # session is remembered, and holds the change.
    await pass_time(50)
    for held_token in tokens:
        assert held_token is not None
        answer = await call(app, "/read", headers=cookie_header(held_token))
        assert b'"counter":1' in answer.body, (held_token, answer.body)
        renewed = answer.cookie()
        if renewed:
            assert max_age(answer) == str(LONGEST_IDLE)  # sent again, for the record's life


# -- bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("idle=101", "max_idle_timeout"),
        ("idle=50&absolute=301", "max_absolute_timeout"),
        ("idle=50&absolute=40", "shorter than idle"),
        ("idle=0", "idle must be positive"),
        ("idle=-5", "idle must be positive"),
    ],
)
async def test_a_lifetime_beyond_the_apps_bounds_is_refused_with_the_setting_named(
    app: FastAPI, query: str, named: str
) -> None:
    answer = await call(app, f"/choose?{query}", "POST")
    assert answer.status == 400
    assert named in answer.body.decode()


async def test_no_absolute_timeout_is_refused_where_the_app_has_one(app: FastAPI) -> None:
    answer = await call(app, "/choose?idle=50", "POST")  # absolute=None: no limit asked
    assert answer.status == 400
    assert "no absolute timeout is longer than the app allows" in answer.body.decode()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"idle_timeout": 60, "max_idle_timeout": 30}, "max_idle_timeout (30 s) is shorter"),
        (
            {"idle_timeout": 60, "absolute_timeout": 600, "max_absolute_timeout": 300},
            "max_absolute_timeout (300 s) is shorter than absolute_timeout",
        ),
        (
            {"absolute_timeout": 3600, "max_idle_timeout": 7200},
            "pass max_absolute_timeout of at least 7200 s",
        ),
        ({"max_idle_timeout": "long"}, "max_idle_timeout must be a number of seconds"),
    ],
)
def test_bounds_that_could_not_hold_are_refused_at_start_up(
    settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        SessionManager(
            AppSession,
            frontend=CookieFrontend(secret_key=SECRET, secure=False),
            backend=MemoryBackend(),
            **settings,
        )


async def test_bounds_lowered_later_hold_sessions_remembered_before(
    make_manager: ManagerFactory, pass_time: PassTime
) -> None:
    token = (await sign_in(lifetime_app(make_manager(**SETTINGS)), remember=True)).cookie()
    assert token
    lowered = lifetime_app(make_manager(**{**SETTINGS, "max_idle_timeout": 30}))
    await pass_time(29)
    renewed = await call(lowered, "/me", headers=cookie_header(token))
    assert renewed.status == 200
    assert max_age(renewed) == "30"
    await pass_time(31)
    assert (
        await call(lowered, "/me", headers=cookie_header(renewed.cookie() or token))
    ).status == 401


# -- the token ---------------------------------------------------------------------------------


def test_a_token_names_the_lifetime_it_was_issued_for_under_its_signature() -> None:
    signer = TokenSigner(SECRET, namespace="session")
    plain = signer.sign("a" * 43, 1_800_000_000)
    marked = signer.sign("a" * 43, 1_800_000_000, lifetime=2_592_000)
    assert plain.count(".") == 2
    assert marked.count(".") == 3
    assert signer.verify(plain) is not None
    assert signer.verify(plain).lifetime is None  # type: ignore[union-attr]
    assert signer.verify(marked).lifetime == 2_592_000  # type: ignore[union-attr]
    value, _, signature = marked.rpartition(".")
    longer = value[: value.rfind(".")] + ".AQAAAA." + signature  # another lifetime
    assert signer.verify(longer) is None
    assert signer.verify(value + ".." + signature) is None


def test_a_damaged_lifetime_field_is_the_apps_settings_not_an_error() -> None:
    assert lifetime_of(b"[1, 2]") is None
    assert lifetime_of(b"[0, null, true]") is None
    assert lifetime_of(b"[10, -1, true]") is None
    assert lifetime_of(b'[10, null, "yes"]') is None
    assert lifetime_of(b"not json") is None
    assert lifetime_of(lifetime_field(StoredLifetime(5, None, False))) == StoredLifetime(
        5, None, False
    )


# -- the drop-in -------------------------------------------------------------------------------


async def test_the_drop_in_sets_a_lifetime_through_the_request(clock: Clock) -> None:
    async def sign_in(request: Request) -> PlainTextResponse:
        request.session["user"] = "ada"
        remember = request.query_params.get("remember") == "1"
        await set_session_lifetime(
            request,
            idle=timedelta(days=30) if remember else None,
            persistent=remember,
        )
        return PlainTextResponse(str(await get_session_remaining_seconds(request)))

    app = Starlette(routes=[Route("/sign-in", sign_in, methods=["POST"])])
    app.add_middleware(
        SessionMiddleware,
        secret_key=SECRET,
        backend=MemoryBackend(clock=clock),
        max_age=None,  # a browser-session cookie unless a log-in says otherwise
        idle_timeout=timedelta(hours=2),
        max_idle_timeout=timedelta(days=30),
        clock=clock,
    )
    remembered = await call(app, "/sign-in?remember=1", "POST")
    assert remembered.body == str(30 * 86400).encode()
    assert max_age(remembered) == str(30 * 86400)
    default = await call(app, "/sign-in", "POST")
    assert default.body == str(2 * 3600).encode()
    assert max_age(default) == ""


# -- what comes from outside: tokens and stored fields, fuzzed ---------------------------------


@given(
    lifetime=st.integers(min_value=1, max_value=2**40),
    other=st.integers(min_value=0, max_value=2**40),
)
def test_a_token_s_lifetime_cannot_be_changed_without_the_key(lifetime: int, other: int) -> None:
    signer = TokenSigner(SECRET, namespace="session")
    token = signer.sign("b" * 43, 1_800_000_000, lifetime=lifetime)
    verified = signer.verify(token)
    assert verified is not None
    assert verified.lifetime == lifetime
    session_id, stamp, _, signature = token.split(".")
    other_stamp = signer.sign("b" * 43, other).split(".")[1]  # the encoding of `other`
    forged = f"{session_id}.{stamp}.{other_stamp}.{signature}"
    assert signer.verify(forged) is None or other == lifetime


@given(st.binary(max_size=64) | st.from_regex(r"\[[-0-9.e, a-z\"]{0,40}\]", fullmatch=True))
def test_a_stored_lifetime_field_decodes_or_is_none_never_an_error(raw: bytes | str) -> None:
    value = raw.encode() if isinstance(raw, str) else raw
    decoded = lifetime_of(value)
    assert decoded is None or (decoded.idle > 0 and isinstance(decoded.persistent, bool))


async def test_a_damaged_stored_lifetime_is_the_apps_settings(
    sessions: SessionManager[AppSession], pass_time: PassTime
) -> None:
    app = lifetime_app(sessions)

    @app.post("/damage")
    async def damage(
        session: Annotated[AppSession, Depends(sessions.get_session)],
    ) -> dict[str, bool]:
        bound_state(session).set_reserved(LIFETIME_FIELD, b'[10, "never", true]')
        return {"ok": True}

    token = (await sign_in(app, remember=True)).cookie()
    assert token
    damaged = await call(app, "/damage", "POST", headers=cookie_header(token))
    assert damaged.status == 200
    # The token still names the remembered lifetime; the record no longer does: the record
    # decides, and the next answer sends a token for the app's lifetime.
    described = await call(app, "/lifetime", headers=cookie_header(token))
    assert b'"chosen":false' in described.body
    assert max_age(described) == str(IDLE)
    await pass_time(IDLE + 1)
    assert (
        await call(app, "/me", headers=cookie_header(described.cookie() or token))
    ).status == 401


async def test_persistent_must_be_a_yes_or_a_no(sessions: SessionManager[AppSession]) -> None:
    state = sessions.engine.new_state()
    with pytest.raises(ConfigurationError, match="persistent must be True, False or None"):
        sessions.engine.choose_lifetime(
            state,
            idle=None,
            absolute="default",
            persistent="yes",  # type: ignore[arg-type]
        )


async def test_the_engine_remembers_a_bounded_number_of_decoded_lifetimes(
    sessions: SessionManager[AppSession],
) -> None:
    engine = sessions.engine
    for idle in range(1, 300):
        field = lifetime_field(StoredLifetime(float(idle), 300.0, True))
        assert engine.lifetime_of({LIFETIME_FIELD: field}).sliding == min(idle, LONGEST_IDLE)
        assert len(engine._lifetimes) <= 256


async def test_a_token_issued_for_a_longer_life_is_refused_by_the_records_shorter_one(
    app: FastAPI, pass_time: PassTime
) -> None:
    remembered = (await sign_in(app, remember=True)).cookie()  # a token marked 100 s
    assert remembered
    forgot = await call(app, "/forget", "POST", headers=cookie_header(remembered))
    current = forgot.cookie()
    assert current
    for _ in range(3):  # the session lives on through its new token, 8 s at a time
        await pass_time(8)
        answer = await call(app, "/me", headers=cookie_header(current))
        assert answer.status == 200
        current = answer.cookie() or current
    # The old token is 24 s old: young for the life it names, too old for the record's.
    stale = await call(app, "/me", headers=cookie_header(remembered))
    assert stale.status == 401
    assert (await call(app, "/me", headers=cookie_header(current))).status == 200


async def test_a_header_frontend_follows_the_lifetime_and_ignores_the_cookie_choice(
    make_manager: ManagerFactory, pass_time: PassTime
) -> None:
    header = HeaderFrontend(secret_key=SECRET)
    app = lifetime_app(make_manager(**SETTINGS, frontend=header))
    for remember in (True, False):
        signed_in = await sign_in(app, remember=remember)
        token = signed_in.header(header.header_name)
        assert token
        await pass_time(50)  # past the app's idle timeout, within the remembered one
        sent = [(header.header_name.lower().encode(), token.encode())]
        answer = await call(app, "/me", headers=sent)
        assert answer.status == (200 if remember else 401)


def test_bounds_past_the_cookies_own_max_age_are_refused_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="longer than the frontend's max_age"):
        SessionManager(
            AppSession,
            frontend=CookieFrontend(secret_key=SECRET, secure=False, max_age=3600),
            backend=MemoryBackend(),
            max_idle_timeout=timedelta(days=30),
        )
    drop_in = SessionMiddleware(  # Starlette's max_age is 14 days unless given
        Starlette(), secret_key=SECRET, max_idle_timeout=timedelta(days=30)
    )
    assert "pass max_age=None" in str(drop_in.refusal)
