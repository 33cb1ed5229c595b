"""The broker's position report is refused when rows belong elsewhere or repeat."""

from __future__ import annotations

from decimal import Decimal

from brokers.types import Position
from rebalancer.positions_check import position_problems


def _pos(symbol: str, qty: int, account: str = "DU1") -> Position:
    return Position(account_id=account, symbol=symbol, quantity=qty, avg_cost=Decimal("10"))


def test_clean_report_has_no_problems() -> None:
    """One row per symbol for the configured account is fine."""
    assert position_problems([_pos("AAPL", 100), _pos("MSFT", -5)], account_id="DU1") == ()


def test_row_for_another_account_is_a_problem() -> None:
    """A row of another account (multi-account login) is named with both account ids."""
    problems = position_problems([_pos("AAPL", 100, "DU2")], account_id="DU1")
    assert problems == ("AAPL: position reported for account 'DU2', not 'DU1'",)


def test_repeated_symbol_is_a_problem() -> None:
    """Two rows for one symbol would be summed into a sell beyond the holding: refused."""
    problems = position_problems([_pos("AAPL", 100), _pos("AAPL", 100)], account_id="DU1")
    assert problems == ("AAPL: reported more than once",)
