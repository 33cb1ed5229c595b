"""Risk and the quote gate on hostile numbers: NaN, Infinity, absurd magnitudes, 28+ digits."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from core_factories import NOW, position, quote

from rebalancer.config import AccountType, CostConfig, RiskConfig
from rebalancer.model import CheckStatus, Plan
from rebalancer.quotegate import book_problem, gate_quotes
from rebalancer.risk import check_risk

D = Decimal


def _report(*, positions: list, quotes: dict, equity: str = "100000",
            risk: RiskConfig | None = None) -> dict[str, tuple[CheckStatus, str]]:
    report = check_risk(
        plan=Plan(orders=()), equity=D(equity), cash=D("1000"), positions=positions,
        quotes=quotes, risk=risk or RiskConfig(), account_type=AccountType.CASH,
        cost=CostConfig(), max_spread_bps=100, max_orders_per_run=50,
    )
    return {c.name: (c.status, c.detail) for c in report.checks}


@pytest.mark.parametrize("bad", ["NaN", "Infinity"])
def test_non_finite_last_or_cost_fails_valuation_instead_of_raising(bad: str) -> None:
    """A NaN/Infinity last is skipped for the average cost; with both bad, the holding is
    unpriced and Valuation fails."""
    by_last = _report(positions=[position("AAPL", 10)],
                      quotes={"AAPL": quote("AAPL", None, None, last=bad)})
    assert by_last["Valuation"] == (CheckStatus.WARN, "no mid: AAPL at average cost 100")
    by_cost = _report(positions=[position("AAPL", 10, avg_cost=bad)], quotes={})
    assert by_cost["Valuation"] == (CheckStatus.FAIL, "AAPL has no price")


def test_non_finite_equity_is_one_failing_check() -> None:
    """A NaN net liquidation fails the Equity check; nothing else is computed from it."""
    report = check_risk(
        plan=Plan(orders=()), equity=D("NaN"), cash=D("1000"), positions=[], quotes={},
        risk=RiskConfig(), account_type=AccountType.CASH, cost=CostConfig(),
        max_spread_bps=100, max_orders_per_run=50,
    )
    assert [(c.name, c.status) for c in report.checks] == [("Equity", CheckStatus.FAIL)]
    assert not report.passed


def test_limits_are_compared_exactly_beyond_28_digits() -> None:
    """A position a hair above a 28-digit limit fails (default precision would round it in)."""
    limit = D("0.006178942165101334651507661888")
    risk = replace(RiskConfig(), max_position_pct=limit)
    checks = _report(positions=[position("AAPL", 1)],
                     quotes={"AAPL": quote("AAPL", "1.00", "1.00")}, equity="161.84", risk=risk)
    assert checks["Max position"][0] is CheckStatus.FAIL


@pytest.mark.parametrize(
    ("bid", "ask", "reason"),
    [
        ("9E+999999", "9E+999999", "bid 9E+999999 is outside any plausible price"),
        ("1E-1000030", "2E-1000030", "bid 1E-1000030 is outside any plausible price"),
    ],
)
def test_absurd_prices_are_unusable_not_errors(bid: str, ask: str, reason: str) -> None:
    """Magnitudes no stock trades at are refused by the gate instead of overflowing."""
    assert book_problem(D(bid), D(ask), max_spread_bps=100) == reason
    gate = gate_quotes([quote("AAPL", bid, ask)], now=NOW, staleness_secs=30,
                       max_spread_bps=100)
    assert [u.reason for u in gate.unusable] == [reason]
