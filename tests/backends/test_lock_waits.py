"""How a polling store's lock waiters are woken: the longest waiter first, one per release."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from fastapi_session_deps.backends import base
from fastapi_session_deps.backends.base import LockWaits

pytestmark = pytest.mark.anyio


class Lock:
    """A lock that only says whether it is free: what a store's attempt asks."""

    def __init__(self) -> None:
        self.holder: str | None = "first"
        self.tries: list[str] = []

    def attempt(self, name: str) -> Callable[[], Awaitable[bool]]:
        async def attempt() -> bool:
            self.tries.append(name)
            if self.holder is None:
                self.holder = name
                return True
            return False

        return attempt


async def settle() -> None:
    for _ in range(10):
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def woken_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between tries, a waiter waits a minute: within a test, only a wake makes it try."""
    monkeypatch.setattr(base, "LOCK_POLL_FIRST", 60.0)


def waiter(waits: LockWaits, lock: Lock, taken: list[str]) -> Callable[[str], Awaitable[None]]:
    async def wait(name: str) -> None:
        assert await waits.acquire("k", lock.attempt(name), wait=30)
        taken.append(name)

    return wait


async def test_each_release_wakes_the_longest_waiter_and_only_it(woken_only: None) -> None:
    waits, lock = LockWaits(), Lock()
    taken: list[str] = []
    wait = waiter(waits, lock, taken)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for name in ("a", "b", "c"):
                group.start_soon(wait, name)
                await settle()
            assert lock.tries == ["a", "b", "c"]  # one try each, then asleep
            for holder in ("first", "a", "b"):
                assert lock.holder == holder
                lock.holder = None
                waits.released("k")
                await settle()
    assert taken == ["a", "b", "c"]
    assert lock.tries == ["a", "b", "c", "a", "b", "c"]  # no try but the woken one's
    assert waits._asleep == {}  # nothing kept for a lock no one waits for


async def test_a_woken_waiter_that_loses_the_lock_stays_first_in_line(woken_only: None) -> None:
    waits, lock = LockWaits(), Lock()
    taken: list[str] = []
    wait = waiter(waits, lock, taken)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for name in ("a", "b"):
                group.start_soon(wait, name)
                await settle()
            lock.holder = "another process"  # released there, taken there again
            waits.released("k")
            await settle()
            assert lock.tries == ["a", "b", "a"]
            lock.holder = None
            waits.released("k")  # "a" again, not "b"
            await settle()
            assert taken == ["a"]
            lock.holder = None
            waits.released("k")
    assert taken == ["a", "b"]


async def test_a_waiter_that_gives_up_leaves_the_line() -> None:
    waits, lock = LockWaits(), Lock()
    assert not await waits.acquire("k", lock.attempt("a"), wait=0.01)
    assert waits._asleep == {}
    waits.released("k")  # no one waits: nothing happens
    assert lock.holder == "first"
