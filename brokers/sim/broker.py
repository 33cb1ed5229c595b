"""``SimBroker``: the async ``Broker`` over the shared state file.

Every operation is one locked transaction in a worker thread: read the state, advance the
simulation to now, apply the operation, write the state back if it changed. The thread is not
abandoned on cancellation, so an operation either happened completely or not at all; a caller
cancelled while waiting does not learn which (as with a real broker).

Several ``SimBroker`` objects (in one process or several) on the same state file are several
API clients of one account: orders carry the client id that placed them, and only that client
may cancel them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from brokers.errors import BrokerUnavailable, OrderRejected, OutcomeUnknown
from brokers.sim import engine, views
from brokers.sim.clock import Clock, SystemClock
from brokers.sim.state import SimState, to_us
from brokers.sim.store import StateStore, hold_client_id
from brokers.types import OrderAck, OrderStatus

if TYPE_CHECKING:
    from datetime import datetime

    from brokers.sim.settings import SimSettings
    from brokers.types import (
        AccountSummary,
        Execution,
        OrderRequest,
        OrderSnapshot,
        OrderUpdate,
        Position,
        Quote,
    )

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


class SimBroker:
    """The deterministic simulated broker (see ``brokers.sim`` for the rules).

    ``settings``: the ``[broker.sim]`` table; ``account_id``: the account (stored in the state
    file when it is created; another account on an existing file is refused at ``connect``);
    ``client_id``: this connection's API client id; ``clock``: the time source (default: the
    system clock; tests pass a ``ManualClock``); ``sleep``: how the acknowledgement latency
    fault waits (default ``anyio.sleep``); ``poll_interval``: how often ``order_updates`` looks
    at the state; ``lock_timeout``: the longest wait for the state file lock;
    ``state_file``: overrides ``settings.state_file``.
    """

    def __init__(
        self,
        settings: SimSettings,
        *,
        account_id: str,
        client_id: int = 1,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        poll_interval: float = 0.05,
        lock_timeout: float = 5.0,
        state_file: Path | None = None,
    ) -> None:
        self._settings = settings
        self._account_id = account_id
        self._client_id = client_id
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._sleep: Sleep = sleep if sleep is not None else anyio.sleep
        self._poll_interval = poll_interval
        self._store = StateStore(
            Path(state_file if state_file is not None else settings.state_file),
            lock_timeout=lock_timeout,
        )
        self._connected = False
        self._lost = False
        self._requests = 0
        self._seen_seq = 0
        self._connect_seq = 0
        self._client_lock: int | None = None

    # -- introspection ---------------------------------------------------------------------

    @property
    def client_id(self) -> int:
        """The API client id of this connection; cancels are scoped to it."""
        return self._client_id

    @property
    def state_file(self) -> Path:
        """The state file this broker shares with other processes."""
        return self._store.path

    @property
    def requests(self) -> int:
        """Requests made since construction (what ``faults.disconnect_at_request`` counts)."""
        return self._requests

    # -- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open (creating if needed) the state file; ``BrokerUnavailable`` when it cannot be."""
        account = await self._run(lambda state, _now: state.account_id, mutates=False)
        if account != self._account_id:
            raise BrokerUnavailable(
                f"simulated broker state {self._store.path} belongs to account {account!r}, "
                f"not {self._account_id!r}"
            )
        if self._settings.exclusive_client_ids and self._client_lock is None:
            self._client_lock = await anyio.to_thread.run_sync(
                hold_client_id, self._store.path, self._client_id
            )
        self._connected = True
        self._lost = False
        self._connect_seq = self._seen_seq

    async def close(self) -> None:
        """Disconnect; idempotent."""
        self._connected = False
        self._release_client_id()

    def _release_client_id(self) -> None:
        if self._client_lock is not None:
            os.close(self._client_lock)
            self._client_lock = None

    # -- reads -------------------------------------------------------------------------------

    async def account_summary(self) -> AccountSummary:
        """Cash, net liquidation (holdings at mid) and buying power."""
        self._request()
        return await self._run(views.account_summary, mutates=False)

    async def positions(self) -> tuple[Position, ...]:
        """Non-zero positions of the account."""
        self._request()
        return await self._run(lambda state, _now: views.positions(state), mutates=False)

    async def quotes(self, symbols: Sequence[str]) -> tuple[Quote, ...]:
        """Quotes in the order asked; unknown symbols get a quote with no prices."""
        self._request()
        wanted = tuple(symbols)
        faults = self._settings.faults
        return await self._run(
            lambda state, now: views.quotes(state, wanted, now, faults), mutates=False
        )

    async def open_orders(self) -> tuple[OrderSnapshot, ...]:
        """Working orders of every client."""
        self._request()
        return await self._run(lambda state, _now: views.open_orders(state), mutates=False)

    async def completed_orders(self, since: datetime) -> tuple[OrderSnapshot, ...]:
        """Terminal orders whose last change is at or after ``since``."""
        self._request()
        since_us = to_us(since)
        return await self._run(
            lambda state, _now: views.completed_orders(state, since_us), mutates=False
        )

    async def executions(self, since: datetime) -> tuple[Execution, ...]:
        """Fills at or after ``since``."""
        self._request()
        since_us = to_us(since)
        return await self._run(
            lambda state, _now: views.executions(state, since_us), mutates=False
        )

    # -- orders ------------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> OrderAck:
        """Place a limit order; see ``SimFaults`` for the latency and lost-ack faults."""
        self._request()
        settings = self._settings
        client_id = self._client_id

        def apply(state: SimState, now: int) -> tuple[OrderSnapshot, int, str]:
            order = engine.place(
                state, request, client_id=client_id, now_us=now, settings=settings
            )
            return views.snapshot(order), order.reject_code, order.message

        placed, code, message = await self._run(apply, mutates=True)
        faults = settings.faults
        if faults.ack_latency_ms:
            await self._sleep(faults.ack_latency_ms / 1000)
        if request.symbol in faults.lose_ack_for_symbols:
            raise OutcomeUnknown(
                "the acknowledgement was lost (simulated)", client_order_id=request.client_order_id
            )
        if placed.status is OrderStatus.REJECTED:
            raise OrderRejected(code, message, client_order_id=request.client_order_id)
        return OrderAck(
            client_order_id=request.client_order_id,
            order_id=placed.order_id,
            perm_id=placed.perm_id,
            status=placed.status,
        )

    async def cancel_order(self, order_id: int) -> None:
        """Request a cancel of one of this client's orders (IB scoping: code 10147 otherwise)."""
        self._request()
        client_id = self._client_id
        delay_us = self._settings.cancel_delay_ms * 1000
        faults = self._settings.faults

        def apply(state: SimState, now: int) -> engine.CancelOutcome:
            return engine.cancel(
                state,
                order_id,
                client_id=client_id,
                now_us=now,
                cancel_delay_us=delay_us,
                faults=faults,
            )

        outcome = await self._run(apply, mutates=True)
        if not outcome.accepted:
            raise OrderRejected(outcome.code, outcome.message)

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        """Updates of this client's orders from now on, polled from the state file.

        "Now" is the last operation this object made before the call (or, for an iterator
        made before ``connect``, the connect): every later change is yielded, including fills
        of older orders that are materialised later. Earlier history is never replayed.
        """
        return self._updates(self._seen_seq)

    async def _updates(self, after_seq: int) -> AsyncIterator[OrderUpdate]:
        repeat = 2 if self._settings.faults.duplicate_callbacks else 1
        client_id = self._client_id
        after_seq = max(after_seq, self._connect_seq)
        while True:
            if self._lost:
                raise BrokerUnavailable("simulated broker connection lost")
            if not self._connected:
                return
            batch, after_seq = await self._run(
                functools.partial(_updates_after, client_id=client_id, after_seq=after_seq),
                mutates=False,
            )
            for update in batch:
                for _ in range(repeat):
                    yield update
            await anyio.sleep(self._poll_interval)

    # -- plumbing ----------------------------------------------------------------------------

    def _request(self) -> None:
        if self._lost or not self._connected:
            raise BrokerUnavailable("not connected to the simulated broker")
        self._requests += 1
        if self._requests == self._settings.faults.disconnect_at_request:
            self._lost = True
            self._connected = False
            self._release_client_id()
            raise BrokerUnavailable(
                f"simulated disconnect at request {self._requests}; the request was not sent"
            )

    async def _run(self, operation: Callable[[SimState, int], T], *, mutates: bool) -> T:
        clock_us = to_us(self._clock.now())
        settings = self._settings
        account_id = self._account_id

        def init() -> SimState:
            return views.new_state(settings, account_id=account_id, now_us=clock_us)

        def apply(state: SimState) -> tuple[tuple[T, int], bool]:
            now = max(clock_us, state.clock_us)
            if now > state.clock_us:
                state.clock_us = now
            changed = engine.advance(state, now)
            result = operation(state, now)
            return (result, state.last_seq), changed or mutates

        work = functools.partial(self._store.transact, init, apply)
        result, last_seq = await anyio.to_thread.run_sync(work)
        self._seen_seq = max(self._seen_seq, last_seq)
        return result


def _updates_after(
    state: SimState, _now: int, *, client_id: int, after_seq: int
) -> tuple[tuple[OrderUpdate, ...], int]:
    return views.updates(state, client_id=client_id, after_seq=after_seq), state.last_seq
