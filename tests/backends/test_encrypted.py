"""EncryptedBackend: every stored value sealed with AES-256-GCM, on every store."""

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_session_deps import (
    Backend,
    ConfigurationError,
    EncryptedBackend,
    FunctionBackend,
    MemoryBackend,
    SessionEvent,
    SessionIndex,
    SessionLocks,
)
from fastapi_session_deps.backends.encrypted import KEYS_ENV, PREFIX, new_key

from ..helpers import Clock, CountingBackend, NoLocksBackend
from ..support import (
    WITH_THE_SERVICE,
    AppSession,
    StoreRecords,
    build_app,
    each_store,
    manager_factory,
)

pytestmark = pytest.mark.anyio

KEY, OLD_KEY = new_key(), new_key()
SECRET_VALUE = "card-4111-1111-1111-1111"

backend = pytest.fixture(params=WITH_THE_SERVICE, name="backend")(each_store)


@pytest.fixture
async def encrypted_client(backend: Backend, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    sessions = manager_factory(EncryptedBackend(backend, keys=[KEY]), clock)()
    transport = httpx.ASGITransport(app=build_app(sessions), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def client_on(
    store: Backend, clock: Clock, keys: list[str], *, forget: bool = False
) -> httpx.AsyncClient:
    """A client of an app on ``store`` through `EncryptedBackend`; with ``forget``, the
    app also has ``/forget-user``, which sets ``user_id`` back to none."""
    sessions = manager_factory(EncryptedBackend(store, keys=keys), clock)()
    app = build_app(sessions)
    if forget:

        @app.post("/forget-user")
        async def forget_user(
            session: Annotated[AppSession, Depends(sessions.get_session)],
        ) -> None:
            session.user_id = None

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_store_dump_shows_no_plaintext(
    encrypted_client: httpx.AsyncClient, store_records: StoreRecords
) -> None:
    client = encrypted_client
    await client.post("/login")
    await client.post("/cart", params={"item": SECRET_VALUE})
    await client.post("/incr")
    assert (await client.get("/me")).json()["cart"] == [SECRET_VALUE]
    dump = repr(await store_records())
    assert SECRET_VALUE not in dump
    assert "4111" not in dump
    assert PREFIX.decode() in dump


async def test_a_tampered_value_is_no_session_logged_without_data(
    backend: Backend, clock: Clock, store_records: StoreRecords, caplog: pytest.LogCaptureFixture
) -> None:
    inner = MemoryBackend(clock=clock)
    client = await client_on(inner, clock, [KEY])
    async with client:
        await client.post("/login")
        await client.post("/cart", params={"item": SECRET_VALUE})
        ((key, entry),) = inner._records.items()
        sealed = entry["cart"]
        entry["cart"] = sealed[:-3] + (b"A" if sealed[-3:-2] != b"A" else b"B") + sealed[-2:]
        with caplog.at_level(logging.WARNING):
            assert (await client.get("/me")).status_code == 401
    assert "does not decrypt" in caplog.text
    assert SECRET_VALUE not in caplog.text
    assert key in inner._records  # kept: a key left out of the ring must not wipe sessions


async def test_a_value_moved_to_another_session_or_field_does_not_decrypt(
    clock: Clock,
) -> None:
    inner = MemoryBackend(clock=clock)
    backend = EncryptedBackend(inner, keys=[KEY])
    await backend.set("a" * 43, {"cart": b'["x"]', "prefs": b"{}"}, ttl=60)
    await backend.set("b" * 43, {"cart": b'["y"]'}, ttl=60)
    a, b = inner._records["a" * 43], inner._records["b" * 43]
    b["cart"] = a["cart"]  # another session's value
    assert await backend.get("b" * 43) is None
    a["prefs"] = a["cart"]  # another field's value
    assert await backend.get("a" * 43) is None


async def test_rotation_seals_old_values_again_as_soon_as_they_are_read(
    backend: Backend, clock: Clock, store_records: StoreRecords
) -> None:
    async with await client_on(backend, clock, [OLD_KEY]) as old:
        await old.post("/login")
        await old.post("/cart", params={"item": "tea"})
        cookies = dict(old.cookies)
    old_id = EncryptedBackend(MemoryBackend(), keys=[OLD_KEY])._ring[0].id
    new_id = EncryptedBackend(MemoryBackend(), keys=[KEY])._ring[0].id
    assert old_id in repr(await store_records())

    async with await client_on(backend, clock, [KEY, OLD_KEY]) as rotated:
        rotated.cookies.update(cookies)
        assert (await rotated.get("/me")).json()["cart"] == ["tea"]  # old key still opens
        dump = repr(await store_records())  # a read: every value sealed with the new key
    assert old_id not in dump
    assert new_id in dump

    async with await client_on(backend, clock, [KEY]) as retired:  # the old key retired
        retired.cookies.update(cookies)
        me = (await retired.get("/me")).json()
    assert me["cart"] == ["tea"]
    assert me["user_id"] == 1


async def test_a_change_another_worker_made_after_a_rotated_read_stands(
    backend: Backend, clock: Clock
) -> None:
    """Worker 1 reads a session sealed under the old key; worker 2 signs the user out of
    it (``user_id`` back to none); worker 1's next change, of another field, must not
    write the old ``user_id`` back."""
    async with await client_on(backend, clock, [OLD_KEY]) as old:
        await old.post("/login", params={"user_id": 7})
        await old.post("/cart", params={"item": "tea"})
        cookies = dict(old.cookies)
    one = await client_on(backend, clock, [KEY, OLD_KEY], forget=True)
    two = await client_on(backend, clock, [KEY, OLD_KEY], forget=True)
    async with one, two:
        one.cookies.update(cookies)
        two.cookies.update(cookies)
        assert (await one.get("/me")).json()["user_id"] == 7
        assert (await two.post("/forget-user")).status_code == 200
        assert (await one.post("/incr")).status_code == 200
        me = (await one.get("/me")).json()
    assert (me["user_id"], me["counter"], me["cart"]) == (None, 1, ["tea"])


async def test_a_value_written_between_the_read_and_the_reseal_is_kept(
    backend: Backend,
) -> None:
    key = "k" * 43
    await EncryptedBackend(backend, keys=[OLD_KEY]).set(
        key, {"user_id": b"1", "role": b'"admin"'}, ttl=60
    )
    other_worker = EncryptedBackend(backend, keys=[KEY, OLD_KEY])

    class Interleaved(CountingBackend):
        """The store, with another worker's write landing right after each read."""

        async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
            fields = await super().get(key, ttl=ttl)
            assert await other_worker.update(key, {"role": b'"user"'}, ttl=60)
            return fields

    rotated = EncryptedBackend(Interleaved(backend), keys=[KEY, OLD_KEY])
    assert await rotated.get(key) == {"user_id": b"1", "role": b'"admin"'}  # as read
    after = await EncryptedBackend(backend, keys=[KEY]).get(key)  # only the new key
    assert after == {"user_id": b"1", "role": b'"user"'}  # resealed, and the newer role


async def test_a_ring_without_the_key_reads_no_session(backend: Backend, clock: Clock) -> None:
    async with await client_on(backend, clock, [OLD_KEY]) as old:
        await old.post("/login")
        cookies = dict(old.cookies)
    async with await client_on(backend, clock, [KEY]) as other:
        other.cookies.update(cookies)
        assert (await other.get("/me")).status_code == 401


async def test_merges_of_different_fields_both_persist(
    encrypted_client: httpx.AsyncClient,
) -> None:
    client = encrypted_client
    await client.post("/login")
    await client.post("/cart", params={"item": "tea"})
    await client.post("/incr")
    me = (await client.get("/me")).json()
    assert (me["cart"], me["counter"]) == (["tea"], 1)


async def test_it_has_the_capabilities_of_the_store_it_wraps(clock: Clock) -> None:
    async def nothing(*_: Any) -> None:
        return None

    memory = EncryptedBackend(MemoryBackend(clock=clock), keys=[KEY])
    assert isinstance(memory, SessionLocks)
    assert isinstance(memory, SessionIndex)
    plain = EncryptedBackend(FunctionBackend(nothing, nothing, nothing), keys=[KEY])
    assert not isinstance(plain, SessionLocks)
    assert not isinstance(plain, SessionIndex)
    with pytest.raises(ConfigurationError, match="concurrency='lock' needs a backend"):
        manager_factory(plain, clock)(concurrency="lock")


async def test_users_sessions_are_listed_through_it(clock: Clock) -> None:
    from ..test_users import devices_app

    inner = MemoryBackend(clock=clock)
    sessions = manager_factory(EncryptedBackend(inner, keys=[KEY]), clock)(user_index=True)
    transport = httpx.ASGITransport(app=devices_app(sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/login")).status_code == 200
        (listed,) = (await client.get("/devices")).json()
    assert listed["user"] == "alice"
    assert listed["current"]
    counted = await sessions.backend.stats()  # counted by the store: owners are not sealed
    assert counted is not None
    assert (counted.live, counted.top_users) == (1, [("alice", 1)])
    ((_, entry),) = inner._records.items()
    assert entry["\x00user"] == b'"alice"'  # readable: the index needs it
    assert entry["\x00created"].startswith(PREFIX)


async def test_a_user_s_sessions_are_paged_and_revoked_through_it(
    backend: Backend, clock: Clock
) -> None:
    from ..test_users import devices_app

    events: list[SessionEvent] = []

    async def record(event: SessionEvent) -> None:
        events.append(event)

    sessions = manager_factory(EncryptedBackend(backend, keys=[KEY]), clock)(
        user_index=True, record_client=True, on_event=record, max_user_sessions=3
    )
    transport = httpx.ASGITransport(app=devices_app(sessions))
    for _ in range(4):  # the fourth log-in ends the first session
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post("/login")
        clock.advance(1)
    page = await sessions.users.list("alice", limit=2)
    assert [info.ip for info in page] == ["127.0.0.1"] * 2  # opened: it is sealed in store
    assert await sessions.users.revoke("alice", page[1].handle)
    assert await sessions.users.revoke_all("alice") == 2
    revoked = [event for event in events if event.kind == "revoked"]
    assert len(revoked) == 4  # one past the limit, one revoked, two in the revocation of all
    assert all(event.ip == "127.0.0.1" and event.created_at for event in revoked)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "at least one key"),
        (["short"], "must be 32 bytes"),
        ([b"x" * 31], "must be 32 bytes"),
        ("", "at least one key"),
    ],
)
def test_bad_keys_are_refused(keys: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        EncryptedBackend(MemoryBackend(), keys=keys)


def test_the_keys_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_ENV, f"{KEY}, {OLD_KEY}")
    backend = EncryptedBackend(MemoryBackend())
    assert len(backend._ring) == 2
    assert "keys=2" in repr(backend)
    with pytest.raises(ConfigurationError, match="must be a Backend"):
        EncryptedBackend("not a store", keys=[KEY])  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stored=st.one_of(
        st.binary(max_size=80),
        st.binary(max_size=60).map(lambda tail: PREFIX + tail),
        st.text(max_size=60).map(lambda tail: PREFIX + b"0000abcd." + tail.encode()),
    )
)
async def test_any_stored_value_opens_or_is_no_session(stored: bytes) -> None:
    inner = MemoryBackend()
    backend = EncryptedBackend(inner, keys=[KEY])
    await inner.set("k", {"cart": stored}, ttl=60)
    assert await backend.get("k") is None


