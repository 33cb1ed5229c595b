"""The shared token bucket: rate, burst, FIFO fairness and cancellation safety, on a fake clock."""

from __future__ import annotations

import math

import anyio
import pytest

from rebalancer.runtime.pacing import (
    DEFAULT_MESSAGES_PER_SECOND,
    TokenBucket,
    default_burst,
)


class FakeClock:
    """A clock that moves only when told to (or, with ``autojump``, when someone sleeps)."""

    def __init__(self, *, autojump: bool = False) -> None:
        self.now = 0.0
        self.autojump = autojump
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def time(self) -> float:
        """The fake time in seconds."""
        return self.now

    async def sleep(self, delay: float) -> None:
        """Wait until the fake time has advanced by ``delay``."""
        if self.autojump:
            self.now += delay
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        self._sleepers.append((self.now + delay, event))
        await event.wait()

    def advance(self, seconds: float) -> None:
        """Move the fake time forward and wake the sleepers that are due."""
        self.now += seconds
        due = [(d, e) for d, e in self._sleepers if d <= self.now + 1e-12]
        self._sleepers = [(d, e) for d, e in self._sleepers if d > self.now + 1e-12]
        for _, event in due:
            event.set()


def _bucket(clock: FakeClock, rate: float = 40, burst: int = 10) -> TokenBucket:
    return TokenBucket(rate, burst, clock=clock.time, sleep=clock.sleep)


def test_default_burst_is_a_quarter_second_at_least_one() -> None:
    """The default burst is rate/4 rounded down, never below one."""
    assert default_burst(DEFAULT_MESSAGES_PER_SECOND) == 10
    assert default_burst(3) == 1
    assert default_burst(0.5) == 1


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (math.nan, 1), (5, 0)])
def test_bad_parameters_are_refused(rate: float, burst: int) -> None:
    """A non-positive or non-finite rate, or a burst below one, raises ValueError."""
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate, burst)


async def test_burst_is_immediate_then_rate_limited() -> None:
    """The first ``burst`` tokens cost no time; the rest arrive at the rate."""
    clock = FakeClock(autojump=True)
    bucket = _bucket(clock, rate=40, burst=10)
    for _ in range(10):
        await bucket.acquire()
    assert clock.now == 0.0
    for _ in range(90):
        await bucket.acquire()
    assert clock.now == pytest.approx(90 / 40)
    stats = bucket.statistics()
    assert (stats.acquired, stats.delayed, stats.waiting) == (100, 90, 0)
    assert stats.total_wait_seconds == pytest.approx(90 / 40)


async def test_tokens_refill_up_to_burst_only() -> None:
    """An idle bucket saves up at most ``burst`` tokens."""
    clock = FakeClock()
    bucket = _bucket(clock, rate=40, burst=4)
    for _ in range(4):
        bucket.acquire_nowait()
    with pytest.raises(anyio.WouldBlock):
        bucket.acquire_nowait()
    clock.advance(100.0)
    assert bucket.statistics().tokens == 4.0
    for _ in range(4):
        bucket.acquire_nowait()
    with pytest.raises(anyio.WouldBlock):
        bucket.acquire_nowait()


async def test_concurrent_acquirers_respect_the_rate_and_are_served_in_order() -> None:
    """Queued tasks get one token per interval, in the order they started waiting."""
    clock = FakeClock()
    bucket = _bucket(clock, rate=10, burst=1)
    bucket.acquire_nowait()
    served: list[int] = []

    async def worker(n: int) -> None:
        await bucket.acquire()
        served.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(6):
            tg.start_soon(worker, n)
            await anyio.wait_all_tasks_blocked()
        assert bucket.statistics().waiting == 6
        for step in range(1, 7):
            clock.advance(0.1)
            await anyio.wait_all_tasks_blocked()
            assert served == list(range(step))
    assert bucket.statistics().acquired == 7


async def test_newcomer_does_not_jump_the_queue() -> None:
    """acquire_nowait fails while others wait, even if a token has refilled."""
    clock = FakeClock()
    bucket = _bucket(clock, rate=10, burst=1)
    bucket.acquire_nowait()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bucket.acquire)
        await anyio.wait_all_tasks_blocked()
        clock.now += 0.1  # a token is due, but the head has not run yet
        with pytest.raises(anyio.WouldBlock):
            bucket.acquire_nowait()
        clock.advance(0.0)  # wake the head: it takes the token
    assert bucket.statistics().acquired == 2


async def test_cancelled_waiter_consumes_no_token() -> None:
    """Cancelling a queued task (head or not) leaves its place and its token to the others."""
    clock = FakeClock()
    bucket = _bucket(clock, rate=10, burst=1)
    bucket.acquire_nowait()
    served: list[str] = []
    scopes: dict[str, anyio.CancelScope] = {}

    async def worker(name: str) -> None:
        with anyio.CancelScope() as scope:
            scopes[name] = scope
            await bucket.acquire()
            served.append(name)

    async with anyio.create_task_group() as tg:
        for name in ("a", "b", "c", "d"):
            tg.start_soon(worker, name)
            await anyio.wait_all_tasks_blocked()
        scopes["a"].cancel()  # the head, asleep on the clock
        scopes["c"].cancel()  # one in the middle
        await anyio.wait_all_tasks_blocked()
        assert bucket.statistics().waiting == 2
        clock.advance(0.1)
        await anyio.wait_all_tasks_blocked()
        assert served == ["b"]
        clock.advance(0.1)
        await anyio.wait_all_tasks_blocked()
        assert served == ["b", "d"]
    stats = bucket.statistics()
    assert (stats.acquired, stats.waiting) == (3, 0)


async def test_cancelling_every_waiter_leaves_the_tokens_in_the_bucket() -> None:
    """After all waiters are cancelled the refilled tokens are still there for the next caller."""
    clock = FakeClock()
    bucket = _bucket(clock, rate=10, burst=2)
    bucket.acquire_nowait()
    bucket.acquire_nowait()
    with anyio.move_on_after(0):
        await bucket.acquire()
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(bucket.acquire)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    clock.advance(0.2)
    stats = bucket.statistics()
    assert (stats.acquired, stats.waiting, stats.tokens) == (2, 0, pytest.approx(2.0))
    bucket.acquire_nowait()
    bucket.acquire_nowait()


async def test_already_cancelled_caller_takes_nothing_even_with_tokens() -> None:
    """acquire is a checkpoint: inside a cancelled scope it raises before taking a token."""
    clock = FakeClock()
    bucket = _bucket(clock, rate=10, burst=3)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await bucket.acquire()
    assert scope.cancelled_caught
    assert bucket.statistics().acquired == 0


async def test_real_clock_defaults_work() -> None:
    """With the event loop's clock a bucket with a large burst hands out tokens at once."""
    bucket = TokenBucket.for_rate(400)
    for _ in range(default_burst(400)):
        await bucket.acquire()
    assert bucket.statistics().acquired == 100
