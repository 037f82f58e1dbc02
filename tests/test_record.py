"""The record format: the table of reserved fields, and the engine doing what it says.

Every row of `RESERVED_FIELDS` is checked on every store, through the typed API: a field
planted in a stored record is carried, reset or renewed by a regeneration and by a
log-in exactly as its row says, and left alone by a plain change. A feature's new row is
all it takes for its field to be read back and moved; a field without a row is refused.
"""

import json
import re
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import to_json
from starlette.requests import HTTPConnection

from fastapi_session_deps import Backend, MemoryBackend, SessionError, SessionManager
from fastapi_session_deps import _record as record
from fastapi_session_deps._engine import SessionState, bound_state
from fastapi_session_deps._record import (
    CREATED_FIELD,
    CSRF_SECRET_BYTES,
    MAX_AGENT_LENGTH,
    MAX_USER_LENGTH,
    OWNER_FIELD,
    RESERVED_FIELDS,
    RESERVED_PREFIX,
    Move,
    RecordFacts,
    ReservedField,
    carried_fields,
    csrf_field,
    csrf_secret,
    log_in_fields,
    moved,
)
from fastapi_session_deps.signing import store_key

from .helpers import Clock, RawResponse, call, cookie_header, http_scope
from .support import AppSession, ManagerFactory, manager_factory

pytestmark = pytest.mark.anyio

#: A feature's field, for the tests of a new row.
MINE = RESERVED_PREFIX + "mine"


def moves_app(sessions: SessionManager[AppSession]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]

    @app.post("/regenerate")
    async def regenerate(session: Session) -> None:
        await sessions.regenerate(session)

    @app.post("/login")
    async def login(session: Session, request: Request) -> None:
        await sessions.login(session, "alice", request)

    @app.post("/incr")
    async def incr(session: Session) -> None:
        session.counter += 1

    @app.post("/mine")
    async def set_mine(session: Session, value: str) -> None:
        bound_state(session).set_reserved(MINE, to_json(value))

    @app.get("/mine")
    async def get_mine(session: Session) -> str | None:
        raw = bound_state(session).reserved(MINE)
        return None if raw is None else record.reserved_text(raw)

    return app


def planted(name: str) -> bytes:
    """A value no feature would write: JSON text naming the field."""
    return to_json(f"planted in {name!r}")


def key_sent(sessions: SessionManager[AppSession], response: RawResponse) -> str:
    """The store key of the session whose token the response sends."""
    token = response.cookie()
    assert token is not None
    verified = sessions.frontend.read(HTTPConnection(http_scope(headers=cookie_header(token))))
    assert verified is not None
    return verified.key


@pytest.mark.parametrize("step", ["regenerate", "login", "incr"])
@pytest.mark.parametrize("row", RESERVED_FIELDS, ids=lambda row: row.name[1:])
async def test_each_reserved_field_moves_as_its_row_says(
    make_manager: ManagerFactory, backend: Backend, row: ReservedField, step: str
) -> None:
    sessions = make_manager(user_index=True, record_client=True)
    session_id = await sessions.engine.store_new(AppSession(counter=1))
    key = store_key(session_id)
    assert await backend.update(key, {row.name: planted(row.name)}, ttl=600)
    sent = sessions.frontend.request_headers(session_id, issued_at=int(sessions.policy.clock()))
    headers = [(name.encode(), value.encode()) for name, value in sent.items()]
    headers.append((b"user-agent", b"Tester/1.0"))
    response = await call(moves_app(sessions), f"/{step}", "POST", headers)
    assert response.status == 200

    if step == "incr":  # a plain change: the record keeps its id and every reserved field
        stored = await backend.get(key)
        assert stored is not None
        assert stored[row.name] == planted(row.name)
        assert stored["counter"] == b"2"
        return
    new_key = key_sent(sessions, response)
    assert new_key != key
    assert await backend.get(key) is None
    stored = await backend.get(new_key)
    assert stored is not None
    assert stored["counter"] == b"1"  # the data moved with it
    value = stored.get(row.name)
    move = row.log_in if step == "login" else row.regenerate
    if move is Move.CARRY:
        assert value == planted(row.name)
    elif move is Move.RESET:  # gone, or what the log-in writes of its own
        assert value != planted(row.name)
    else:
        assert value is not None
        assert value != planted(row.name)


async def test_a_log_in_writes_its_own_owner_client_and_last_seen(
    make_manager: ManagerFactory, backend: Backend
) -> None:
    sessions = make_manager(user_index=True, record_client=True)
    response = await call(moves_app(sessions), "/login", "POST", [(b"user-agent", b"T/1")])
    stored = await backend.get(key_sent(sessions, response))
    assert stored is not None
    facts = RecordFacts.of(stored)
    assert (facts.user, facts.ip, facts.user_agent) == ("alice", "127.0.0.1", "T/1")
    assert facts.last_seen == sessions.policy.clock()


@pytest.fixture
def a_new_row(monkeypatch: pytest.MonkeyPatch) -> ReservedField:
    """A feature's row added to the table, as a new feature would add it."""
    row = ReservedField(MINE, Move.CARRY, Move.RESET, "a test feature's field")
    table = (*RESERVED_FIELDS, row)
    monkeypatch.setattr(record, "RESERVED_FIELDS", table)
    monkeypatch.setattr(record, "_ROWS", {each.name: each for each in table})
    monkeypatch.setattr(record, "_NAMES", frozenset(each.name for each in table))
    return row


