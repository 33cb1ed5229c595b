"""Decimal money helpers: tick sizes, limit-price rounding, basis points, display.

Prices are ``Decimal`` dollars. US stocks trade in $0.01 ticks at or above $1 and in $0.0001
ticks below $1 (Reg NMS Rule 612), so every limit price is rounded onto that grid.

Rounding direction (chosen so that a limit is never *less* marketable than intended):
a buy limit is ``ask + offset`` rounded **up** to the tick, a sell limit is ``bid − offset``
rounded **down** to the tick and never below one tick. Rounding the other way would leave an
order resting just behind the touch, which is the passive-limit failure of the ancestor.
The extra cost of rounding towards the market is under one tick per share.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_UP, Decimal, localcontext
from enum import Enum

BPS_PER_UNIT = Decimal(10_000)
CENT = Decimal("0.01")
TICK_AT_OR_ABOVE_ONE = Decimal("0.01")
TICK_BELOW_ONE = Decimal("0.0001")
MIN_PRICE = TICK_BELOW_ONE
"""The lowest limit price this program will send (one sub-dollar tick)."""

_ONE = Decimal(1)


class Rounding(Enum):
    """Which way a price is moved onto the tick grid."""

    UP = ROUND_CEILING
    DOWN = ROUND_FLOOR


def tick_size(price: Decimal) -> Decimal:
    """The minimum price increment for a US stock quoted at ``price``."""
    return TICK_AT_OR_ABOVE_ONE if price >= _ONE else TICK_BELOW_ONE


def round_to_tick(price: Decimal, direction: Rounding) -> Decimal:
    """``price`` moved onto the tick grid in ``direction`` (exact Decimal arithmetic).

    The sub-dollar grid is used below $1 and the cent grid at or above; a price rounded up
    from just below $1 lands on ``1.0000``, which is also a valid cent price.
    """
    if price >= _ONE:
        return price.quantize(TICK_AT_OR_ABOVE_ONE, rounding=direction.value)
    rounded = price.quantize(TICK_BELOW_ONE, rounding=direction.value)
    if rounded >= _ONE:
        return rounded.quantize(TICK_AT_OR_ABOVE_ONE, rounding=direction.value)
    return rounded


def is_on_tick(price: Decimal) -> bool:
    """True when ``price`` is a whole number of ticks."""
    return price == price.quantize(tick_size(price))


def bps_of(amount: Decimal, bps: int | Decimal) -> Decimal:
    """``amount × bps / 10 000`` (exact)."""
    return amount * Decimal(bps) / BPS_PER_UNIT


def ratio_bps(part: Decimal, whole: Decimal) -> Decimal:
    """``part / whole`` in basis points; ``whole`` must be positive."""
    if whole <= 0:
        raise ValueError(f"ratio_bps needs a positive base, got {whole}")
    return part / whole * BPS_PER_UNIT


def spread_bps(bid: Decimal, ask: Decimal) -> Decimal:
    """Quoted spread in basis points of the mid price; both sides must be positive."""
    mid = (bid + ask) / 2
    return ratio_bps(ask - bid, mid)


def buy_limit(ask: Decimal, offset_bps: int) -> Decimal:
    """A buy limit: ``ask + ask × bps / 10 000`` rounded up to the tick."""
    return round_to_tick(ask + bps_of(ask, offset_bps), Rounding.UP)


def sell_limit(bid: Decimal, offset_bps: int) -> Decimal:
    """A sell limit: ``bid − bid × bps / 10 000`` rounded down to the tick, at least one tick."""
    return max(round_to_tick(bid - bps_of(bid, offset_bps), Rounding.DOWN), MIN_PRICE)


def to_cents_up(amount: Decimal) -> Decimal:
    """``amount`` rounded up (away from zero) to whole cents: for conservative cost estimates."""
    return amount.quantize(CENT, rounding=ROUND_UP)


def trunc(value: Decimal) -> int:
    """``value`` truncated toward zero to an ``int`` (never overshoots in either direction)."""
    return int(value)


def fmt_usd(amount: Decimal) -> str:
    """``$1,234.56`` (``-$12.00`` for negatives), rounded half-even to cents for display only."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount).quantize(CENT):,}"


def fmt_price(price: Decimal) -> str:
    """A price as sent: ``185.09`` or ``0.4521`` (display form of a tick-aligned price)."""
    return f"{price.quantize(tick_size(price)):f}"


def fmt_pct(fraction: Decimal) -> str:
    """``0.2475`` → ``24.8%`` (one decimal, for display only)."""
    return f"{(fraction * 100).quantize(Decimal('0.1')):f}%"


def fmt_ratio(value: Decimal) -> str:
    """``1.2345`` → ``1.23x`` (for leverage display)."""
    return f"{value.quantize(CENT):f}x"


def decimal_str(value: Decimal) -> str:
    """The shortest exact plain-notation form of ``value``: ``0.10`` → ``0.1``, ``1E+2`` → ``100``.

    Used for canonical (hashed) forms; ``-0`` becomes ``0``.
    """
    if value == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = max(ctx.prec, len(value.as_tuple().digits))  # normalize() must not round
        return f"{value.normalize():f}"
