"""A resting order's fate does not depend on how often the shared state is looked at."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio

from brokers.errors import OrderRejected
from brokers.sim import ManualClock, SimBroker
from brokers.sim.engine import MAX_SCAN_STEPS
from brokers.sim.market import Listing, Market, book
from brokers.sim.settings import SimSettings, SimSymbol
from brokers.sim.state import to_us
from brokers.types import OrderRequest, OrderStatus, Side

START = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
SEED = 6
INTERVAL_US = 10_000


def _first_new_low_after_the_budget() -> tuple[int, Decimal]:
    """A bucket, past twice the scan budget, where the ask first drops to a new low."""
    market = Market(seed=SEED, drift_bps=1000, drift_interval_us=INTERVAL_US,
                    listings={"BIG": Listing(price=Decimal("100000"), spread_bps=0)})
    first = to_us(START) // INTERVAL_US
    low: Decimal | None = None
    for k in range(200_000):
        ask = book(market, "BIG", (first + k) * INTERVAL_US).ask
        assert ask is not None
        if low is None or ask < low:
            if k > 2 * MAX_SCAN_STEPS:
                return k, ask
            low = ask
    raise AssertionError("no new low found")


async def _final_status(tmp: Path, *, poll_secs: float | None) -> tuple[OrderStatus, int]:
    bucket, limit = _first_new_low_after_the_budget()
    cancel_at = START + timedelta(microseconds=(bucket + 100) * INTERVAL_US)
    settings = SimSettings(
        state_file=tmp / "state.json", seed=SEED, drift_bps=1000, drift_interval_ms=10,
        fill_delay_ms_min=0, fill_delay_ms_max=0, partial_fills=1,
        symbols={"BIG": SimSymbol(price=Decimal("100000"), spread_bps=0)},
    )
    clock = ManualClock(START)
    broker = SimBroker(settings, account_id="DEMO1", clock=clock)
    await broker.connect()
    ack = await broker.place_order(OrderRequest(
        client_order_id="x", account_id="DEMO1", symbol="BIG", side=Side.BUY, quantity=1,
        limit_price=limit))
    if poll_secs is not None:
        while clock.now() + timedelta(seconds=poll_secs) < cancel_at:
            clock.advance(poll_secs)
            await broker.open_orders()
    clock.set(cancel_at)
    with contextlib.suppress(OrderRejected):  # refused when the fill came first
        await broker.cancel_order(ack.order_id)
    (order,) = [o for o in await broker.completed_orders(START) if o.client_order_id == "x"]
    await broker.close()
    return order.status, order.filled


def test_outcome_is_the_same_watched_or_unwatched(tmp_path: Path) -> None:
    """Polling every 50 s or never, a fill due before the cancel happens in both cases."""
    watched = anyio.run(lambda: _final_status(tmp_path / "w", poll_secs=50.0))
    unwatched = anyio.run(lambda: _final_status(tmp_path / "u", poll_secs=None))
    assert watched == unwatched == (OrderStatus.FILLED, 1)
