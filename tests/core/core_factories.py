"""Builders of broker values and targets for the core tests (not a test module)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from brokers.types import MarketDataType, Position, Quote
from rebalancer.model import Target, TargetConstraints, TargetWeight
from rebalancer.target import compute_window_id

NOW = datetime(2026, 12, 4, 15, 0, 0, tzinfo=UTC)


def quote(
    symbol: str,
    bid: str | None,
    ask: str | None,
    *,
    last: str | None = None,
    at: datetime | None = NOW,
    data_type: MarketDataType = MarketDataType.LIVE,
) -> Quote:
    """A quote with string prices turned into Decimals."""
    return Quote(
        symbol=symbol,
        bid=None if bid is None else Decimal(bid),
        ask=None if ask is None else Decimal(ask),
        last=None if last is None else Decimal(last),
        timestamp=at,
        data_type=data_type,
    )


def position(symbol: str, quantity: int, avg_cost: str = "100") -> Position:
    """A position in the test account."""
    return Position(account_id="DU1", symbol=symbol, quantity=quantity, avg_cost=Decimal(avg_cost))


def target(*lines: tuple[str, str], scope: str = "") -> Target:
    """A target from (symbol, weight) pairs, without validation."""
    weights = tuple(TargetWeight(symbol=s, weight=Decimal(w)) for s, w in lines)
    constraints = TargetConstraints()
    return Target(
        targets=weights,
        metadata_id=scope or None,
        constraints=constraints,
        timestamp=None,
        window_id=compute_window_id(scope, weights, constraints),
    )
