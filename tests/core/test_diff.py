"""The diff: integer shares, never overshooting, far-side limits, closes, skips and order."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

import pytest
from core_factories import position, quote, target
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.types import Position, Quote, Side
from rebalancer.diff import classify, client_order_id, compute_diff, mid_price
from rebalancer.model import CLIENT_ORDER_PREFIX, OrderAction, Plan, Target

D = Decimal


def _diff(
    tgt: Target,
    quotes: list[Quote],
    positions: list[Position] | None = None,
    *,
    equity: str = "1000000",
    bps: int = 5,
    min_trade: str = "100",
) -> Plan:
    return compute_diff(
        run_id="run-1",
        equity=D(equity),
        positions=positions or [],
        target=tgt,
        quotes={q.symbol: q for q in quotes},
        limit_offset_bps=bps,
        min_trade_usd=D(min_trade),
    )


def test_open_long_sized_by_truncation_and_priced_off_the_ask() -> None:
    """$1M × 0.5 at a $185 mid is 2702 shares, bought at ask + 5 bps rounded up."""
    plan = _diff(target(("AAPL", "0.5")), [quote("AAPL", "184.99", "185.01")])
    (order,) = plan.orders
    assert (order.action, order.side, order.quantity) == (OrderAction.BUY, Side.BUY, 2702)
    assert order.description == "open"
    assert order.reference_price == D("185")
    assert order.limit_price == D("185.11")
    assert order.notional == 2702 * D("185.11")
    assert (order.current_quantity, order.target_quantity) == (0, 2702)
    assert plan.skipped == ()


def test_increase_existing_long() -> None:
    """With 100 shares held the same target buys 2602 more."""
    plan = _diff(
        target(("AAPL", "0.5")), [quote("AAPL", "184.99", "185.01")], [position("AAPL", 100)]
    )
    assert [(o.quantity, o.description) for o in plan.orders] == [(2602, "increase")]


def test_open_short_priced_off_the_bid() -> None:
    """A −10% SPY weight at $430 sells 232 short at bid − 5 bps rounded down."""
    plan = _diff(target(("SPY", "-0.10")), [quote("SPY", "429.99", "430.01")])
    (order,) = plan.orders
    assert (order.action, order.side, order.quantity) == (OrderAction.SELL_SHORT, Side.SELL, 232)
    assert order.limit_price == D("429.77")
    assert order.description == "open short"


def test_flip_is_one_order() -> None:
    """Long 100 to a −10% target at $100 on $100k is one SELL of 200 shares."""
    plan = _diff(
        target(("AAPL", "-0.1")), [quote("AAPL", "99.99", "100.01")], [position("AAPL", 100)],
        equity="100000",
    )
    assert [(o.action, o.quantity, o.description) for o in plan.orders] == [
        (OrderAction.SELL, 200, "flip to short")
    ]


def test_holdings_not_in_target_are_closed_whatever_their_size() -> None:
    """A $50 long and a short not in the target are closed in full despite a $1000 minimum."""
    plan = _diff(
        target(("AAPL", "0.1")),
        [quote("AAPL", "99.99", "100.01"), quote("XOM", "49.99", "50.01"),
         quote("TLT", "90", "90.02")],
        [position("XOM", 1), position("TLT", -3)],
        min_trade="1000",
    )
    closes = [(o.symbol, o.action, o.quantity, o.description, o.limit_price) for o in plan.orders
              if o.symbol != "AAPL"]
    assert closes == [
        ("XOM", OrderAction.SELL, 1, "close long", D("49.96")),
        ("TLT", OrderAction.BUY_COVER, 3, "close short", D("90.07")),
    ]


def test_trade_below_minimum_is_skipped_with_exact_reason() -> None:
    """Buying 1 share of a $50 stock under a $100 minimum gives an exact skip reason."""
    plan = _diff(
        target(("XOM", "0.5")), [quote("XOM", "49.99", "50.01")], [position("XOM", 9999)],
        equity="1000000",
    )
    assert plan.orders == ()
    assert [(s.symbol, s.reason) for s in plan.skipped] == [
        ("XOM", "BUY 1 ($50.04) is below min_trade_usd $100.00")
    ]


@pytest.mark.parametrize(
    ("quotes", "held", "reason"),
    [
        ([], [], "no quote"),
        ([quote("AAPL", None, "10")], [], "unusable quote: no bid"),
        ([quote("AAPL", "10.02", "10.01")], [],
         "unusable quote: crossed book: bid 10.02 > ask 10.01"),
        ([], [position("AAPL", 5)], "no quote"),
    ],
)
def test_symbols_without_usable_quote_are_skipped(
    quotes: list[Quote], held: list[Position], reason: str
) -> None:
    """No quote, a one-sided or a crossed book: the symbol is skipped with the reason."""
    plan = _diff(target(("AAPL", "0.1")), quotes, held)
    assert plan.orders == ()
    assert [(s.symbol, s.reason) for s in plan.skipped] == [("AAPL", reason)]


def test_unpriced_holding_outside_target_is_reported() -> None:
    """A holding to close without a quote is skipped and says it cannot be closed."""
    plan = _diff(target(("AAPL", "0.1")), [quote("AAPL", "99.99", "100.01")], [position("XOM", 5)])
    assert [(s.symbol, s.reason) for s in plan.skipped] == [
        ("XOM", "cannot close (not in the target): no quote")
    ]


def test_non_positive_equity_orders_nothing() -> None:
    """With zero equity nothing is ordered and every symbol says why."""
    plan = _diff(target(("AAPL", "0.5")), [quote("AAPL", "99", "101")], [position("MSFT", 3)],
                 equity="0")
    assert plan.orders == ()
    assert [(s.symbol, s.reason) for s in plan.skipped] == [
        ("AAPL", "equity $0.00 is not positive"), ("MSFT", "equity $0.00 is not positive"),
    ]


def test_duplicate_position_rows_are_summed() -> None:
    """Two broker rows for one symbol count as one net position."""
    plan = _diff(
        target(("AAPL", "0.1")), [quote("AAPL", "99.99", "100.01")],
        [position("AAPL", 600), position("AAPL", 400)], equity="1000000",
    )
    assert plan.orders == ()


def test_sells_come_before_buys() -> None:
    """Sells (including short sales) are first, then buys, each group by symbol."""
    plan = _diff(
        target(("AAPL", "0.2"), ("MSFT", "0.2"), ("XOM", "0.1")),
        [quote(s, "99.99", "100.01") for s in ("AAPL", "MSFT", "XOM", "GLD", "ZZZ")],
        [position("XOM", 5000), position("GLD", 10), position("ZZZ", -10)],
    )
    assert [(o.symbol, o.action) for o in plan.orders] == [
        ("GLD", OrderAction.SELL),
        ("XOM", OrderAction.SELL),
        ("AAPL", OrderAction.BUY),
        ("MSFT", OrderAction.BUY),
        ("ZZZ", OrderAction.BUY_COVER),
    ]


@pytest.mark.parametrize(
    ("current", "wanted", "action", "description"),
    [
        (0, 10, OrderAction.BUY, "open"),
        (5, 10, OrderAction.BUY, "increase"),
        (10, 5, OrderAction.SELL, "decrease"),
        (10, 0, OrderAction.SELL, "close long"),
        (10, -5, OrderAction.SELL, "flip to short"),
        (0, -5, OrderAction.SELL_SHORT, "open short"),
        (-5, -10, OrderAction.SELL_SHORT, "increase short"),
        (-10, -5, OrderAction.BUY_COVER, "decrease short"),
        (-10, 0, OrderAction.BUY_COVER, "close short"),
        (-10, 5, OrderAction.BUY_COVER, "flip to long"),
    ],
)
def test_classification_table(
    current: int, wanted: int, action: OrderAction, description: str
) -> None:
    """Every row of the action table, including both flips."""
    assert classify(current, wanted) == (action, description)


def test_classify_refuses_no_trade() -> None:
    """Equal current and target is not a trade."""
    with pytest.raises(ValueError, match="no trade"):
        classify(3, 3)


def test_client_order_id_is_deterministic_and_short() -> None:
    """Same inputs give the same printable id under 40 characters; any change gives another."""
    a = client_order_id(run_id="r1", symbol="AAPL", side=Side.BUY, quantity=100)
    assert a == client_order_id(run_id="r1", symbol="AAPL", side=Side.BUY, quantity=100)
    assert a.startswith(CLIENT_ORDER_PREFIX)
    assert len(a) == 36
    assert a.isascii()
    assert a.isprintable()
    others = {
        client_order_id(run_id="r2", symbol="AAPL", side=Side.BUY, quantity=100),
        client_order_id(run_id="r1", symbol="MSFT", side=Side.BUY, quantity=100),
        client_order_id(run_id="r1", symbol="AAPL", side=Side.SELL, quantity=100),
        client_order_id(run_id="r1", symbol="AAPL", side=Side.BUY, quantity=101),
    }
    assert a not in others
    assert len(others) == 4


def test_client_order_id_vector() -> None:
    """The id recipe is pinned (recovery re-derives ids from the log)."""
    assert client_order_id(run_id="r1", symbol="AAPL", side=Side.BUY, quantity=100) == (
        "rb1-" + _digest("rb1\x00r1\x00AAPL\x00BUY\x00100")
    )


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:32]


@pytest.mark.parametrize(
    ("q", "mid"),
    [
        (quote("A", "10", "10.02"), D("10.01")),
        (quote("A", "10", "10"), D("10")),
        (quote("A", None, "10"), None),
        (quote("A", "0", "10"), None),
        (quote("A", "10.03", "10.02"), None),
    ],
)
def test_mid_price(q: Quote, mid: Decimal | None) -> None:
    """The mid needs both sides positive and uncrossed."""
    assert mid_price(q) == mid


# --- properties ----------------------------------------------------------------------------

UNIVERSE = ("AAPL", "GLD", "JPM", "MSFT", "SPY", "TLT", "XOM")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One generated account state: target, quotes, holdings, equity and limit offset."""

    target: Target
    quotes: dict[str, Quote]
    held: list[Position]
    equity: Decimal
    bps: int

    def diff(self, min_trade: Decimal, held: list[Position] | None = None) -> Plan:
        """The plan for this state (or for ``held`` instead of the generated holdings)."""
        return compute_diff(
            run_id="prop", equity=self.equity, positions=self.held if held is None else held,
            target=self.target, quotes=self.quotes, limit_offset_bps=self.bps,
            min_trade_usd=min_trade,
        )


