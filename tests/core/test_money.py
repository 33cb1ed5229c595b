"""Money helpers: tick grid, limit rounding direction, basis points, display."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.money import (
    MIN_PRICE,
    Rounding,
    bps_of,
    buy_limit,
    decimal_str,
    fmt_pct,
    fmt_price,
    fmt_ratio,
    fmt_usd,
    is_on_tick,
    ratio_bps,
    round_to_tick,
    sell_limit,
    spread_bps,
    tick_size,
)

D = Decimal


@pytest.mark.parametrize(
    ("price", "tick"),
    [(D("1"), D("0.01")), (D("185.09"), D("0.01")), (D("0.9999"), D("0.0001")),
     (D("0.05"), D("0.0001"))],
)
def test_tick_size_switches_at_one_dollar(price: Decimal, tick: Decimal) -> None:
    """Prices at or above $1 tick in cents, below $1 in hundredths of a cent."""
    assert tick_size(price) == tick


@pytest.mark.parametrize(
    ("price", "direction", "expected"),
    [
        (D("185.001"), Rounding.UP, D("185.01")),
        (D("185.009"), Rounding.DOWN, D("185.00")),
        (D("185.00"), Rounding.UP, D("185.00")),
        (D("0.12345"), Rounding.UP, D("0.1235")),
        (D("0.12345"), Rounding.DOWN, D("0.1234")),
        (D("0.99995"), Rounding.UP, D("1.00")),
        (D("1.004"), Rounding.DOWN, D("1.00")),
    ],
)
def test_round_to_tick(price: Decimal, direction: Rounding, expected: Decimal) -> None:
    """Rounding lands on the tick grid in the asked direction."""
    assert round_to_tick(price, direction) == expected
    assert is_on_tick(round_to_tick(price, direction))


def test_buy_and_sell_limits_take_the_far_side_plus_offset() -> None:
    """$200 with 10 bps gives a buy at 200.20 and a sell at 199.80."""
    assert buy_limit(D("200"), 10) == D("200.20")
    assert sell_limit(D("200"), 10) == D("199.80")
    assert buy_limit(D("185.01"), 5) == D("185.11")  # 185.1025 rounded up
    assert sell_limit(D("184.99"), 5) == D("184.89")  # 184.8975 rounded down


def test_sell_limit_never_below_one_tick() -> None:
    """A sell limit of a penny stock never drops under the minimum price."""
    assert sell_limit(D("0.0001"), 500) == MIN_PRICE


_prices = st.decimals(min_value=D("0.0001"), max_value=D("5000"), places=4)


@given(price=_prices, bps=st.integers(0, 500))
def test_limits_are_on_tick_and_at_least_as_marketable(price: Decimal, bps: int) -> None:
    """Buy limits are ≥ price+offset and sell limits ≤ price−offset, within one tick, on tick."""
    buy = buy_limit(price, bps)
    sell = sell_limit(price, bps)
    assert is_on_tick(buy)
    assert is_on_tick(sell)
    assert price + bps_of(price, bps) <= buy < price + bps_of(price, bps) + tick_size(buy)
    floor = price - bps_of(price, bps)
    assert sell == MIN_PRICE or floor - tick_size(floor) < sell <= floor


def test_bps_helpers() -> None:
    """Basis-point arithmetic is exact."""
    assert bps_of(D("1000"), 5) == D("0.5")
    assert ratio_bps(D("1"), D("100")) == D("100")
    assert spread_bps(D("99"), D("101")) == D("200")
    with pytest.raises(ValueError, match="positive base"):
        ratio_bps(D("1"), D("0"))


def test_display_helpers() -> None:
    """Display forms: dollars with separators, one-decimal percent, two-decimal ratio."""
    assert fmt_usd(D("1234567.891")) == "$1,234,567.89"
    assert fmt_usd(D("-12")) == "-$12.00"
    assert fmt_pct(D("0.2475")) == "24.8%"
    assert fmt_ratio(D("1.2345")) == "1.23x"
    assert fmt_price(D("185.1")) == "185.10"
    assert fmt_price(D("0.45")) == "0.4500"


@pytest.mark.parametrize(
    ("value", "text"),
    [(D("0.10"), "0.1"), (D("1E+2"), "100"), (D("-0.0"), "0"), (D("5e-1"), "0.5"),
     (D("-0.25"), "-0.25")],
)
def test_decimal_str_is_canonical(value: Decimal, text: str) -> None:
    """Equal decimals have one plain canonical string."""
    assert decimal_str(value) == text
