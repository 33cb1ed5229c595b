"""Achieved versus target weights after a run (pure).

For every symbol in the target or held: the post-trade weight (quantity × price ÷ net
liquidation), the target weight, their difference, and the shares still missing. The tracking
error is the root mean square of the weight differences, in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from rebalancer.quotegate import book_problem

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from brokers.types import Position, Quote
    from rebalancer.model import Target

_PCT = Decimal(100)
_PLACES = Decimal("0.000001")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileRow:
    """One symbol's achieved and target weight (fractions of net liquidation)."""

    symbol: str
    quantity: int
    price: Decimal | None
    actual_weight: Decimal
    target_weight: Decimal

    @property
    def diff_weight(self) -> Decimal:
        """Actual minus target."""
        return self.actual_weight - self.target_weight


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileReport:
    """Every row, sorted by symbol, and the tracking error in percent."""

    rows: tuple[ReconcileRow, ...]
    equity: Decimal
    tracking_error_pct: Decimal


def valuation_price(quote: Quote | None) -> Decimal | None:
    """Mid of a sound two-sided book, else a finite positive last trade, else ``None``.

    These quotes never went through the quote gate (the orders are done), so a NaN, a
    non-positive price or a crossed book must not be used, nor raise.
    """
    if quote is None:
        return None
    bid, ask = quote.bid, quote.ask
    if bid is not None and ask is not None and book_problem(bid, ask) is None:
        return (bid + ask) / 2
    if quote.last is not None and quote.last.is_finite() and quote.last > 0:
        return quote.last
    return None


def reconcile(
    *,
    target: Target,
    positions: Sequence[Position],
    quotes: Mapping[str, Quote],
    equity: Decimal,
) -> ReconcileReport:
    """Compare post-trade holdings with the target."""
    held: dict[str, int] = {}
    for pos in positions:
        held[pos.symbol] = held.get(pos.symbol, 0) + pos.quantity
    wanted = {t.symbol: t.weight for t in target.targets}
    rows: list[ReconcileRow] = []
    for symbol in sorted(set(held) | set(wanted)):
        qty = held.get(symbol, 0)
        price = valuation_price(quotes.get(symbol))
        if price is not None and equity > 0:
            actual = (Decimal(qty) * price / equity).quantize(_PLACES)
        else:
            actual = Decimal(0)
        rows.append(
            ReconcileRow(
                symbol=symbol,
                quantity=qty,
                price=price,
                actual_weight=actual,
                target_weight=wanted.get(symbol, Decimal(0)),
            )
        )
    if rows:
        mean_sq = sum((r.diff_weight**2 for r in rows), Decimal(0)) / len(rows)
        te = (mean_sq.sqrt() * _PCT).quantize(Decimal("0.001"))
    else:
        te = Decimal("0.000")
    return ReconcileReport(rows=tuple(rows), equity=equity, tracking_error_pct=te)
