"""What is particular to `MemoryBackend`: bounded sweeping, the size bound, threads."""

from __future__ import annotations

import threading

import anyio
import pytest

from fastapi_session_deps import ConfigurationError, MemoryBackend
from fastapi_session_deps.backends.memory import SWEEP_BATCH

from ..helpers import Clock

pytestmark = pytest.mark.anyio


async def test_a_write_sweeps_expired_records_in_bounded_batches(clock: Clock) -> None:
    store = MemoryBackend(clock=clock)
    for index in range(3 * SWEEP_BATCH):
        await store.set(f"old{index}", {"a": b"1"}, ttl=10)
    clock.advance(11)
    await store.set("new", {"a": b"1"}, ttl=10)
    # One write removes at most one batch of expired records, never the live one.
    assert len(store) == 3 * SWEEP_BATCH - SWEEP_BATCH + 1
    await store.set("new2", {"a": b"1"}, ttl=10)
    await store.set("new3", {"a": b"1"}, ttl=10)
    assert len(store) == 3
    assert await store.get("new") == {"a": b"1"}


async def test_sweep_stops_at_the_first_live_record(clock: Clock) -> None:
    store = MemoryBackend(clock=clock)
    await store.set("live", {"a": b"1"}, ttl=100)
    await store.set("short", {"a": b"1"}, ttl=1)
    clock.advance(2)
    await store.set("other", {"a": b"1"}, ttl=100)
    # "short" is behind a live record, so the bounded sweep leaves it; a read still hides it.
    assert len(store) == 3
    assert await store.get("short") is None
    assert len(store) == 2


async def test_max_sessions_evicts_the_least_recently_used(clock: Clock) -> None:
    store = MemoryBackend(max_sessions=3, clock=clock)
    for key in ("a", "b", "c"):
        await store.set(key, {"v": key.encode()}, ttl=60)
    await store.get("a", ttl=60)  # "a" is now the most recently used
    await store.set("d", {"v": b"d"}, ttl=60)
    assert len(store) == 3
    assert await store.get("b") is None
    assert await store.get("a") == {"v": b"a"}
    assert await store.get("d") == {"v": b"d"}


@pytest.mark.parametrize("bad", [0, -1])
def test_max_sessions_must_be_positive(bad: int) -> None:
    with pytest.raises(ConfigurationError, match="max_sessions"):
        MemoryBackend(max_sessions=bad)


def test_repr_shows_the_bound() -> None:
    assert repr(MemoryBackend(max_sessions=5)) == "MemoryBackend(max_sessions=5)"


def test_updates_from_many_threads_all_persist() -> None:
    store = MemoryBackend()
    anyio.run(lambda: store.set("k", {}, ttl=60))

    def worker(index: int) -> None:
        async def run() -> None:
            for step in range(50):
                await store.update("k", {f"t{index}-{step}": b"1"}, ttl=60)

        anyio.run(run)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = anyio.run(lambda: store.get("k"))
    assert record is not None
    assert len(record) == 200


async def test_the_user_index_never_outgrows_the_store(clock: Clock) -> None:
    # 10,000 log-ins of one account into a store of 20: each evicts the oldest record, and
    # its index entry goes with it, so no log-in walks more than 20 entries.
    store = MemoryBackend(max_sessions=20, clock=clock)
    for n in range(10_000):
        await store.index_add("alice", f"k{n}", ttl=60)  # as a log-in does: index first
        await store.set(f"k{n}", {"\x00user": b'"alice"'}, ttl=60)
    assert len(store) == 20
    assert sorted(store._users["alice"]) == sorted(f"k{n}" for n in range(9_980, 10_000))
    assert len(store._owner_of) == 20
    assert len(await store.index_list("alice")) == 20
    # An entry also goes with a record that is deleted, or expires and is swept.
    assert await store.delete("k9999")
    await store.set("other", {}, ttl=100)
    clock.advance(61)
    await store.set("another", {}, ttl=100)  # each write sweeps some expired ones
    await store.set("and another", {}, ttl=100)
    assert "alice" not in store._users
    assert store._owner_of == {}


async def test_an_entry_whose_record_is_live_survives_its_time_and_is_never_another_user_s(
    clock: Clock,
) -> None:
    store = MemoryBackend(clock=clock)
    await store.index_add("ada", "k", ttl=10)
    await store.set("k", {"\x00user": b'"ada"'}, ttl=100)  # renewed longer than the entry
    clock.advance(20)
    assert [key for key, _, _ in await store.index_list("ada")] == ["k"]  # pruned: kept
    await store.index_add("bob", "k", ttl=10)  # the same key in another user's index
    await store.index_remove("ada", ["k"])
    assert store._owner_of == {"k": "bob"}  # ada's removal leaves bob's entry be
