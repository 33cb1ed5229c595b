"""The quote gate: which quotes are fit to size and price orders with (pure).

A quote is unusable, with the first reason that applies, when:

1. the same symbol was quoted more than once (the two cannot be told apart);
2. it is not real-time data (``data_type`` other than LIVE: delayed or frozen);
3. it carries no timestamp, or a timestamp without a time zone;
4. its timestamp lies more than ``FUTURE_TOLERANCE`` ahead of ``now`` (clock trouble);
5. its age, measured from the quote's own timestamp (not from when we received it), is above
   ``staleness_secs``;
6. the bid or the ask is missing, zero or negative;
7. the book is crossed (bid above ask; a locked book, bid equal to ask, is accepted);
8. the spread, in basis points of the mid, is above ``max_spread_bps``.

Given the symbols that were asked for, a symbol with no quote at all is unusable too, so a
missing quote can never pass the gate by its absence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING

from brokers.types import MarketDataType, Quote
from rebalancer.money import spread_bps

if TYPE_CHECKING:
    from collections.abc import Sequence

FUTURE_TOLERANCE = timedelta(seconds=5)
"""How far ahead of our clock a quote's timestamp may be (clock skew between us and the feed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnusableQuote:
    """A symbol whose quote failed the gate, and why."""

    symbol: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteGate:
    """The gate's verdict: quotes fit for use by symbol, and the rejected ones in input order."""

    usable: Mapping[str, Quote] = field(default_factory=lambda: MappingProxyType({}))
    unusable: tuple[UnusableQuote, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every quote was usable."""
        return not self.unusable


def gate_quotes(
    quotes: Sequence[Quote],
    *,
    now: datetime,
    staleness_secs: int,
    max_spread_bps: int,
    requested: Sequence[str] | None = None,
) -> QuoteGate:
    """Split ``quotes`` into usable and unusable ones (see the module docstring for the rules).

    With ``requested``, a requested symbol the broker returned no quote for is unusable ("no
    quote returned"), and a quote for a symbol nobody asked for is unusable too.
    """
    if now.tzinfo is None:
        raise ValueError("gate_quotes needs a timezone-aware 'now'")
    if requested is not None:
        asked = set(requested)
        got = {q.symbol for q in quotes}
        extra = [UnusableQuote(symbol=q.symbol, reason="quoted but not requested")
                 for q in quotes if q.symbol not in asked]
        missing = [UnusableQuote(symbol=s, reason="no quote returned")
                   for s in dict.fromkeys(requested) if s not in got]
        inner = gate_quotes([q for q in quotes if q.symbol in asked], now=now,
                            staleness_secs=staleness_secs, max_spread_bps=max_spread_bps)
        return QuoteGate(usable=inner.usable, unusable=(*inner.unusable, *missing, *extra))
    counts: dict[str, int] = {}
    for q in quotes:
        counts[q.symbol] = counts.get(q.symbol, 0) + 1
    usable: dict[str, Quote] = {}
    unusable: list[UnusableQuote] = []
    reported: set[str] = set()
    for q in quotes:
        if counts[q.symbol] > 1:
            if q.symbol not in reported:
                reported.add(q.symbol)
                unusable.append(
                    UnusableQuote(symbol=q.symbol, reason=f"quoted {counts[q.symbol]} times")
                )
            continue
        reason = quote_problem(
            q, now=now, staleness_secs=staleness_secs, max_spread_bps=max_spread_bps
        )
        if reason is None:
            usable[q.symbol] = q
        else:
            unusable.append(UnusableQuote(symbol=q.symbol, reason=reason))
    return QuoteGate(usable=MappingProxyType(usable), unusable=tuple(unusable))


def quote_problem(
    q: Quote, *, now: datetime, staleness_secs: int, max_spread_bps: int
) -> str | None:
    """The first reason ``q`` is unusable at ``now``, or ``None`` when it is fit for use."""
    if q.data_type is not MarketDataType.LIVE:
        return f"delayed data ({q.data_type.value}, not live)"
    if q.timestamp is None:
        return "no timestamp"
    if q.timestamp.tzinfo is None:
        return "timestamp has no time zone"
    age = now - q.timestamp
    if age < -FUTURE_TOLERANCE:
        return f"timestamp {_secs(-age)} s in the future"
    if age > timedelta(seconds=staleness_secs):
        return f"stale: {_secs(age)} s old > {staleness_secs} s limit"
    return book_problem(q.bid, q.ask, max_spread_bps=max_spread_bps)


def book_problem(
    bid: Decimal | None, ask: Decimal | None, *, max_spread_bps: int | None = None
) -> str | None:
    """The first problem of a bid/ask pair (missing, non-positive, crossed, too wide), or None.

    The spread is not checked when ``max_spread_bps`` is ``None``.
    """
    if bid is None:
        return "no bid"
    if ask is None:
        return "no ask"
    for side, price in (("bid", bid), ("ask", ask)):
        if not price.is_finite() or price <= 0:
            return f"{side} {price} is not a positive price"
        if not _PRICE_FLOOR <= price <= _PRICE_CEILING:
            return f"{side} {price} is outside any plausible price"
    if bid > ask:
        return f"crossed book: bid {bid} > ask {ask}"
    if max_spread_bps is None:
        return None
    spread = spread_bps(bid, ask)
    if spread > max_spread_bps:
        return f"spread {_bps(spread)} bps > {max_spread_bps} bps limit"
    return None


_PRICE_FLOOR = Decimal("1e-8")
_PRICE_CEILING = Decimal("1e9")


# Any listed stock trades within this range; arithmetic on absurd magnitudes (9E+999999)
# would overflow or round to zero further on.
def _secs(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f}"


def _bps(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1')):f}"