async def test_locks_cleanup_and_closing_go_to_the_store_it_wraps(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:

    inner = MemoryBackend(clock=clock)
    backend = EncryptedBackend(inner, keys=[KEY])
    sessions = manager_factory(backend, clock)(concurrency="lock")
    transport = httpx.ASGITransport(app=build_app(sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        for _ in range(3):
            await client.post("/incr")  # each takes and releases the session's lock
        assert (await client.get("/me")).json()["counter"] == 3
    assert inner._holders == {}
    clock.advance(10_000)
    reported: list[tuple[int, int]] = []
    assert await backend.delete_expired(progress=lambda *done: reported.append(done)) == 1
    assert reported == [(1, 1)]
    await backend.index_add("alice", "k", ttl=60)
    await backend.index_remove("alice", ["k"])
    assert await backend.index_list("alice") == []
    await backend.aclose()

    # A store that cannot compare and set keeps what it holds: read, never resealed.
    old = EncryptedBackend(inner, keys=[OLD_KEY])
    await old.set("a", {"cart": b"[]"}, ttl=60)
    unable = NoLocksBackend()
    unable.get = inner.get  # type: ignore[method-assign]
    assert await EncryptedBackend(unable, keys=[KEY, OLD_KEY]).get("a") == {"cart": b"[]"}
    assert await old.get("a") == {"cart": b"[]"}  # still sealed with the old key


async def test_a_listing_leaves_out_what_does_not_decrypt(clock: Clock) -> None:
    inner = MemoryBackend(clock=clock)
    await EncryptedBackend(inner, keys=[OLD_KEY]).set("k", {"\x00created": b"1"}, ttl=60)
    await inner.index_add("alice", "k", ttl=60)
    assert [key for key, _, _ in await inner.index_list("alice")] == ["k"]
    backend = EncryptedBackend(inner, keys=[KEY])
    assert isinstance(backend, SessionIndex)
    assert await backend.index_list("alice") == []


def test_a_subclass_is_what_it_defines() -> None:
    class Audited(EncryptedBackend):
        pass

    backend = Audited(MemoryBackend(), keys=[KEY])
    assert type(backend) is Audited
    assert not isinstance(backend, SessionLocks)
