"""The simulated market: deterministic prices as a function of (seed, symbol, time).

Pure functions, no I/O. Time is an integer count of microseconds since the Unix epoch. A quote
is constant within a drift interval and jumps at interval boundaries to a new seeded value
within ``± drift_bps`` of the symbol's base price (bounded noise, not a random walk, so any
instant is computed in O(1) and every process agrees on it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

from brokers.types import Side

CENT = Decimal("0.01")
US_PER_MS = 1000
US_PER_SEC = 1_000_000


def draw_int(seed: int, lo: int, hi: int, *parts: object) -> int:
    """A deterministic integer in ``[lo, hi]`` for the given seed and labels."""
    if hi < lo:
        raise ValueError("empty range")
    label = "|".join([str(seed), *map(str, parts)]).encode()
    value = int.from_bytes(hashlib.sha256(label).digest()[:8], "big")
    return lo + value % (hi - lo + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """One tradable symbol: base mid price and spread."""

    price: Decimal
    spread_bps: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Market:
    """Everything that decides a price: seed, drift and the listings."""

    seed: int
    drift_bps: int
    drift_interval_us: int
    listings: dict[str, Listing]


@dataclass(frozen=True, slots=True, kw_only=True)
class Book:
    """Top of book at one instant."""

    bid: Decimal
    ask: Decimal
    mid: Decimal


def bucket(market: Market, t_us: int) -> int:
    """The drift interval that ``t_us`` falls in."""
    return t_us // market.drift_interval_us


def next_move(market: Market, t_us: int) -> int:
    """The first instant after ``t_us`` at which quotes may change."""
    return (bucket(market, t_us) + 1) * market.drift_interval_us


def book(market: Market, symbol: str, t_us: int) -> Book:
    """Bid, ask and mid of a listed symbol at ``t_us`` (``KeyError`` when not listed)."""
    listing = market.listings[symbol]
    mid = listing.price
    if market.drift_bps:
        span = market.drift_bps * 10  # tenths of a basis point
        noise = draw_int(market.seed, -span, span, "drift", symbol, bucket(market, t_us))
        mid = listing.price * (100_000 + noise) / 100_000
    mid = max(CENT, mid.quantize(CENT, rounding=ROUND_HALF_EVEN))
    half = mid * listing.spread_bps / 20_000
    bid = max(CENT, (mid - half).quantize(CENT, rounding=ROUND_DOWN))
    ask = max(bid, (mid + half).quantize(CENT, rounding=ROUND_UP))
    return Book(bid=bid, ask=ask, mid=mid)


def marketable(side: Side, limit: Decimal, top: Book) -> bool:
    """A buy limit at or above the ask, or a sell limit at or below the bid, trades now."""
    return limit >= top.ask if side is Side.BUY else limit <= top.bid


def fill_price(side: Side, top: Book) -> Decimal:
    """The price a marketable limit order trades at: the touch (never worse than its limit)."""
    return top.ask if side is Side.BUY else top.bid
