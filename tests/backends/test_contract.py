"""The contract every backend passes: one suite, parametrised over the stores."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest
from pydantic_core import to_json

from fastapi_session_deps import (
    Backend,
    FunctionBackend,
    SessionIndex,
    SessionLocks,
    SQLBackend,
)
from fastapi_session_deps._record import ADDRESS_FIELD, CREATED_FIELD, OWNER_FIELD
from fastapi_session_deps.backends import base
from fastapi_session_deps.backends.base import StoreStats

from ..helpers import Clock
from ..support import STORES, PassTime, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[*STORES, "http-memory", "http-redis", "function"])
async def backend(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Backend]:
    """The contract suite also runs against HTTPBackend and the real session service, and
    FunctionBackend over a REST store."""
    async with open_store(request.param, request, clock) as store:
        yield store


async def test_missing_key_reads_none(backend: Backend) -> None:
    assert await backend.get("absent") is None
    assert await backend.get("absent", ttl=10) is None


async def test_set_then_get_returns_equal_fields(backend: Backend) -> None:
    # Values are UTF-8 text (JSON, or base64 when encrypted); names may be any text.
    fields = {
        "a": b"1",
        "b": b'["x", "y"]',
        "\x00created": b"12.5",
        "empty": b"",
        "\xe9": b"\xc3\xa9",
    }
    await backend.set("k", fields, ttl=60)
    assert await backend.get("k") == fields


async def test_records_are_copies_not_shared_objects(backend: Backend) -> None:
    source = {"a": b"1"}
    await backend.set("k", source, ttl=60)
    source["a"] = b"changed after set"
    first = await backend.get("k")
    assert first == {"a": b"1"}
    first["a"] = b"changed by a reader"
    assert await backend.get("k") == {"a": b"1"}


async def test_set_replaces_the_whole_record(backend: Backend) -> None:
    await backend.set("k", {"a": b"1", "b": b"2"}, ttl=60)
    await backend.set("k", {"c": b"3"}, ttl=60)
    assert await backend.get("k") == {"c": b"3"}


async def test_record_expires_after_its_ttl(backend: Backend, pass_time: PassTime) -> None:
    await backend.set("k", {"a": b"1"}, ttl=10)
    await pass_time(9)
    assert await backend.get("k") == {"a": b"1"}
    await pass_time(2)
    assert await backend.get("k") is None


async def test_get_with_ttl_slides_the_expiry(backend: Backend, pass_time: PassTime) -> None:
    await backend.set("k", {"a": b"1"}, ttl=10)
    await pass_time(8)
    assert await backend.get("k", ttl=10) == {"a": b"1"}
    await pass_time(8)  # 16 s after the write, 8 s after the sliding read
    assert await backend.get("k") == {"a": b"1"}
    await pass_time(3)
    assert await backend.get("k") is None


async def test_get_without_ttl_leaves_the_expiry(backend: Backend, pass_time: PassTime) -> None:
    await backend.set("k", {"a": b"1"}, ttl=10)
    await pass_time(8)
    assert await backend.get("k") == {"a": b"1"}
    await pass_time(3)
    assert await backend.get("k") is None


async def test_update_merges_changed_and_removed_fields(backend: Backend) -> None:
    await backend.set("k", {"a": b"1", "b": b"2", "c": b"3"}, ttl=60)
    assert await backend.update("k", {"a": b"10", "d": b"4"}, ["c", "not-there"], ttl=60)
    assert await backend.get("k") == {"a": b"10", "b": b"2", "d": b"4"}


async def test_update_of_a_missing_record_writes_nothing(backend: Backend) -> None:
    assert await backend.update("gone", {"a": b"1"}, ttl=60) is False
    assert await backend.get("gone") is None


async def test_update_does_not_resurrect_an_expired_record(
    backend: Backend, pass_time: PassTime
) -> None:
    await backend.set("k", {"a": b"1"}, ttl=5)
    await pass_time(6)
    assert await backend.update("k", {"a": b"2"}, ttl=60) is False
    assert await backend.get("k") is None


async def test_update_resets_the_expiry(backend: Backend, pass_time: PassTime) -> None:
    await backend.set("k", {"a": b"1"}, ttl=10)
    await pass_time(8)
    assert await backend.update("k", {"a": b"2"}, ttl=10)
    await pass_time(8)
    assert await backend.get("k") == {"a": b"2"}


async def test_update_never_brings_the_expiry_sooner_unless_told_to(
    backend: Backend, pass_time: PassTime
) -> None:
    # A request that loaded the session before another gave it a longer life must not cut
    # it short; the request that changes the lifetime sets it exactly.
    await backend.set("long", {"a": b"1"}, ttl=100)
    await backend.set("short", {"a": b"1"}, ttl=100)
    assert await backend.update("long", {"b": b"2"}, ttl=10)
    assert await backend.update("short", {"b": b"2"}, ttl=10, exact=True)
    await pass_time(11)
    assert await backend.get("long") == {"a": b"1", "b": b"2"}
    assert await backend.get("short") is None
    assert await backend.update("long", {}, ttl=200)  # and later, when asked
    await pass_time(100)
    assert await backend.get("long") == {"a": b"1", "b": b"2"}


async def test_delete_removes_and_tolerates_missing(backend: Backend) -> None:
    await backend.set("k", {"a": b"1"}, ttl=60)
    await backend.delete("k")
    await backend.delete("k")
    assert await backend.get("k") is None


async def test_delete_says_whether_a_live_record_was_there(
    backend: Backend, pass_time: PassTime
) -> None:
    # What lets a move to a new id stand only if no one ended the session meanwhile.
    await backend.set("k", {"a": b"1"}, ttl=60)
    await backend.set("old", {"a": b"1"}, ttl=5)
    await pass_time(6)
    if isinstance(backend, FunctionBackend):  # its delete function cannot tell
        assert await backend.delete("k") is None
        return
    assert await backend.delete("k") is True
    assert await backend.delete("k") is False
    assert await backend.delete("never") is False
    assert await backend.delete("old") is False  # expired: not live, and gone all the same
    assert await backend.get("old") is None


async def test_replace_unchanged_writes_only_where_the_old_value_still_is(
    backend: Backend, pass_time: PassTime
) -> None:
    # What lets EncryptedBackend seal a value again without undoing a newer write.
    await backend.set("k", {"a": b"1", "b": b"2", "\x00user": b'"u"'}, ttl=10)
    swaps = {"a": (b"1", b"10"), "b": (b"changed meanwhile", b"20"), "c": (b"", b"3")}
    await backend.replace_unchanged("k", {**swaps, "\x00user": (b'"u"', b'"v"')})
    await backend.replace_unchanged("absent", {"a": (b"1", b"2")})
    assert await backend.get("absent") is None  # nothing brought into being
    if isinstance(backend, FunctionBackend):  # no compare-and-set: it keeps what it holds
        assert await backend.get("k") == {"a": b"1", "b": b"2", "\x00user": b'"u"'}
        return
    assert await backend.get("k") == {"a": b"10", "b": b"2", "\x00user": b'"v"'}
    await pass_time(11)  # the expiry was left as it was
    assert await backend.get("k") is None


async def test_keys_are_independent(backend: Backend) -> None:
    await backend.set("k1", {"a": b"1"}, ttl=60)
    await backend.set("k2", {"a": b"2"}, ttl=60)
    await backend.delete("k1")
    assert await backend.get("k2") == {"a": b"2"}


async def test_concurrent_updates_of_different_fields_all_persist(backend: Backend) -> None:
    if isinstance(backend, FunctionBackend):
        pytest.skip("FunctionBackend's update reads, merges and saves: not atomic, as documented")
    await backend.set("k", {"base": b"0"}, ttl=60)

    async def write(index: int) -> None:
        assert await backend.update("k", {f"f{index}": str(index).encode()}, ttl=60)

    async with anyio.create_task_group() as group:
        for index in range(50):
            group.start_soon(write, index)
    record = await backend.get("k")
    assert record is not None
    assert record == {"base": b"0", **{f"f{i}": str(i).encode() for i in range(50)}}


async def test_aclose_can_be_called_twice(backend: Backend) -> None:
    await backend.aclose()
    await backend.aclose()


# -- session locks (concurrency="lock") ---------------------------------------------------


def locks_of(backend: Backend) -> SessionLocks:
    if isinstance(backend, FunctionBackend):
        pytest.skip("FunctionBackend has no session locks (concurrency='lock' is refused)")
    assert isinstance(backend, SessionLocks)
    return backend


async def test_a_lock_is_exclusive_until_its_owner_releases_it(backend: Backend) -> None:
    locks = locks_of(backend)
    assert await locks.acquire_lock("k", "one", ttl=30, wait=1)
    assert not await locks.acquire_lock("k", "two", ttl=30, wait=0.05)
    await locks.release_lock("k", "intruder")  # not the owner: the lock stays
    assert not await locks.acquire_lock("k", "two", ttl=30, wait=0.05)
    await locks.release_lock("k", "one")
    assert await locks.acquire_lock("k", "two", ttl=30, wait=0.05)
    assert await locks.acquire_lock("other", "three", ttl=30, wait=0.05)  # per session
    await locks.release_lock("k", "two")
    await locks.release_lock("other", "three")


async def test_a_free_lock_is_taken_even_with_no_time_to_wait(backend: Backend) -> None:
    locks = locks_of(backend)
    assert await locks.acquire_lock("k", "eager", ttl=30, wait=0)
    assert not await locks.acquire_lock("k", "other", ttl=30, wait=0)
    await locks.release_lock("k", "eager")


async def test_a_token_released_before_it_held_the_lock_never_takes_it(backend: Backend) -> None:
    # What happens when an acquisition times out against a paused store: its caller
    # releases the token at once, but the store may run the acquisition later.
    locks = locks_of(backend)
    await locks.release_lock("k", "given-up")
    assert not await locks.acquire_lock("k", "given-up", ttl=30, wait=0)
    assert await locks.acquire_lock("k", "next", ttl=30, wait=0)  # the lock is free for others
    await locks.release_lock("k", "next")


async def test_a_waiter_gets_the_lock_as_soon_as_it_is_released(backend: Backend) -> None:
    locks = locks_of(backend)
    assert await locks.acquire_lock("k", "holder", ttl=30, wait=1)
    got: list[bool] = []

    async def wait_for_it() -> None:
        got.append(await locks.acquire_lock("k", "waiter", ttl=30, wait=10))

    async with anyio.create_task_group() as group:
        group.start_soon(wait_for_it)
        await anyio.lowlevel.checkpoint()  # let the waiter start waiting
        with anyio.fail_after(5):
            await locks.release_lock("k", "holder")
    assert got == [True]
    await locks.release_lock("k", "waiter")


async def test_a_release_in_the_same_process_wakes_a_waiter_at_once(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    if isinstance(backend, SQLBackend):
        pytest.skip("SQL stores leave their waiters to their next try (bench/locks.py)")
    # Between its tries, a waiter would wait a minute here.
    monkeypatch.setattr(base, "LOCK_POLL_FIRST", 60.0)
    locks = locks_of(backend)
    assert await locks.acquire_lock("k", "holder", ttl=30, wait=1)
    got: list[bool] = []

    async def wait_for_it() -> None:
        got.append(await locks.acquire_lock("k", "waiter", ttl=30, wait=30))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(wait_for_it)
            # Time for its first try, a round trip to the store (if it is slower, the
            # waiter finds the lock free instead: the test then passes without a wake).
            await anyio.sleep(0.2)
            await locks.release_lock("k", "holder")
    assert got == [True]
    await locks.release_lock("k", "waiter")


async def test_a_lock_whose_holder_died_frees_itself(
    backend: Backend, pass_time: PassTime
) -> None:
    locks = locks_of(backend)
    assert await locks.acquire_lock("k", "crashed", ttl=10, wait=1)
    await pass_time(11)  # the holder never releases: its time runs out
    assert await locks.acquire_lock("k", "next", ttl=10, wait=0.05)
    await locks.release_lock("k", "crashed")  # a late release by the dead holder is harmless
    assert not await locks.acquire_lock("k", "third", ttl=10, wait=0.05)
    await locks.release_lock("k", "next")


async def test_stats_counts_live_records_and_each_user_s(
    backend: Backend, pass_time: PassTime
) -> None:
    """Sessions and users, counted by the store: expired and deleted ones left out."""
    if isinstance(backend, FunctionBackend):
        assert await backend.stats() is None  # a store of functions cannot count
        return
    assert isinstance(backend, SessionIndex)
    owners = {"a1": "ada", "a2": "ada", "a3": "ada", "b1": "bob", "c1": "cy", "n1": None}
    for key, owner in owners.items():
        fields = {"x": b"1"}
        if owner is not None:
            await backend.index_add(owner, key, ttl=60)
            fields[OWNER_FIELD] = to_json(owner)
        await backend.set(key, fields, ttl=5 if key == "c1" else 60)
    await backend.delete("a3")  # deleted; its index entry not yet removed
    counted = await backend.stats(top=2)
    assert counted == StoreStats(live=5, users=3, top_users=[("ada", 2), ("bob", 1)])
    await pass_time(10)  # cy's only session expires
    counted = await backend.stats()
    assert counted == StoreStats(live=4, users=2, top_users=[("ada", 2), ("bob", 1)])


async def test_a_user_s_index_pages_and_ends_in_bounded_calls(
    backend: Backend, pass_time: PassTime
) -> None:
    """What lets a user with any number of sessions be listed a page at a time and
    signed out everywhere in batches: keys without their records, pages of records, and
    ending a batch of the user's own sessions (never another user's)."""
    if isinstance(backend, FunctionBackend):
        return  # no index of users' sessions
    assert isinstance(backend, SessionIndex)
    facts = {CREATED_FIELD: b"1.5", ADDRESS_FIELD: b'"10.0.0.1"'}
    for n, ttl in enumerate([50, 40, 30, 20, 10]):  # a0 expires last, a4 first
        await backend.index_add("ada", f"a{n}", ttl=ttl)
        await backend.set(f"a{n}", {"x": b"1", OWNER_FIELD: b'"ada"', **facts}, ttl=ttl)
    await backend.index_add("bob", "b0", ttl=60)
    await backend.set("b0", {"x": b"2", OWNER_FIELD: b'"bob"'}, ttl=60)

    assert await backend.index_keys("ada") == ["a0", "a1", "a2", "a3", "a4"]
    assert await backend.index_keys("ada", offset=1, limit=2) == ["a1", "a2"]
    page = await backend.index_page("ada", offset=0, limit=2)
    assert [key for key, _, _ in page] == ["a0", "a1"]
    assert page[0][1][ADDRESS_FIELD] == b'"10.0.0.1"'
    assert 0 < page[1][2] <= 40

    ended = await backend.index_end("ada", ["a0", "a1", "b0", "never"])
    assert sorted(ended) == [
        ("a0", {OWNER_FIELD: b'"ada"', **facts}),
        ("a1", {OWNER_FIELD: b'"ada"', **facts}),
    ]
    assert await backend.get("a0") is None
    assert await backend.get("b0") == {"x": b"2", OWNER_FIELD: b'"bob"'}  # bob's: left
    assert await backend.index_keys("ada") == ["a2", "a3", "a4"]
    assert await backend.index_keys("bob") == ["b0"]
    await pass_time(25)  # a3 and a4 expire; their keys may linger, their records do not
    assert [key for key, _, _ in await backend.index_page("ada")] == ["a2"]
    assert await backend.index_end("ada", []) == []

    # Ending them all, a batch at a time, but one kept: until no more are left.
    for n in range(7):
        await backend.index_add("ada", f"c{n}", ttl=60)
        await backend.set(f"c{n}", {OWNER_FIELD: b'"ada"'}, ttl=60)
    ended: list[str] = []
    after: str | None = None
    for _ in range(10):
        batch, after = await backend.index_end_some("ada", keep=["c3"], after=after, limit=2)
        assert len(batch) <= 2
        ended += [key for key, _ in batch]
        if after is None:
            break
    assert sorted(ended) == ["a2", "c0", "c1", "c2", "c4", "c5", "c6"]
    assert [key for key, _, _ in await backend.index_page("ada")] == ["c3"]
    assert await backend.get("b0") is not None  # bob's: untouched