@st.composite
def _scenario(draw: st.DrawFn) -> Scenario:
    names = draw(st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=5, unique=True))
    raw = [draw(st.integers(-50, 50).filter(lambda n: n != 0)) for _ in names]
    scale = max(sum(n for n in raw if n > 0), 100)
    weights = [(s, str(D(n) / scale)) for s, n in zip(names, raw, strict=True)]
    quotes = {}
    for s in UNIVERSE:
        if draw(st.integers(0, 9)) == 0:
            continue  # no quote for this symbol
        bid = draw(st.decimals(min_value=D("1"), max_value=D("1000"), places=2))
        spread = draw(st.decimals(min_value=D("0"), max_value=D("0.50"), places=2))
        quotes[s] = quote(s, str(bid), str(bid + spread))
    held = [position(s, q) for s in UNIVERSE if (q := draw(st.integers(-2000, 2000))) != 0]
    return Scenario(
        target=target(*weights),
        quotes=quotes,
        held=held,
        equity=draw(st.decimals(min_value=D("1000"), max_value=D("10000000"), places=2)),
        bps=draw(st.integers(0, 50)),
    )


def _apply(positions: list[Position], plan: Plan) -> list[Position]:
    after = {p.symbol: p.quantity for p in positions}
    for o in plan.orders:
        sign = 1 if o.side is Side.BUY else -1
        after[o.symbol] = after.get(o.symbol, 0) + sign * o.quantity
    return [position(s, q) for s, q in sorted(after.items()) if q != 0]


