"""Properties of the simulated exchange (pure engine, no files), checked with Hypothesis.

- Lazy materialisation: looking often or rarely gives byte-identical outcomes.
- Fills never break the limit, never exceed the order, and add up.
- Money and shares are conserved: cash and positions move by exactly the fills and commissions.
- Event times never go backwards.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.sim import engine
from brokers.sim.clock import ManualClock
from brokers.sim.market import CENT, book
from brokers.sim.settings import SimFaults, SimSettings
from brokers.sim.state import SimState, dump_state, to_us
from brokers.sim.views import new_state
from brokers.types import OrderRequest, OrderStatus, Side

T0 = to_us(ManualClock().now())
SYMBOLS = ("AAPL", "TLT", "XOM")
CFG = replace(
    SimSettings(drift_bps=25, drift_interval_ms=500, partial_fills=3, fill_delay_ms_min=0,
                fill_delay_ms_max=5000, cancel_delay_ms=700, seed=13),
    faults=SimFaults(check_buying_power=True),
)

place = st.tuples(st.just("place"), st.sampled_from(SYMBOLS), st.sampled_from(list(Side)),
                  st.integers(1, 60), st.integers(-40, 40), st.integers(1, 2))
cancel = st.tuples(st.just("cancel"), st.integers(0, 20), st.integers(1, 2))
wait = st.tuples(st.just("wait"), st.integers(0, 8000))
OPS = st.lists(st.one_of(place, cancel, wait), max_size=25)


def _run(ops: list[tuple[Any, ...]], *, look_every_ms: int | None) -> SimState:
    """Apply ``ops``; with ``look_every_ms`` also advance at that period in between."""
    state = new_state(CFG, account_id="DEMO1", now_us=T0)
    now = T0
    count = 0

    def wait_until(target: int) -> None:
        nonlocal now
        if look_every_ms:
            while now + look_every_ms * 1000 < target:
                now += look_every_ms * 1000
                engine.advance(state, now)
        now = target
        engine.advance(state, now)

    for op in ops:
        if op[0] == "wait":
            wait_until(now + op[1] * 1000)
        elif op[0] == "place":
            _, symbol, side, qty, offset_bps, client = op
            mid = book(state.market, symbol, now).mid
            limit = (mid * (10_000 + (offset_bps if side is Side.BUY else -offset_bps))
                     / 10_000).quantize(CENT)
            count += 1
            request = OrderRequest(client_order_id=f"p{count}", account_id="DEMO1",
                                   symbol=symbol, side=side, quantity=qty, limit_price=limit)
            engine.place(state, request, client_id=client, now_us=now, settings=CFG)
        else:
            _, order_id, client = op
            engine.cancel(state, order_id, client_id=client, now_us=now,
                          cancel_delay_us=CFG.cancel_delay_ms * 1000, faults=CFG.faults)
    wait_until(now + 60_000_000)
    return state


def _comparable(state: SimState) -> dict[str, Any]:
    doc = json.loads(dump_state(state))
    for order in doc["orders"]:
        del order["scan_at"]  # an optimisation hint, not an outcome
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_outcome_does_not_depend_on_how_often_anyone_looks(ops: list[tuple[Any, ...]]) -> None:
    """Advancing every 300 ms in between gives the same state as advancing only at calls."""
    assert _comparable(_run(ops, look_every_ms=None)) == _comparable(_run(ops, look_every_ms=300))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_fills_respect_limits_and_money_and_shares_are_conserved(
    ops: list[tuple[Any, ...]],
) -> None:
    """Every fill is at the limit or better; fills add up to each order's filled count, never
    above its quantity; cash and positions change by exactly the fills and commissions; event
    times never go backwards."""
    start = new_state(CFG, account_id="DEMO1", now_us=T0)
    state = _run(ops, look_every_ms=None)
    by_perm = {o.perm_id: o for o in state.orders}
    filled: dict[int, int] = {}
    cash = start.cash
    shares = {s: h.quantity for s, h in start.holdings.items()}
    for e in state.executions:
        o = by_perm[e.perm_id]
        assert e.price <= o.limit_price if o.side is Side.BUY else e.price >= o.limit_price
        signed = e.quantity if o.side is Side.BUY else -e.quantity
        cash -= signed * e.price + e.commission
        shares[o.symbol] = shares.get(o.symbol, 0) + signed
        filled[o.perm_id] = filled.get(o.perm_id, 0) + e.quantity
    assert state.cash == cash
    assert {s: h.quantity for s, h in state.holdings.items()} == {
        s: q for s, q in shares.items() if q
    }
    for o in state.orders:
        assert filled.get(o.perm_id, 0) == o.filled <= o.quantity
        assert (o.status is OrderStatus.FILLED) == (o.filled == o.quantity)
        assert o.status.is_terminal or o.status is OrderStatus.WORKING
    times = [ev.time_us for ev in state.events]
    assert times == sorted(times)
    assert [ev.seq for ev in state.events] == list(range(1, len(state.events) + 1))
    assert Decimal(0) <= sum((e.commission for e in state.executions), Decimal(0))
