"""A time bound on each store call, with one event-loop timer for all of them.

`asyncio.timeout` schedules a timer per call and cancels it when the call ends; a
cancelled timer stays in the event loop's heap until its time comes (by default a second
later), so under load the heap holds every call of the last second, and each call pays
for pushing into it and for the loop sifting through it. A store's calls all have the
same bound, so their deadlines come in the order the calls start: one insertion-ordered
table of the calls in flight, and one timer set for the earliest deadline, bound them all
at a fraction of the cost. A call leaves the table when it ends; the timer, when it fires,
cancels the calls whose time is up and sets itself for the next.

A call whose time is up is cancelled as `asyncio.timeout` cancels it, and raises
`TimeoutError`; a cancellation from elsewhere (the client went away, an outer timeout)
passes through untouched, as it does there.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

R = TypeVar("R")

__all__ = ["Deadlines"]


class _Task(Protocol):
    """What is used of an `asyncio.Task` (``cancelling`` and ``uncancel``: Python 3.11+)."""

    def get_loop(self) -> asyncio.AbstractEventLoop: ...
    def done(self) -> bool: ...
    def cancel(self, msg: Any = None) -> bool: ...
    def cancelling(self) -> int: ...
    def uncancel(self) -> int: ...


class _Call:
    """One call in flight: its task, its deadline, and whether its time ran out."""

    __slots__ = ("cancelling", "deadline", "expired", "task")

    def __init__(self, task: _Task, deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling()
        self.expired = False


class Deadlines:
    """Runs calls each bounded by ``seconds`` (Python 3.11+: it needs ``Task.uncancel``).

    Args:
        seconds: how long any one call may take.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._calls: dict[int, _Call] = {}
        self._numbers = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, command: Callable[[], Awaitable[R]]) -> R:
        """Await ``command()``; raise `TimeoutError` if it takes more than ``seconds``.

        Raises:
            TimeoutError: the call's time ran out (the call was cancelled).
        """
        current = asyncio.current_task()
        if current is None:  # pragma: no cover - every await of a store runs in a task
            raise RuntimeError("a store call must run in a task")
        task = cast("_Task", current)
        loop = task.get_loop()
        if loop is not self._loop:  # first use, or a new event loop: nothing carries over
            self._loop, self._timer = loop, None
            self._calls.clear()
        call = _Call(task, loop.time() + self.seconds)
        number = next(self._numbers)
        self._calls[number] = call
        if self._timer is None:
            self._timer = loop.call_at(call.deadline, self._expire)
        try:
            result = await command()
        except BaseException as exc:
            self._calls.pop(number, None)
            # Our cancellation, and no one else's since the call began: a timeout.
            if (
                call.expired
                and task.uncancel() <= call.cancelling
                and isinstance(exc, asyncio.CancelledError)
            ):
                raise TimeoutError from exc
            raise
        self._calls.pop(number, None)
        if call.expired:  # cancelled as it finished: the request is withdrawn
            # Run by test_a_call_that_finishes_despite_the_cancel_keeps_its_value (which
            # fails without it); the coverage tracer loses this frame once a cancelled
            # wait inside it has resumed.
            task.uncancel()  # pragma: no cover
        return result

    def _expire(self) -> None:
        """Cancel the calls whose time is up; set the timer for the next deadline."""
        self._timer = None
        loop = self._loop
        calls = self._calls
        if loop is None:  # pragma: no cover - the timer is only set once a loop is known
            return
        now = loop.time()
        while calls:
            number, call = next(iter(calls.items()))
            if call.deadline > now:
                self._timer = loop.call_at(call.deadline, self._expire)
                return
            del calls[number]
            call.expired = True
            call.task.cancel()