_MINIMUMS = st.sampled_from([D("0"), D("100"), D("5000")])


@settings(max_examples=200, deadline=None)
@given(sc=_scenario(), min_trade=_MINIMUMS)
def test_orders_are_integral_ordered_and_above_minimum(sc: Scenario, min_trade: Decimal) -> None:
    """Orders have positive integer shares, sells first, and meet the minimum unless closing."""
    plan = sc.diff(min_trade)
    in_target = {t.symbol for t in sc.target.targets}
    for o in plan.orders:
        assert isinstance(o.quantity, int)
        assert o.quantity > 0
        assert o.notional == o.quantity * o.limit_price
        if o.symbol in in_target:
            assert o.notional >= min_trade
        else:
            assert o.target_quantity == 0
    sides = [o.side for o in plan.orders]
    assert sides == sorted(sides, key=lambda s: s is Side.BUY)
    assert len({o.symbol for o in plan.orders}) == len(plan.orders)


@settings(max_examples=200, deadline=None)
@given(sc=_scenario())
def test_post_trade_value_within_one_share_of_target(sc: Scenario) -> None:
    """Filled at the reference price, each quoted symbol ends within one share of its target."""
    after = {p.symbol: p.quantity for p in _apply(sc.held, sc.diff(D("0")))}
    weights = {t.symbol: t.weight for t in sc.target.targets}
    for symbol in set(weights) | set(after):
        mid = mid_price(sc.quotes.get(symbol))
        if mid is None:
            continue
        with localcontext() as ctx:
            ctx.prec = 200  # exact: the default 28 digits can round the target value up
            wanted = sc.equity * weights.get(symbol, D(0))
            held_value = after.get(symbol, 0) * mid
            assert abs(held_value - wanted) < mid
        assert abs(held_value) <= abs(wanted)  # never overshoots


@settings(max_examples=200, deadline=None)
@given(sc=_scenario(), min_trade=_MINIMUMS)
def test_second_diff_after_fills_is_empty(sc: Scenario, min_trade: Decimal) -> None:
    """Diffing again on the post-trade positions (same equity and quotes) orders nothing."""
    after = _apply(sc.held, sc.diff(min_trade))
    assert sc.diff(min_trade, after).orders == ()
