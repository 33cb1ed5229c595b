"""The quote gate: every reason a quote is unusable, measured from the quote's own time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from core_factories import NOW, quote

from brokers.types import MarketDataType, Quote
from rebalancer.quotegate import UnusableQuote, gate_quotes, quote_problem


def _gate(*quotes: Quote) -> tuple[list[str], list[tuple[str, str]]]:
    gate = gate_quotes(quotes, now=NOW, staleness_secs=30, max_spread_bps=100)
    return sorted(gate.usable), [(u.symbol, u.reason) for u in gate.unusable]


def test_fresh_live_tight_quotes_are_usable() -> None:
    """Live, timestamped, positive, uncrossed and tight quotes all pass."""
    usable, unusable = _gate(
        quote("AAPL", "184.99", "185.01"),
        quote("MSFT", "400", "400"),  # locked book
        quote("GLD", "200", "200.10", at=NOW - timedelta(seconds=30)),  # exactly at the limit
    )
    assert usable == ["AAPL", "GLD", "MSFT"]
    assert unusable == []


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        (quote("A", "10", "10.01", data_type=MarketDataType.DELAYED),
         "delayed data (delayed, not live)"),
        (quote("A", "10", "10.01", data_type=MarketDataType.FROZEN),
         "delayed data (frozen, not live)"),
        (quote("A", "10", "10.01", at=None), "no timestamp"),
        (quote("A", "10", "10.01", at=datetime(2026, 12, 4, 15)), "timestamp has no time zone"),  # noqa: DTZ001
        (quote("A", "10", "10.01", at=NOW + timedelta(seconds=6)), "timestamp 6 s in the future"),
        (quote("A", "10", "10.01", at=NOW - timedelta(seconds=31)), "stale: 31 s old > 30 s limit"),
        (quote("A", None, "10.01"), "no bid"),
        (quote("A", "10", None), "no ask"),
        (quote("A", "0", "10.01"), "bid 0 is not a positive price"),
        (quote("A", "10", "-1"), "ask -1 is not a positive price"),
        (quote("A", "NaN", "10"), "bid NaN is not a positive price"),
        (quote("A", "10.02", "10.01"), "crossed book: bid 10.02 > ask 10.01"),
        (quote("A", "99", "101"), "spread 200.0 bps > 100 bps limit"),
    ],
)
def test_each_unusable_reason(q: Quote, reason: str) -> None:
    """Each failure is reported with its symbol and a precise reason."""
    usable, unusable = _gate(q)
    assert usable == []
    assert unusable == [("A", reason)]


def test_small_future_skew_is_tolerated() -> None:
    """A timestamp up to five seconds ahead of our clock is accepted."""
    assert quote_problem(
        quote("A", "10", "10.01", at=NOW + timedelta(seconds=5)),
        now=NOW, staleness_secs=30, max_spread_bps=100,
    ) is None


def test_duplicate_symbol_is_unusable_once() -> None:
    """Two quotes for one symbol make it unusable, reported once, others unaffected."""
    usable, unusable = _gate(
        quote("A", "10", "10.01"), quote("B", "5", "5.001"), quote("A", "10", "10.01")
    )
    assert usable == ["B"]
    assert unusable == [("A", "quoted 2 times")]


def test_gate_result_is_read_only_and_ordered() -> None:
    """The usable map cannot be changed and unusable keeps input order."""
    gate = gate_quotes(
        [quote("Z", None, "1"), quote("A", None, "1")],
        now=NOW, staleness_secs=30, max_spread_bps=100,
    )
    assert gate.unusable == (
        UnusableQuote(symbol="Z", reason="no bid"), UnusableQuote(symbol="A", reason="no bid"),
    )
    assert not gate.passed
    with pytest.raises(TypeError):
        gate.usable["A"] = quote("A", "1", "1")  # type: ignore[index]


def test_naive_now_is_a_programming_error() -> None:
    """The gate refuses a naive 'now'."""
    with pytest.raises(ValueError, match="timezone-aware"):
        gate_quotes([], now=datetime(2026, 12, 4), staleness_secs=30, max_spread_bps=100)  # noqa: DTZ001


def test_a_requested_symbol_without_a_quote_is_unusable() -> None:
    """A symbol asked for but missing from the reply cannot pass the gate by its absence."""
    gate = gate_quotes([quote("AAPL", "99.99", "100.01")], now=NOW, staleness_secs=30,
                       max_spread_bps=100, requested=["AAPL", "MSFT"])
    assert list(gate.usable) == ["AAPL"]
    assert gate.unusable == (UnusableQuote(symbol="MSFT", reason="no quote returned"),)
    assert not gate.passed


def test_a_quote_nobody_asked_for_is_unusable() -> None:
    """A reply carrying an unrequested symbol is flagged, not silently used."""
    quotes = [quote("AAPL", "99.99", "100.01"), quote("XOM", "49.99", "50.01")]
    gate = gate_quotes(quotes, now=NOW, staleness_secs=30, max_spread_bps=100,
                       requested=["AAPL"])
    assert list(gate.usable) == ["AAPL"]
    assert gate.unusable == (UnusableQuote(symbol="XOM", reason="quoted but not requested"),)
