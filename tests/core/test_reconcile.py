"""Post-run reconciliation values holdings only from sound prices and never raises on bad ones."""

from __future__ import annotations

from decimal import Decimal

import pytest
from core_factories import position, quote, target

from rebalancer.reconcile import reconcile, valuation_price


@pytest.mark.parametrize(
    ("bid", "ask", "last", "expected"),
    [
        ("99", "101", None, Decimal("100")),
        ("NaN", "101", "100.5", Decimal("100.5")),
        ("500", "100", None, None),  # crossed book, no last trade
        ("0", "101", "NaN", None),
        (None, None, "42", Decimal("42")),
    ],
)
def test_valuation_price_uses_only_sound_prices(
    bid: str | None, ask: str | None, last: str | None, expected: Decimal | None
) -> None:
    """Mid of a sound book, else a finite positive last, else nothing."""
    assert valuation_price(quote("AAPL", bid, ask, last=last)) == expected


def test_tracking_error_is_root_mean_square_of_weight_gaps() -> None:
    """Two symbols 10 points off each way give a 10% tracking error."""
    report = reconcile(
        target=target(("AAPL", "0.5"), ("MSFT", "0.5")),
        positions=[position("AAPL", 60), position("MSFT", 40)],
        quotes={"AAPL": quote("AAPL", "99.99", "100.01"),
                "MSFT": quote("MSFT", "99.99", "100.01")},
        equity=Decimal("10000"),
    )
    assert [(r.symbol, r.actual_weight) for r in report.rows] == [
        ("AAPL", Decimal("0.600000")), ("MSFT", Decimal("0.400000"))]
    assert report.tracking_error_pct == Decimal("10.000")