@pytest.mark.usefixtures("a_new_row")
async def test_a_new_row_is_all_a_feature_needs(make_manager: ManagerFactory) -> None:
    sessions = make_manager(user_index=True)
    app = moves_app(sessions)

    async def mine(token: str) -> object:
        return json.loads((await call(app, "/mine", headers=cookie_header(token))).body)

    token = (await call(app, "/mine?value=kept", "POST")).cookie()
    assert token is not None
    assert await mine(token) == "kept"
    moved_token = (await call(app, "/regenerate", "POST", cookie_header(token))).cookie()
    assert moved_token is not None
    assert await mine(moved_token) == "kept"
    logged_in = (await call(app, "/login", "POST", cookie_header(moved_token))).cookie()
    assert logged_in is not None
    assert await mine(logged_in) is None


def a_new_state(clock: Clock) -> SessionState[AppSession]:
    return manager_factory(MemoryBackend(clock=clock), clock)().engine.new_state()


def test_a_field_without_a_row_is_refused_naming_the_table(clock: Clock) -> None:
    state = a_new_state(clock)
    with pytest.raises(ValueError, match=r"RESERVED_FIELDS in fastapi_session_deps/_record\.py"):
        state.set_reserved(MINE, b'"x"')
    with pytest.raises(ValueError, match="not a reserved field"):
        state.set_reserved(CREATED_FIELD, b"1")  # the engine's own, not a carried field
    assert state.meta is None


def test_set_reserved_replaces_the_dict_and_none_drops_the_field(clock: Clock) -> None:
    state = a_new_state(clock)
    state.set_reserved(OWNER_FIELD, b'"alice"')
    first = state.meta
    state.set_reserved(record.FLASH_FIELD, b"[]")
    assert state.meta is not first  # never changed in place: commit compares identities
    assert first == {OWNER_FIELD: b'"alice"'}
    state.set_reserved(OWNER_FIELD, None)
    assert state.reserved(OWNER_FIELD) is None
    state.set_reserved(record.FLASH_FIELD, None)
    assert state.meta is None


def test_a_row_is_checked_when_declared() -> None:
    with pytest.raises(ValueError, match="starts with NUL"):
        ReservedField("mine", Move.CARRY, Move.CARRY, "no prefix")
    with pytest.raises(ValueError, match="needs fresh="):
        ReservedField(MINE, Move.RENEW, Move.CARRY, "renewed from nothing")


def test_every_reserved_field_the_module_names_is_the_creation_time_or_a_row() -> None:
    named = {
        value
        for name, value in vars(record).items()
        if name.endswith("_FIELD") and isinstance(value, str)
    }
    rows = {row.name for row in RESERVED_FIELDS}
    assert named == rows | {CREATED_FIELD}
    assert len(rows) == len(RESERVED_FIELDS)  # one row per field


def test_moving_follows_each_row_and_keeps_an_empty_session_empty() -> None:
    meta = {row.name: planted(row.name) for row in RESERVED_FIELDS}
    for log_in in (False, True):
        after = moved(meta, log_in=log_in) or {}
        for row in RESERVED_FIELDS:
            move = row.log_in if log_in else row.regenerate
            assert (after.get(row.name) == meta[row.name]) is (move is Move.CARRY), row.name
            assert (row.name in after) is (move is not Move.RESET), row.name
    assert moved(None, log_in=True) is None
    assert moved({OWNER_FIELD: b'"a"'}, log_in=True) is None  # all reset: nothing left


def test_a_fresh_csrf_secret_decodes_and_differs_each_time() -> None:
    row = next(row for row in RESERVED_FIELDS if row.name == record.CSRF_FIELD)
    assert row.fresh is not None
    first, second = row.fresh(), row.fresh()
    assert first != second
    secret = csrf_secret(first)
    assert secret is not None
    assert len(secret) == CSRF_SECRET_BYTES
    assert csrf_field(secret) == first


def test_log_in_fields_bound_the_user_and_the_agent() -> None:
    assert log_in_fields("bob", None, None) == {OWNER_FIELD: b'"bob"'}
    agent = record.reserved_text(log_in_fields("bob", "::1", "A" * 1000)[record.AGENT_FIELD])
    assert agent == "A" * MAX_AGENT_LENGTH
    for user in ("", "u" * (MAX_USER_LENGTH + 1), 7):
        with pytest.raises(SessionError, match="non-empty string"):
            log_in_fields(user, None, None)  # type: ignore[arg-type]


#: Values as a damaged or foreign record may hold them.
ANY_VALUE = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"null", b"1e999", b"true", b'"x"', b"[1]", b'"%%%"', b"\xff", b"{"]),
)


@given(
    st.dictionaries(
        st.sampled_from([r.name for r in RESERVED_FIELDS] + [CREATED_FIELD]), ANY_VALUE
    )
)
def test_decoding_damaged_reserved_fields_never_raises(fields: dict[str, bytes]) -> None:
    facts = RecordFacts.of(fields)
    assert facts.user is None or isinstance(facts.user, str)
    assert facts.created_at is None or isinstance(facts.created_at, float)
    secret = csrf_secret(fields.get(record.CSRF_FIELD))
    assert secret is None or len(secret) == CSRF_SECRET_BYTES
    carried = carried_fields(fields) or {}
    assert CREATED_FIELD not in carried
    assert set(carried) <= set(fields)


def test_the_design_notes_show_the_table_as_it_is() -> None:
    design = (Path(__file__).parents[1] / "docs" / "design.md").read_text()
    section = design.split("## Reserved fields", 1)[1].split("\n## ", 1)[0]
    shown = {
        match[0]: (match[1], match[2])
        for match in re.findall(r"^\| `(\w+)` \| (\w+) \| (\w+) \|", section, re.MULTILINE)
    }
    declared = {
        row.name[len(RESERVED_PREFIX) :]: (row.regenerate.value, row.log_in.value)
        for row in RESERVED_FIELDS
    }
    assert shown == {**declared, "created": ("carry", "carry")}
