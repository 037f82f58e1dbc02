"""What is particular to `FunctionBackend`: its record, expiry it keeps itself, and faults.

The contract suite (test_contract.py) runs it over a REST store served by uvicorn; here
the three functions keep records in a dict, which is all a store made of functions needs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_session_deps import (
    BackendUnavailable,
    ConfigurationError,
    CookieFrontend,
    FunctionBackend,
    SessionManager,
)

from ..helpers import SECRET, Clock, call, cookie_header
from ..support import AppSession, build_app

pytestmark = pytest.mark.anyio


class DictStore:
    """Three async functions over a dict, counting calls; ``fail`` makes them raise."""

    def __init__(self) -> None:
        self.records: dict[str, Any] = {}
        self.calls: list[str] = []
        self.fail: Exception | None = None

    async def get(self, key: str) -> Any:
        self._note("get")
        return json.loads(json.dumps(self.records[key])) if key in self.records else None

    async def save(self, key: str, data: dict[str, Any]) -> None:
        self._note("save")
        self.records[key] = json.loads(json.dumps(data))  # JSON-able, and copied

    async def delete(self, key: str) -> None:
        self._note("delete")
        self.records.pop(key, None)

    def _note(self, name: str) -> None:
        self.calls.append(name)
        if self.fail is not None:
            raise self.fail

    def backend(self, clock: Clock, **options: Any) -> FunctionBackend:
        return FunctionBackend(self.get, self.save, self.delete, clock=clock, **options)


@pytest.fixture
def store() -> DictStore:
    return DictStore()


async def test_the_record_is_plain_json_with_its_expiry_inside(
    store: DictStore, clock: Clock
) -> None:
    backend = store.backend(clock)
    await backend.set("k", {"user_id": b"7", "\x00created": b"1800000000.0"}, ttl=60)
    assert store.records["k"] == {
        "fields": {"user_id": "7"},
        "meta": {"created": "1800000000.0"},  # no NUL reaches the user's store
        "expires": clock() + 60,
    }


async def test_an_expired_record_is_none_and_deleted_when_met(
    store: DictStore, clock: Clock
) -> None:
    backend = store.backend(clock)
    await backend.set("k", {"a": b"1"}, ttl=10)
    clock.advance(11)
    assert await backend.get("k") is None
    assert "k" not in store.records


async def test_a_read_that_renews_saves_the_new_expiry(store: DictStore, clock: Clock) -> None:
    backend = store.backend(clock)
    await backend.set("k", {"a": b"1"}, ttl=10)
    clock.advance(5)
    store.calls.clear()
    assert await backend.get("k", ttl=10) == {"a": b"1"}
    assert store.calls == ["get", "save"]
    assert store.records["k"]["expires"] == clock() + 10
    store.calls.clear()
    assert await backend.get("k") == {"a": b"1"}
    assert store.calls == ["get"]  # a plain read is one call


async def test_any_exception_is_a_store_fault_logged_with_its_traceback(
    store: DictStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = store.backend(clock)
    store.fail = httpx.ConnectError("connection refused")
    for operation in (
        backend.get("k"),
        backend.set("k", {"a": b"1"}, ttl=1),
        backend.update("k", {"a": b"1"}, ttl=1),
        backend.delete("k"),
    ):
        with (
            caplog.at_level(logging.WARNING, logger="fastapi_session_deps"),
            pytest.raises(BackendUnavailable) as caught,
        ):
            await operation
        assert caught.value.backend == "FunctionBackend"
        assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert all(record.exc_info is not None for record in caplog.records)
    assert "ConnectError" in caplog.text


async def test_every_call_is_bounded_by_the_timeout(clock: Clock) -> None:
    async def hang(*_: Any) -> None:
        await anyio.sleep_forever()

    backend = FunctionBackend(hang, hang, hang, timeout=0.05, clock=clock)
    with anyio.fail_after(5), pytest.raises(BackendUnavailable, match=r"within 0\.05 s"):
        await backend.get("k")


async def test_update_merges_only_into_a_live_record(store: DictStore, clock: Clock) -> None:
    backend = store.backend(clock)
    assert await backend.update("k", {"a": b"1"}, ttl=10) is False
    assert store.records == {}
    await backend.set("k", {"a": b"1", "b": b"2"}, ttl=10)
    assert await backend.update("k", {"a": b"3"}, ["b"], ttl=10) is True
    assert await backend.get("k") == {"a": b"3"}


def test_functions_must_be_callable_and_the_timeout_positive(store: DictStore) -> None:
    with pytest.raises(ConfigurationError, match="must be an async function"):
        FunctionBackend(store.get, "save", store.delete)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        FunctionBackend(store.get, store.save, store.delete, timeout=0)
    assert "DictStore.get" in repr(FunctionBackend(store.get, store.save, store.delete))


def test_the_lock_policy_is_refused_because_update_is_not_atomic(store: DictStore) -> None:
    with pytest.raises(ConfigurationError, match="has none"):
        SessionManager(
            AppSession,
            frontend=CookieFrontend(SECRET),
            backend=FunctionBackend(store.get, store.save, store.delete),
            concurrency="lock",
        )


async def test_a_manager_on_it_logs_in_reads_and_answers_503_when_it_fails(
    store: DictStore, clock: Clock
) -> None:
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=store.backend(clock),
        clock=clock,
    )
    app = build_app(sessions)
    login = await call(app, "/login?user_id=9", "POST")
    headers = cookie_header(login.cookie() or "")
    assert json.loads((await call(app, "/me", headers=headers)).body)["user_id"] == 9
    store.fail = RuntimeError("the service is down")
    response = await call(app, "/me", headers=headers)
    assert response.status == 503
    assert response.header("retry-after") == "1"


# -- whatever get answers, it is a record or no session -------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"fields": json_values, "meta": json_values, "expires": json_values},
        optional={"extra": json_values},
    ),
    st.fixed_dictionaries(
        {
            "fields": st.dictionaries(st.text(max_size=6), st.text(max_size=6) | json_values),
            "meta": st.dictionaries(st.text(max_size=6), st.text(max_size=6) | json_values),
            "expires": st.floats(allow_nan=True) | st.integers() | json_values,
        }
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=records)
async def test_any_answer_from_get_is_a_record_or_no_session_never_an_error(answer: Any) -> None:
    deleted: list[str] = []

    async def get(key: str) -> Any:
        return answer

    async def save(key: str, data: dict[str, Any]) -> None:
        pass

    async def delete(key: str) -> None:
        deleted.append(key)

    backend = FunctionBackend(get, save, delete, clock=Clock())
    fields = await backend.get("k")
    if fields is None:
        return
    # It decoded: then it had exactly the shape this backend writes, and was live.
    assert isinstance(answer, dict)
    assert set(fields) == set(answer["fields"]) | {"\x00" + name for name in answer["meta"]}
    assert answer["expires"] > Clock()()
    assert deleted == []


async def test_a_damaged_record_is_deleted_and_logged_without_its_contents(
    store: DictStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = store.backend(clock)
    store.records["k"] = {"fields": {"card": 4111111111111111}, "meta": {}, "expires": 2e9}
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        assert await backend.get("k") is None
    assert "k" not in store.records
    assert "damaged" in caplog.text
    assert "4111" not in caplog.text
