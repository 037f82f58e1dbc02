"""The time bound on each store call (`Deadlines`): one timer for all calls in flight."""

import asyncio
import sys

import pytest

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.11+ tasks"),
]

from fastapi_session_deps._deadline import Deadlines  # noqa: E402

#: Short enough to keep the tests quick; nothing here asserts how long anything took.
BOUND = 0.05


async def forever() -> None:
    await asyncio.Event().wait()


async def test_calls_in_time_return_and_leave_nothing_behind() -> None:
    deadlines = Deadlines(BOUND)

    async def value(n: int) -> int:
        await asyncio.sleep(0)
        return n

    assert [await deadlines.run(lambda n=n: value(n)) for n in range(500)] == list(range(500))
    assert not deadlines._calls  # every call left the table as it ended
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_call_over_its_time_is_cancelled_and_raises_timeout() -> None:
    deadlines = Deadlines(BOUND)
    cleaned_up = asyncio.Event()

    async def stuck() -> None:
        try:
            await forever()
        finally:
            cleaned_up.set()

    with pytest.raises(TimeoutError):
        await deadlines.run(stuck)
    assert cleaned_up.is_set()
    # The task goes on normally: no cancellation is left pending.
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)
    assert await deadlines.run(lambda: asyncio.sleep(0, "after")) == "after"


async def test_each_call_in_flight_has_its_own_deadline() -> None:
    # The second call starts half a bound after the first, so it is still in its time
    # when the first runs out, and finishes then; a third, started with the first, runs
    # out with it.
    bound = 0.3
    deadlines = Deadlines(bound)
    first_done = asyncio.Event()

    async def first() -> None:
        try:
            await deadlines.run(forever)
        finally:
            first_done.set()

    async def after_the_first() -> str:
        await first_done.wait()
        return "second"

    async def second() -> str:
        await asyncio.sleep(bound / 2)
        return await deadlines.run(after_the_first)

    results = await asyncio.gather(
        first(), second(), deadlines.run(forever), return_exceptions=True
    )
    assert isinstance(results[0], TimeoutError)
    assert results[1] == "second"
    assert isinstance(results[2], TimeoutError)
    assert not deadlines._calls


async def test_a_cancellation_from_elsewhere_passes_through() -> None:
    deadlines = Deadlines(10.0)
    task = asyncio.create_task(deadlines.run(forever))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # An outer timeout, shorter than the call's own bound, is the outer one's.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(BOUND):
            await deadlines.run(forever)
    assert not deadlines._calls


async def test_both_at_once_is_a_cancellation_not_a_timeout() -> None:
    # The bound runs out and someone else cancels the task too: the cancellation wins,
    # as with asyncio.timeout.
    deadlines = Deadlines(BOUND)
    started = asyncio.Event()

    async def swallow_then_wait() -> None:
        started.set()
        try:
            await forever()
        except asyncio.CancelledError:
            await asyncio.sleep(BOUND)  # outlives the bound, then the second cancel lands
            raise

    task = asyncio.create_task(deadlines.run(swallow_then_wait))
    await started.wait()
    await asyncio.sleep(BOUND * 1.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_call_that_finishes_despite_the_cancel_keeps_its_value() -> None:
    deadlines = Deadlines(BOUND)

    async def stubborn() -> str:
        try:
            await forever()
        except asyncio.CancelledError:
            return "finished"  # it ignored the cancellation
        raise AssertionError

    assert await deadlines.run(stubborn) == "finished"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


def test_one_bound_serves_event_loop_after_event_loop() -> None:
    deadlines = Deadlines(BOUND)

    async def once() -> None:
        with pytest.raises(TimeoutError):
            await deadlines.run(forever)
        assert await deadlines.run(lambda: asyncio.sleep(0, 1)) == 1

    asyncio.run(once())
    asyncio.run(once())
