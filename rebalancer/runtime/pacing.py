"""Message pacing: one token bucket shared by every request the runtime sends to the broker.

IB disconnects a client that sends more than about 50 messages a second, so the runtime stays
below that (``[execution] messages_per_second``, default 40) with a small burst. Waiters are
served first come, first served, and a waiter that is cancelled leaves the queue without
consuming a token.

Only the head of the queue sleeps on the clock; the others wait until they become the head.
A token is taken synchronously, with no ``await`` between taking it and returning, so
cancellation can never lose one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

DEFAULT_MESSAGES_PER_SECOND = 40
"""Default rate; IB's documented ceiling is 50 messages a second per client."""

_EPSILON = 1e-9  # float refill may land a hair under a whole token after an exact sleep


def default_burst(rate_per_sec: float) -> int:
    """A small burst for ``rate_per_sec``: a quarter of a second's worth, at least one."""
    return max(1, int(rate_per_sec // 4))


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingStatistics:
    """A snapshot of the bucket, for status output and tests."""

    rate_per_sec: float
    burst: int
    tokens: float
    """Tokens available now (fractional while refilling)."""
    waiting: int
    """Tasks queued in ``acquire``."""
    acquired: int
    """Tokens handed out since the bucket was made."""
    delayed: int
    """How many of those acquisitions had to wait."""
    total_wait_seconds: float
    """Clock time spent waiting, summed over the delayed acquisitions."""


@dataclass(slots=True, eq=False)
class _Waiter:
    at_head: anyio.Event = field(default_factory=anyio.Event)


class TokenBucket:
    """An async token bucket: ``rate_per_sec`` tokens a second, at most ``burst`` saved up.

    Args:
        rate_per_sec: refill rate, positive and finite.
        burst: bucket capacity, at least 1; the bucket starts full.
        clock: seconds on a monotonic clock (the event loop's by default).
        sleep: how to wait; tests inject a fake clock's sleep.
    """

    def __init__(
        self,
        rate_per_sec: float,
        burst: int,
        *,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if not (math.isfinite(rate_per_sec) and rate_per_sec > 0):
            raise ValueError(f"rate_per_sec must be positive and finite, got {rate_per_sec!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self._rate = float(rate_per_sec)
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated: float | None = None
        self._waiters: deque[_Waiter] = deque()
        self._acquired = 0
        self._delayed = 0
        self._wait_seconds = 0.0

    @classmethod
    def for_rate(cls, messages_per_second: float = DEFAULT_MESSAGES_PER_SECOND) -> TokenBucket:
        """A bucket with the default burst for ``messages_per_second``."""
        return cls(messages_per_second, default_burst(messages_per_second))

    def _refill(self) -> None:
        now = self._clock()
        if self._updated is not None:
            elapsed = max(now - self._updated, 0.0)
            self._tokens = min(float(self._burst), self._tokens + elapsed * self._rate)
        self._updated = now

    def _try_take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(self._tokens - 1.0, 0.0)
            self._acquired += 1
            return True
        return False

    def _delay(self) -> float:
        return max((1.0 - self._tokens) / self._rate, 0.0)

    def _leave(self, waiter: _Waiter) -> None:
        was_head = bool(self._waiters) and self._waiters[0] is waiter
        self._waiters.remove(waiter)
        if was_head and self._waiters:
            self._waiters[0].at_head.set()

    def acquire_nowait(self) -> None:
        """Take a token now.

        Raises:
            anyio.WouldBlock: no token is available, or other tasks are already waiting.
        """
        if self._waiters or not self._try_take():
            raise anyio.WouldBlock

    async def acquire(self) -> None:
        """Wait for a token (first come, first served) and take it.

        Cancellation while waiting leaves the queue and consumes nothing.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        if not self._waiters and self._try_take():
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return
        waiter = _Waiter()
        if not self._waiters:
            waiter.at_head.set()
        self._waiters.append(waiter)
        started = self._clock()
        try:
            await waiter.at_head.wait()
            while not self._try_take():
                await self._sleep(self._delay())
        except BaseException:
            self._leave(waiter)
            raise
        self._leave(waiter)
        self._delayed += 1
        self._wait_seconds += max(self._clock() - started, 0.0)

    def statistics(self) -> PacingStatistics:
        """The bucket's counters and the tokens available at this moment."""
        tokens = self._tokens
        if self._updated is not None:
            elapsed = max(self._clock() - self._updated, 0.0)
            tokens = min(float(self._burst), tokens + elapsed * self._rate)
        return PacingStatistics(
            rate_per_sec=self._rate,
            burst=self._burst,
            tokens=tokens,
            waiting=len(self._waiters),
            acquired=self._acquired,
            delayed=self._delayed,
            total_wait_seconds=self._wait_seconds,
        )
