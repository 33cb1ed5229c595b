"""Quote-gate properties: the verdict partitions the symbols, usable means fit, order is moot.

Quotes are generated with every kind of bad price (None, zero, negative, NaN, sNaN, ±Infinity),
crossed books, missing, naive, stale and future timestamps and delayed data, over a small
symbol universe so that duplicate quotes and unrequested symbols are common.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext

from core_factories import NOW
from hypothesis import event, given, settings
from hypothesis import strategies as st

from brokers.types import MarketDataType, Quote
from rebalancer.quotegate import FUTURE_TOLERANCE, QuoteGate, gate_quotes

D = Decimal
SYMBOLS = ("AAPL", "MSFT", "SPY", "TLT", "XOM")
ZONES = (UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30)))

_PRICE = st.one_of(
    st.decimals(min_value=D("0.0001"), max_value=D("5000"), places=4),
    st.decimals(min_value=D("0.0001"), max_value=D("5000"), places=4),
    st.sampled_from([D(0), D("-0"), D("-1.5"), D("NaN"), D("sNaN"), D("Infinity"),
                     D("-Infinity")]),
    st.none(),
)


@st.composite
def _timestamp(draw: st.DrawFn) -> datetime | None:
    kind = draw(st.sampled_from(["aware", "aware", "aware", "none", "naive"]))
    if kind == "none":
        return None
    at = NOW + timedelta(seconds=draw(st.integers(-200_000, 60)))
    if kind == "naive":
        return at.replace(tzinfo=None)
    return at.astimezone(draw(st.sampled_from(ZONES)))


@st.composite
def _quote(draw: st.DrawFn) -> Quote:
    bid = draw(_PRICE)
    if bid is not None and bid.is_finite() and bid > 0 and draw(st.booleans()):
        ask: Decimal | None = bid + draw(st.decimals(D("-0.05"), D("2"), places=2))  # near book
    else:
        ask = draw(_PRICE)
    return Quote(
        symbol=draw(st.sampled_from(SYMBOLS)),
        bid=bid,
        ask=ask,
        last=draw(_PRICE),
        timestamp=draw(_timestamp()),
        data_type=draw(st.sampled_from([MarketDataType.LIVE, MarketDataType.LIVE,
                                        MarketDataType.DELAYED, MarketDataType.FROZEN])),
    )


@st.composite
def _plausible_quote(draw: st.DrawFn) -> Quote:
    """A live, recently stamped, uncrossed quote: usable unless a limit or a duplicate bites."""
    bid = draw(st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2))
    return Quote(
        symbol=draw(st.sampled_from(SYMBOLS)),
        bid=bid,
        ask=bid + draw(st.decimals(D(0), D("0.50"), places=2)),
        last=draw(_PRICE),
        timestamp=NOW - timedelta(seconds=draw(st.integers(-6, 40))),
    )


_QUOTES = st.lists(st.one_of(_quote(), _plausible_quote()), max_size=8)
_REQUESTED = st.one_of(st.none(), st.lists(st.sampled_from(SYMBOLS), max_size=7))
_NOW = st.builds(
    lambda secs, zone: (NOW + timedelta(seconds=secs)).astimezone(zone),
    st.integers(-10, 10), st.sampled_from(ZONES),
)
_STALENESS = st.one_of(st.integers(1, 60), st.integers(1, 86_400))
_SPREAD = st.one_of(st.integers(1, 200), st.integers(1, 10_000))


def _fit(q: Quote, *, now: datetime, staleness: int, max_spread: int) -> bool:
    """Every documented rule, restated: live, timestamped, fresh, positive, uncrossed, tight."""
    bid, ask, at = q.bid, q.ask, q.timestamp
    if q.data_type is not MarketDataType.LIVE or at is None or at.tzinfo is None:
        return False
    if at - now > FUTURE_TOLERANCE or now - at > timedelta(seconds=staleness):
        return False
    if bid is None or ask is None or not (bid.is_finite() and ask.is_finite()):
        return False
    if not 0 < bid <= ask:
        return False
    with localcontext() as ctx:
        ctx.prec = 200
        return (ask - bid) / ((bid + ask) / 2) * 10_000 <= max_spread


@settings(max_examples=600, deadline=None)
@given(quotes=_QUOTES, requested=_REQUESTED, now=_NOW, staleness=_STALENESS, max_spread=_SPREAD)
def test_every_symbol_ends_usable_or_unusable_never_both(
    quotes: list[Quote], requested: list[str] | None, now: datetime, staleness: int,
    max_spread: int,
) -> None:
    """Usable and unusable split the quoted and requested symbols; each is judged once."""
    gate = gate_quotes(quotes, now=now, staleness_secs=staleness, max_spread_bps=max_spread,
                       requested=requested)
    quoted = {q.symbol for q in quotes}
    listed = [u.symbol for u in gate.unusable]
    assert set(gate.usable).isdisjoint(listed)
    assert set(gate.usable) | set(listed) == quoted | set(requested or ())
    for u in gate.unusable:
        assert u.reason
    judged_once = quoted if requested is None else set(requested)
    for symbol in judged_once:
        assert (symbol in gate.usable) + listed.count(symbol) == 1
    if requested is not None:
        assert set(gate.usable) <= set(requested)
    assert gate.passed == (not gate.unusable)


@settings(max_examples=600, deadline=None)
@given(quotes=_QUOTES, requested=_REQUESTED, now=_NOW, staleness=_STALENESS, max_spread=_SPREAD)
def test_usable_exactly_when_every_rule_holds(
    quotes: list[Quote], requested: list[str] | None, now: datetime, staleness: int,
    max_spread: int,
) -> None:
    """A quote is usable iff it is its symbol's only quote, requested, and meets every rule."""
    gate = gate_quotes(quotes, now=now, staleness_secs=staleness, max_spread_bps=max_spread,
                       requested=requested)
    event(f"usable quotes: {min(len(gate.usable), 2)}{'+' if len(gate.usable) >= 2 else ''}")
    for symbol, q in gate.usable.items():
        assert q.symbol == symbol
        assert q.bid is not None
        assert q.ask is not None
        assert q.bid.is_finite()
        assert q.ask.is_finite()
        assert 0 < q.bid <= q.ask
        assert q.data_type is MarketDataType.LIVE
    for q in quotes:
        alone = sum(1 for other in quotes if other.symbol == q.symbol) == 1
        asked = requested is None or q.symbol in requested
        fit = _fit(q, now=now, staleness=staleness, max_spread=max_spread)
        assert (gate.usable.get(q.symbol) is q) == (alone and asked and fit)


def _verdict(gate: QuoteGate) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The gate's result with input order removed (quotes compared by identity: NaN != NaN)."""
    return ({s: id(q) for s, q in gate.usable.items()},
            sorted((u.symbol, u.reason) for u in gate.unusable))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), quotes=_QUOTES, requested=_REQUESTED, now=_NOW,
       staleness=_STALENESS, max_spread=_SPREAD)
def test_verdict_does_not_depend_on_quote_order(
    data: st.DataObject, quotes: list[Quote], requested: list[str] | None, now: datetime,
    staleness: int, max_spread: int,
) -> None:
    """Shuffling the quotes (and the requested symbols) changes nothing but the listing order."""
    shuffled = data.draw(st.permutations(quotes))
    asked = None if requested is None else data.draw(st.permutations(requested))
    one = gate_quotes(quotes, now=now, staleness_secs=staleness, max_spread_bps=max_spread,
                      requested=requested)
    two = gate_quotes(shuffled, now=now, staleness_secs=staleness, max_spread_bps=max_spread,
                      requested=asked)
    assert _verdict(one) == _verdict(two)
