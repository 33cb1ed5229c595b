"""Risk-check properties: a passing report keeps every documented limit, exactly, and never lies.

Scenarios (equity, cash, holdings, quotes, target) go through ``compute_diff`` and then
``check_risk`` with random limits. Every bound is recomputed here in exact ``Decimal``
arithmetic (a 200-digit context), independently of the module's own sums.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, localcontext

from core_factories import position, quote, target
from hypothesis import event, given, settings
from hypothesis import strategies as st

from brokers.types import Position, Quote
from rebalancer.config import AccountType, CostConfig, RiskConfig
from rebalancer.diff import compute_diff
from rebalancer.model import CheckStatus, OrderAction, Plan, RiskReport, Target
from rebalancer.risk import check_risk, estimate_costs

D = Decimal
UNIVERSE = ("AAPL", "GLD", "JPM", "MSFT", "SPY", "TLT", "XOM")
NAMES = (
    "Equity", "Quote sanity", "Valuation", "Max position", "Leverage", "Short selling",
    "Short exposure", "Max trade value", "Min trade value", "Order count", "Cash sufficiency",
    "Weight allocation",
)
RANK = {CheckStatus.PASS: 0, CheckStatus.WARN: 1, CheckStatus.FAIL: 2}
BUYS = frozenset({OrderAction.BUY, OrderAction.BUY_COVER})
WIDE = 200  # digits: every product and sum below is exact


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Everything ``check_risk`` is judged against besides the account state."""

    risk: RiskConfig
    account_type: AccountType
    cost: CostConfig
    max_spread_bps: int
    max_orders_per_run: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One account state, its plan and the limits it is checked under."""

    equity: Decimal
    cash: Decimal
    held: list[Position]
    quotes: dict[str, Quote]
    target: Target
    plan: Plan
    limits: Limits

    def report(self, limits: Limits | None = None) -> RiskReport:
        """``check_risk`` over this case (under ``limits`` instead of its own, when given)."""
        lim = self.limits if limits is None else limits
        return check_risk(
            plan=self.plan, equity=self.equity, cash=self.cash, positions=self.held,
            quotes=self.quotes, risk=lim.risk, account_type=lim.account_type, cost=lim.cost,
            max_spread_bps=lim.max_spread_bps, max_orders_per_run=lim.max_orders_per_run,
        )


def _money(lo: str, hi: str) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(lo), max_value=D(hi), places=2)


def _fraction(lo: str, hi: str) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(lo), max_value=D(hi), places=2)


@st.composite
def _quote(draw: st.DrawFn, symbol: str, *, sane: bool) -> Quote | None:
    kinds = ["good"] if sane else ["good", "good", "wide", "none", "one-sided", "zero",
                                   "crossed"]
    kind = draw(st.sampled_from(kinds))
    bid = draw(_money("1", "1000"))
    last = draw(st.one_of(st.none(), _money("-5", "1000")))
    text = None if last is None else str(last)
    if kind == "none":
        return None
    if kind == "one-sided":
        return quote(symbol, None, str(bid), last=text)
    if kind == "zero":
        return quote(symbol, "0", str(bid), last=text)
    if kind == "crossed":
        return quote(symbol, str(bid + D("0.05")), str(bid), last=text)
    spread = draw(_money("0", "0.50") if kind == "good" else _money("0.51", "50"))
    return quote(symbol, str(bid), str(bid + spread), last=text)


@st.composite
def _limits(draw: st.DrawFn, *, loose: bool) -> Limits:
    risk = RiskConfig(
        max_position_pct=D(1) if loose else draw(_fraction("0.01", "1")),
        max_leverage=D(10) if loose else draw(st.decimals(D(1), D(10), places=1)),
        min_trade_usd=draw(st.sampled_from([D(0), D(100), D(5000)])),
        max_trade_usd=D(10) ** 9 if loose else draw(_money("1", "10000000")),
        allow_short=draw(st.booleans()),
        max_short_pct=D(1) if loose else draw(_fraction("0", "1")),
    )
    cost = CostConfig(
        commission_per_share=draw(st.sampled_from([D(0), D("0.0035"), D("0.01")])),
        commission_min=draw(st.sampled_from([D(0), D("0.35"), D(1)])),
        slippage_bps=draw(st.integers(0, 20)),
    )
    return Limits(
        risk=risk,
        account_type=draw(st.sampled_from(AccountType)),
        cost=cost,
        max_spread_bps=10_000 if loose else draw(st.integers(1, 10_000)),
        max_orders_per_run=10_000 if loose else draw(st.integers(1, 10)),
    )


@st.composite
def _case(draw: st.DrawFn) -> Case:
    # A "sane" case (usable quotes, long only, equity = cash + holdings, loose limits) passes
    # often enough for the pass-side properties to be exercised; the rest is anything goes.
    sane = draw(st.booleans())
    names = draw(st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=5, unique=True))
    raw = [
        draw(st.integers(1, 50)) * (1 if sane else draw(st.sampled_from([1, 1, -1])))
        for _ in names
    ]
    scale = max(sum(n for n in raw if n > 0), 100)
    tgt = target(*((s, str(D(n) / scale)) for s, n in zip(names, raw, strict=True)))
    quotes = {s: q for s in UNIVERSE if (q := draw(_quote(s, sane=sane))) is not None}
    costs = [D(120)] if sane else [D(0), D("55.5"), D(120)]
    held = [
        position(s, n, str(draw(st.sampled_from(costs))))
        for s in UNIVERSE
        if (n := draw(st.integers(0 if sane else -2000, 2000))) != 0
    ]
    cash = draw(_money("0", "1000000") if sane else _money("-100000", "10000000"))
    if sane:
        mids = [_mid(quotes.get(p.symbol)) for p in held]
        equity = cash + sum((p.quantity * m for p, m in zip(held, mids, strict=True)
                             if m is not None), D(0))
    else:
        equity = draw(st.one_of(_money("1000", "10000000"), _money("-1000", "0")))
    limits = draw(_limits(loose=sane and draw(st.booleans())))
    plan = compute_diff(
        run_id="prop", equity=equity, positions=held, target=tgt, quotes=quotes,
        limit_offset_bps=draw(st.integers(0, 50)), min_trade_usd=limits.risk.min_trade_usd,
    )
    case = Case(equity=equity, cash=cash, held=held, quotes=quotes, target=tgt, plan=plan,
                limits=limits)
    if sane and plan.orders and draw(st.booleans()):
        case = _near_the_edge(draw, case)
    return case


def _near_the_edge(draw: st.DrawFn, case: Case) -> Case:
    """``case`` with its limits and cash moved to (just around) what the plan needs."""
    def nudge(x: Decimal) -> Decimal:
        return x + draw(st.sampled_from([D(0), D(0), D("1e-6"), D("-1e-6"), D("0.01")]))

    with localcontext() as ctx:
        ctx.prec = WIDE
        values = [n * _price(case, s) for s, n in _post_trade(case).items()]
        top = max((abs(v) for v in values), default=D(0))
        gross = sum((abs(v) for v in values), D(0))
        largest = max(o.notional for o in case.plan.orders)
        buys = sum((o.notional for o in case.plan.orders if o.action in BUYS), D(0))
        need = buys + estimate_costs(case.plan, case.limits.cost) - _long_proceeds(case)
    risk = replace(
        case.limits.risk,
        max_position_pct=min(max(nudge(_six(top / case.equity)), D("0.001")), D(1)),
        max_leverage=min(max(nudge(_six(gross / case.equity)), D(1)), D(10)),
        max_trade_usd=max(nudge(largest), D("0.01")),
    )
    count = len(case.plan.orders) + draw(st.sampled_from([-1, 0, 0, 1]))
    limits = replace(case.limits, risk=risk, max_orders_per_run=max(count, 1))
    return replace(case, limits=limits, cash=nudge(need))


def _six(ratio: Decimal) -> Decimal:
    """``ratio`` on a 6-decimal grid, as a limit typed into a config file would be."""
    return ratio.quantize(D("0.000001"))


def _long_proceeds(case: Case) -> Decimal:
    """Limit value of the shares sold out of long positions (short sales raise no usable cash)."""
    long_sold = [
        (o.current_quantity - max(o.target_quantity, 0), o.limit_price)
        for o in case.plan.orders
        if o.action is OrderAction.SELL and o.current_quantity > 0
    ]
    return sum((n * price for n, price in long_sold), D(0))


def _mid(q: Quote | None) -> Decimal | None:
    if q is None or q.bid is None or q.ask is None:
        return None
    if not (q.bid.is_finite() and q.ask.is_finite() and 0 < q.bid <= q.ask):
        return None
    return (q.bid + q.ask) / 2


def _post_trade(case: Case) -> dict[str, int]:
    after: dict[str, int] = {}
    for p in case.held:
        after[p.symbol] = after.get(p.symbol, 0) + p.quantity
    for o in case.plan.orders:
        after[o.symbol] = after.get(o.symbol, 0) + (o.quantity if o.action in BUYS else -o.quantity)
    return {s: n for s, n in after.items() if n != 0}


def _price(case: Case, symbol: str) -> Decimal:
    """Mid, else a positive last, else a positive average cost (the documented fallbacks)."""
    q = case.quotes.get(symbol)
    mid = _mid(q)
    if mid is not None:
        return mid
    if q is not None and q.last is not None and q.last > 0:
        return q.last
    cost = next(p.avg_cost for p in case.held if p.symbol == symbol)
    assert cost > 0  # else Valuation fails and the report cannot pass
    return cost


@settings(max_examples=250, deadline=None)
@given(case=_case())
def test_passing_report_keeps_every_exposure_and_order_limit(case: Case) -> None:
    """A passing report means each position, the gross book, each order and the count fit."""
    report = case.report()
    event(f"passed: {report.passed}")
    if not report.passed:
        return
    risk, equity = case.limits.risk, case.equity
    assert equity > 0
    with localcontext() as ctx:
        ctx.prec = WIDE
        values = [n * _price(case, s) for s, n in _post_trade(case).items()]
        for value in values:
            assert abs(value) <= risk.max_position_pct * equity
        assert sum((abs(v) for v in values), D(0)) <= risk.max_leverage * equity
        for o in case.plan.orders:
            assert o.quantity * o.limit_price <= risk.max_trade_usd
    assert len(case.plan.orders) <= case.limits.max_orders_per_run


@settings(max_examples=250, deadline=None)
@given(case=_case())
def test_passing_cash_account_never_shorts_nor_spends_beyond_cash_and_long_sales(
    case: Case,
) -> None:
    """Cash account and a pass: no short after the trades, and buys plus costs are funded."""
    cash_case = replace(case, limits=replace(case.limits, account_type=AccountType.CASH))
    passed = cash_case.report().passed
    event(f"passed: {passed}")
    if not passed:
        return
    assert all(n > 0 for n in _post_trade(cash_case).values())
    with localcontext() as ctx:
        ctx.prec = WIDE
        buys = sum((o.quantity * o.limit_price for o in case.plan.orders if o.action in BUYS),
                   D(0))
        proceeds = _long_proceeds(case)
        costs = estimate_costs(case.plan, case.limits.cost)
        assert costs >= 0
        assert buys + costs <= case.cash + proceeds


@settings(max_examples=250, deadline=None)
@given(case=_case())
def test_report_is_total_named_in_order_and_explained(case: Case) -> None:
    """Any well-formed input yields the twelve checks, in order, each with a status and detail."""
    report = case.report()
    assert tuple(c.name for c in report.checks) == NAMES
    for c in report.checks:
        assert c.status in RANK
        assert isinstance(c.detail, str)
        assert c.detail.strip()
    assert report.passed == all(c.status is not CheckStatus.FAIL for c in report.checks)


def _tighter(draw: st.DrawFn, limits: Limits) -> Limits:
    """``limits`` with exactly one of them made stricter (or left equal)."""
    risk = limits.risk
    which = draw(st.sampled_from([
        "max_position_pct", "max_leverage", "min_trade_usd", "max_trade_usd", "allow_short",
        "max_short_pct", "account_type", "max_spread_bps", "max_orders_per_run",
    ]))
    if which == "max_position_pct":
        new = draw(st.decimals(D("0.001"), risk.max_position_pct, places=3))
        return replace(limits, risk=replace(risk, max_position_pct=new))
    if which == "max_leverage":
        new = draw(st.decimals(D(1), risk.max_leverage, places=2))
        return replace(limits, risk=replace(risk, max_leverage=new))
    if which == "min_trade_usd":
        new = risk.min_trade_usd + draw(_money("0", "100000"))
        return replace(limits, risk=replace(risk, min_trade_usd=new))
    if which == "max_trade_usd":
        new = draw(st.decimals(D("0.01"), risk.max_trade_usd, places=2))
        return replace(limits, risk=replace(risk, max_trade_usd=new))
    if which == "allow_short":
        return replace(limits, risk=replace(risk, allow_short=False))
    if which == "max_short_pct":
        new = draw(st.decimals(D(0), risk.max_short_pct, places=3))
        return replace(limits, risk=replace(risk, max_short_pct=new))
    if which == "account_type":
        return replace(limits, account_type=AccountType.CASH)
    if which == "max_spread_bps":
        return replace(limits, max_spread_bps=draw(st.integers(1, limits.max_spread_bps)))
    return replace(limits, max_orders_per_run=draw(st.integers(1, limits.max_orders_per_run)))


@settings(max_examples=250, deadline=None)
@given(case=_case(), data=st.data())
def test_tightening_one_limit_never_turns_a_failure_into_a_pass(
    case: Case, data: st.DataObject
) -> None:
    """With the plan fixed, a stricter single limit leaves every check at least as bad."""
    tight = _tighter(data.draw, case.limits)
    before, after = case.report(), case.report(tight)
    event(f"passed before/after: {before.passed}/{after.passed}")
    for b, a in zip(before.checks, after.checks, strict=True):
        assert RANK[a.status] >= RANK[b.status], (b, a)
    if not before.passed:
        assert not after.passed
