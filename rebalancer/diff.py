"""The diff: current positions + target weights + equity + quotes → a plan of limit orders.

Rules:

- Shares are integers. A target symbol's target quantity is ``trunc(equity × weight / mid)``
  (truncation toward zero, so the target is never overshot in either direction); ``mid`` is
  the middle of a usable bid/ask.
- A held symbol that is not in the target is closed in full.
- Limits take the side of the book the order trades against: a buy (including a short cover)
  is priced at ``ask + offset`` rounded up to the tick, a sell (including a closing sell and a
  short sale) at ``bid − offset`` rounded down to the tick, with ``offset = price × bps /
  10 000`` (``rebalancer.money``).
- ``notional = quantity × limit``. A trade whose notional is below ``min_trade_usd`` is left
  out (``SkippedTrade``), except the close of a holding that is not in the target: a position
  the target no longer wants is always closed, however small.
- A symbol without a usable quote (no bid or ask, a non-positive price, a crossed book) is
  left out with the reason; so is everything when equity is not positive.
- A change of sign (long → short or short → long) is one order ("flip").
- Sells (SELL, SELL SHORT) come first, then buys (BUY, BUY COVER), each group by symbol.

Actions and descriptions follow the ancestor's vocabulary, kept for the audit log:

=========  ==========================  ===========  ======================
current c  target t                    action       description
=========  ==========================  ===========  ======================
0          t > 0                       BUY          open
c > 0      t > c                       BUY          increase
c > 0      0 < t < c                   SELL         decrease
c > 0      t = 0                       SELL         close long
c > 0      t < 0                       SELL         flip to short
0          t < 0                       SELL SHORT   open short
c < 0      t < c                       SELL SHORT   increase short
c < 0      c < t < 0                   BUY COVER    decrease short
c < 0      t = 0                       BUY COVER    close short
c < 0      t > 0                       BUY COVER    flip to long
=========  ==========================  ===========  ======================
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

from brokers.types import Side
from rebalancer.model import CLIENT_ORDER_PREFIX, OrderAction, Plan, PlannedOrder, SkippedTrade
from rebalancer.money import buy_limit, fmt_usd, sell_limit
from rebalancer.quotegate import book_problem

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from brokers.types import Position, Quote
    from rebalancer.model import Target

CLIENT_ORDER_DIGEST_CHARS = 32
"""Hex digits of SHA-256 kept in a ``client_order_id`` (``rb1-`` + 32 = 36 characters)."""

_SELL_ACTIONS = frozenset({OrderAction.SELL, OrderAction.SELL_SHORT})
_WIDE_PRECISION = 80  # exact products and quotients for any sane equity and weight


def client_order_id(*, run_id: str, symbol: str, side: Side, quantity: int) -> str:
    """Deterministic order key (sent as IB ``orderRef``): the same inputs give the same id.

    ``rb1-`` followed by 32 hex digits of SHA-256 over the NUL-separated run id, symbol,
    side and quantity; printable ASCII, 36 characters.
    """
    material = "\x00".join(("rb1", run_id, symbol, side.value, str(quantity)))
    digest = hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()
    return CLIENT_ORDER_PREFIX + digest[:CLIENT_ORDER_DIGEST_CHARS]


def mid_price(quote: Quote | None) -> Decimal | None:
    """The middle of a usable bid/ask (both positive, not crossed), else ``None``."""
    if quote is None or book_problem(quote.bid, quote.ask) is not None:
        return None
    bid, ask = quote.bid, quote.ask
    assert bid is not None  # checked by book_problem
    assert ask is not None
    return (bid + ask) / 2


def net_positions(positions: Sequence[Position]) -> dict[str, int]:
    """Signed quantity per symbol (duplicate rows are summed; zero positions dropped)."""
    net: dict[str, int] = {}
    for p in positions:
        net[p.symbol] = net.get(p.symbol, 0) + p.quantity
    return {s: q for s, q in net.items() if q != 0}


def target_quantity(equity: Decimal, weight: Decimal, mid: Decimal) -> int:
    """``trunc(equity × weight / mid)`` computed exactly (never rounds up past the target)."""
    with localcontext() as ctx:
        ctx.prec = _WIDE_PRECISION
        return int((equity * weight) // mid)


def compute_diff(
    *,
    run_id: str,
    equity: Decimal,
    positions: Sequence[Position],
    target: Target,
    quotes: Mapping[str, Quote],
    limit_offset_bps: int,
    min_trade_usd: Decimal,
) -> Plan:
    """The orders that move ``positions`` towards ``target`` (rules in the module docstring)."""
    held = net_positions(positions)
    weights = {t.symbol: t.weight for t in target.targets}
    orders: list[PlannedOrder] = []
    skipped: list[SkippedTrade] = []
    for symbol in sorted(set(weights) | set(held)):
        current = held.get(symbol, 0)
        in_target = symbol in weights
        quote = quotes.get(symbol)
        if equity <= 0:
            reason = f"equity {fmt_usd(equity)} is not positive"
            skipped.append(SkippedTrade(symbol=symbol, reason=reason))
            continue
        mid = mid_price(quote)
        if quote is None or mid is None:
            skipped.append(SkippedTrade(symbol=symbol, reason=_quote_reason(quote, in_target)))
            continue
        wanted = target_quantity(equity, weights[symbol], mid) if in_target else 0
        delta = wanted - current
        if delta == 0:
            continue
        order = _order(
            run_id=run_id,
            symbol=symbol,
            current=current,
            wanted=wanted,
            quote=quote,
            mid=mid,
            limit_offset_bps=limit_offset_bps,
        )
        if in_target and order.notional < min_trade_usd:
            skipped.append(
                SkippedTrade(
                    symbol=symbol,
                    reason=(
                        f"{order.action.value} {order.quantity} ({fmt_usd(order.notional)}) is "
                        f"below min_trade_usd {fmt_usd(min_trade_usd)}"
                    ),
                )
            )
            continue
        orders.append(order)
    sells = [o for o in orders if o.action in _SELL_ACTIONS]
    buys = [o for o in orders if o.action not in _SELL_ACTIONS]
    return Plan(orders=(*sells, *buys), skipped=tuple(skipped))


def classify(current: int, wanted: int) -> tuple[OrderAction, str]:
    """The action and description of moving from ``current`` to ``wanted`` shares (≠ current)."""
    if wanted > current:
        if current >= 0:
            return OrderAction.BUY, "open" if current == 0 else "increase"
        if wanted < 0:
            return OrderAction.BUY_COVER, "decrease short"
        return OrderAction.BUY_COVER, "close short" if wanted == 0 else "flip to long"
    if wanted < current:
        if current <= 0:
            return OrderAction.SELL_SHORT, "open short" if current == 0 else "increase short"
        if wanted > 0:
            return OrderAction.SELL, "decrease"
        return OrderAction.SELL, "close long" if wanted == 0 else "flip to short"
    raise ValueError(f"no trade: current and target are both {current}")


def _order(
    *,
    run_id: str,
    symbol: str,
    current: int,
    wanted: int,
    quote: Quote,
    mid: Decimal,
    limit_offset_bps: int,
) -> PlannedOrder:
    action, description = classify(current, wanted)
    quantity = abs(wanted - current)
    if action in _SELL_ACTIONS:
        side = Side.SELL
        assert quote.bid is not None  # the quote is usable
        limit = sell_limit(quote.bid, limit_offset_bps)
    else:
        side = Side.BUY
        assert quote.ask is not None  # the quote is usable
        limit = buy_limit(quote.ask, limit_offset_bps)
    return PlannedOrder(
        client_order_id=client_order_id(run_id=run_id, symbol=symbol, side=side, quantity=quantity),
        symbol=symbol,
        side=side,
        action=action,
        quantity=quantity,
        limit_price=limit,
        reference_price=mid,
        notional=quantity * limit,
        current_quantity=current,
        target_quantity=wanted,
        description=description,
    )


def _quote_reason(quote: Quote | None, in_target: bool) -> str:
    what = "" if in_target else "cannot close (not in the target): "
    if quote is None:
        return f"{what}no quote"
    problem = book_problem(quote.bid, quote.ask)
    return f"{what}unusable quote: {problem}"
