"""Pure translation of the simulated state into the broker value types, and its creation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from brokers.sim.engine import reserved
from brokers.sim.market import CENT, Listing, Market, book
from brokers.sim.state import SimHolding, SimState, from_us
from brokers.types import (
    AccountSummary,
    Execution,
    MarketDataType,
    OrderSnapshot,
    OrderUpdate,
    Position,
    Quote,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from brokers.sim.settings import SimFaults, SimSettings
    from brokers.sim.state import SimEvent, SimExecution, SimOrder


def new_state(settings: SimSettings, *, account_id: str, now_us: int) -> SimState:
    """A fresh market and demo account from the ``[broker.sim]`` settings."""
    listings = {
        symbol: Listing(price=s.price, spread_bps=s.spread_bps)
        for symbol, s in settings.universe().items()
    }
    holdings = {
        p.symbol: SimHolding(quantity=p.quantity, avg_cost=p.avg_cost)
        for p in settings.positions
        if p.quantity
    }
    return SimState(
        account_id=account_id,
        currency=settings.currency,
        created_us=now_us,
        clock_us=now_us,
        market=Market(
            seed=settings.seed,
            drift_bps=settings.drift_bps,
            drift_interval_us=settings.drift_interval_ms * 1000,
            listings=listings,
        ),
        commission_per_share=settings.commission_per_share,
        commission_min=settings.commission_min,
        cash=settings.starting_cash,
        holdings=holdings,
    )


def account_summary(state: SimState, now_us: int) -> AccountSummary:
    """Cash, net liquidation at mid prices, and buying power net of working buys."""
    value = state.cash
    for symbol, held in state.holdings.items():
        if symbol in state.market.listings:
            value += held.quantity * book(state.market, symbol, now_us).mid
        else:
            value += held.quantity * held.avg_cost
    held_cash, _shares = reserved(state)
    return AccountSummary(
        account_id=state.account_id,
        currency=state.currency,
        net_liquidation=value.quantize(CENT),
        cash=state.cash.quantize(CENT),
        buying_power=max(state.cash - held_cash, Decimal(0)).quantize(CENT),
    )


def positions(state: SimState) -> tuple[Position, ...]:
    """Non-zero holdings, by symbol."""
    return tuple(
        Position(account_id=state.account_id, symbol=s, quantity=h.quantity, avg_cost=h.avg_cost)
        for s, h in sorted(state.holdings.items())
    )


def quotes(
    state: SimState, symbols: Sequence[str], now_us: int, faults: SimFaults
) -> tuple[Quote, ...]:
    """One quote per symbol in the order asked; the quote faults of this process applied."""
    result: list[Quote] = []
    now = from_us(now_us)
    for symbol in symbols:
        if symbol not in state.market.listings:
            result.append(Quote(symbol=symbol, bid=None, ask=None, last=None, timestamp=None))
            continue
        top = book(state.market, symbol, now_us)
        stamp = now
        if symbol in faults.stale_quote_symbols:
            stamp = now - timedelta(seconds=faults.stale_quote_age_secs)
        kind = MarketDataType.LIVE
        if symbol in faults.delayed_quote_symbols:
            kind = MarketDataType.DELAYED
        missing = symbol in faults.no_bid_ask_symbols
        result.append(
            Quote(
                symbol=symbol,
                bid=None if missing else top.bid,
                ask=None if missing else top.ask,
                last=top.mid,
                timestamp=stamp,
                data_type=kind,
            )
        )
    return tuple(result)


def snapshot(order: SimOrder) -> OrderSnapshot:
    """The broker view of one order."""
    return OrderSnapshot(
        client_order_id=order.client_order_id,
        order_id=order.order_id,
        perm_id=order.perm_id,
        client_id=order.client_id,
        account_id=order.account_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        limit_price=order.limit_price,
        status=order.status,
        filled=order.filled,
        remaining=order.remaining,
        avg_fill_price=order.avg_fill_price,
        updated_at=from_us(order.updated_us),
    )


def execution(state: SimState, fill: SimExecution, order: SimOrder) -> Execution:
    """The broker view of one fill."""
    return Execution(
        exec_id=fill.exec_id,
        client_order_id=order.client_order_id,
        order_id=order.order_id,
        perm_id=order.perm_id,
        account_id=state.account_id,
        symbol=order.symbol,
        side=order.side,
        quantity=fill.quantity,
        price=fill.price,
        time=from_us(fill.time_us),
        commission=fill.commission,
    )


def open_orders(state: SimState) -> tuple[OrderSnapshot, ...]:
    """Every non-terminal order, every client, by perm id."""
    return tuple(snapshot(o) for o in state.orders if not o.status.is_terminal)


def completed_orders(state: SimState, since_us: int) -> tuple[OrderSnapshot, ...]:
    """Terminal orders whose last change is at or after ``since_us``."""
    return tuple(
        snapshot(o) for o in state.orders if o.status.is_terminal and o.updated_us >= since_us
    )


def executions(state: SimState, since_us: int) -> tuple[Execution, ...]:
    """Fills at or after ``since_us``, in the order they happened."""
    by_perm = {o.perm_id: o for o in state.orders}
    return tuple(
        execution(state, f, by_perm[f.perm_id]) for f in state.executions if f.time_us >= since_us
    )


def updates(state: SimState, *, client_id: int, after_seq: int) -> tuple[OrderUpdate, ...]:
    """Order updates of one client's orders from the events after ``after_seq``."""
    by_perm = {o.perm_id: o for o in state.orders}
    fills = {f.exec_id: f for f in state.executions}
    result: list[OrderUpdate] = []
    for ev in _events_after(state.events, after_seq):
        if ev.client_id != client_id:
            continue
        order = by_perm[ev.perm_id]
        fill = fills.get(ev.exec_id) if ev.exec_id else None
        result.append(
            OrderUpdate(
                client_order_id=order.client_order_id,
                order_id=order.order_id,
                perm_id=order.perm_id,
                status=ev.status,
                filled=ev.filled,
                remaining=ev.remaining,
                avg_fill_price=ev.avg_fill_price,
                time=from_us(ev.time_us),
                execution=None if fill is None else execution(state, fill, order),
                message=ev.message,
            )
        )
    return tuple(result)


def _events_after(events: list[SimEvent], after_seq: int) -> list[SimEvent]:
    # Sequence numbers are 1..n in list order, so the tail is a slice.
    return events[after_seq:] if after_seq >= 0 else events
