"""Pre-trade risk checks over the plan (pure).

Exposure is evaluated **after** the trades: every order is assumed filled in full, and each
symbol is valued at the mid of its quote (falling back to the last price, then to the average
cost, with a warning). Fractions are of the pre-trade net liquidation (``equity``). ``risk``
is the *effective* limit set (``rebalancer.target.effective_risk``: the config tightened by the
target's constraints). Checks, in report order; only FAIL blocks a run:

==================  ===========================================================================
Equity              FAIL unless equity > 0 (every ratio below FAILs too when it is not)
Quote sanity        FAIL unless every ordered symbol has bid > 0, ask > 0, bid <= ask and a
                    spread <= ``max_spread_bps``, and every limit is positive
Valuation           WARN when a post-trade holding has no mid and is valued at last/avg cost;
                    FAIL when it cannot be valued at all
Max position        FAIL when any symbol's post-trade |value| / equity > ``max_position_pct``
Leverage            FAIL when post-trade gross value / equity > ``max_leverage``
Short selling       FAIL when a post-trade position is short and shorting is not allowed
                    (``allow_short`` false, or a cash account)
Short exposure      FAIL when post-trade short value / equity > ``max_short_pct``
Max trade value     FAIL when any order's notional (quantity × limit) > ``max_trade_usd``
Min trade value     FAIL when an order's notional < ``min_trade_usd``, except an order that
                    closes a position to zero (leaving dust behind is worse than a small trade)
Order count         FAIL when the plan has more than ``max_orders_per_run`` orders
Cash sufficiency    buys at limit + estimated costs vs cash + proceeds of selling longs at
                    limit. Cash account: FAIL when short. Margin account: WARN (borrowing)
Weight allocation   PASS, informational: post-trade long, short and cash fractions
==================  ===========================================================================
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

from rebalancer.config import AccountType
from rebalancer.diff import mid_price, net_positions
from rebalancer.model import CheckStatus, OrderAction, RiskCheck, RiskReport
from rebalancer.money import bps_of, fmt_pct, fmt_ratio, fmt_usd, to_cents_up
from rebalancer.quotegate import book_problem

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from brokers.types import Position, Quote
    from rebalancer.config import CostConfig, RiskConfig
    from rebalancer.model import Plan, PlannedOrder

MAX_LISTED = 5
"""Offenders named in one check's detail before "and N more"."""

_ZERO = Decimal(0)
_SIGN = {
    OrderAction.BUY: 1,
    OrderAction.BUY_COVER: 1,
    OrderAction.SELL: -1,
    OrderAction.SELL_SHORT: -1,
}
_NOT_POSITIVE = "equity is not positive"


def estimate_costs(plan: Plan, cost: CostConfig) -> Decimal:
    """Estimated commissions plus slippage of the whole plan, rounded up to cents.

    Per order: ``max(commission_per_share × shares, commission_min)`` plus
    ``slippage_bps`` of the notional.
    """
    total = _ZERO
    for order in plan.orders:
        commission = max(cost.commission_per_share * order.quantity, cost.commission_min)
        total += commission + bps_of(order.notional, cost.slippage_bps)
    return to_cents_up(total)


def post_trade_quantities(plan: Plan, positions: Sequence[Position]) -> dict[str, int]:
    """Signed quantity per symbol once every order of the plan has filled in full."""
    after = net_positions(positions)
    for order in plan.orders:
        after[order.symbol] = after.get(order.symbol, 0) + _SIGN[order.action] * order.quantity
    return {s: q for s, q in after.items() if q != 0}


_EXACT_PRECISION = 1000


def check_risk(
    *,
    plan: Plan,
    equity: Decimal,
    cash: Decimal,
    positions: Sequence[Position],
    quotes: Mapping[str, Quote],
    risk: RiskConfig,
    account_type: AccountType,
    cost: CostConfig,
    max_spread_bps: int,
    max_orders_per_run: int,
) -> RiskReport:
    """Run every check (see the module docstring) and return them all, in order."""
    if not (equity.is_finite() and cash.is_finite()):
        detail = f"net liquidation {equity}, cash {cash}: not finite numbers"
        return RiskReport(checks=(_check("Equity", False, detail),))
    with localcontext() as ctx:
        # Exact comparisons: the default 28 digits could round a breach into a pass.
        ctx.prec = _EXACT_PRECISION
        after = post_trade_quantities(plan, positions)
        prices, valuation = _valuation(after, positions, quotes)
        values = {s: q * prices[s] for s, q in after.items() if s in prices}
        checks = [
            _equity(equity),
            _quote_sanity(plan, quotes, max_spread_bps),
            valuation,
            _max_position(values, equity, risk.max_position_pct),
            _leverage(values, equity, risk.max_leverage),
            *_shorts(after, values, equity, risk, account_type),
            _max_trade(plan, risk.max_trade_usd),
            _min_trade(plan, risk.min_trade_usd),
            _order_count(plan, max_orders_per_run),
            _cash(plan, cash, account_type, estimate_costs(plan, cost)),
            _allocation(values, equity),
        ]
    return RiskReport(checks=tuple(checks))


def _check(name: str, ok: bool, detail: str, *, fail: CheckStatus = CheckStatus.FAIL) -> RiskCheck:
    return RiskCheck(name=name, status=CheckStatus.PASS if ok else fail, detail=detail)


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown if more <= 0 else f"{shown}; and {more} more"


def _equity(equity: Decimal) -> RiskCheck:
    if equity > 0:
        return _check("Equity", True, f"{fmt_usd(equity)} net liquidation")
    return _check("Equity", False, f"{fmt_usd(equity)} net liquidation: {_NOT_POSITIVE}")


def _quote_sanity(
    plan: Plan, quotes: Mapping[str, Quote], max_spread_bps: int
) -> RiskCheck:
    problems: list[str] = []
    for order in plan.orders:
        quote = quotes.get(order.symbol)
        problem = (
            "no quote" if quote is None
            else book_problem(quote.bid, quote.ask, max_spread_bps=max_spread_bps)
        )
        if problem is None and order.limit_price <= 0:
            problem = f"limit {order.limit_price} is not positive"
        if problem is not None:
            problems.append(f"{order.symbol}: {problem}")
    if problems:
        return _check("Quote sanity", False, _listed(problems))
    n = len({o.symbol for o in plan.orders})
    return _check(
        "Quote sanity", True, f"{n} ordered symbols, spreads <= {max_spread_bps} bps"
    )


def _valuation(
    after: Mapping[str, int], positions: Sequence[Position], quotes: Mapping[str, Quote]
) -> tuple[dict[str, Decimal], RiskCheck]:
    avg_cost = {p.symbol: p.avg_cost for p in positions}
    prices: dict[str, Decimal] = {}
    fallbacks: list[str] = []
    unpriced: list[str] = []
    for symbol in sorted(after):
        quote = quotes.get(symbol)
        mid = mid_price(quote)
        if mid is not None:
            prices[symbol] = mid
        elif quote is not None and quote.last is not None and _usable_price(quote.last):
            prices[symbol] = quote.last
            fallbacks.append(f"{symbol} at last {quote.last}")
        elif _usable_price(avg_cost.get(symbol)):
            prices[symbol] = avg_cost[symbol]
            fallbacks.append(f"{symbol} at average cost {avg_cost[symbol]}")
        else:
            unpriced.append(f"{symbol} has no price")
    if unpriced:
        return prices, _check("Valuation", False, _listed(unpriced + fallbacks))
    if fallbacks:
        return prices, _check(
            "Valuation", False, "no mid: " + _listed(fallbacks), fail=CheckStatus.WARN
        )
    return prices, _check("Valuation", True, f"{len(after)} post-trade holdings valued at mid")


def _usable_price(price: Decimal | None) -> bool:
    # A broker may hand over NaN or Infinity (an unset IB double): never a price.
    return price is not None and price.is_finite() and price > 0


def _ratio(value: Decimal, equity: Decimal) -> Decimal | None:
    return value / equity if equity > 0 else None


def _max_position(
    values: Mapping[str, Decimal], equity: Decimal, limit: Decimal
) -> RiskCheck:
    if equity <= 0:
        return _check("Max position", False, _NOT_POSITIVE)
    if not values:
        detail = f"no positions after the trades; {fmt_pct(limit)} limit"
        return _check("Max position", True, detail)
    weights = sorted(
        ((abs(v) / equity, s) for s, v in values.items()), key=lambda ws: (-ws[0], ws[1])
    )
    cap = limit * equity
    over = [
        f"{s} {fmt_pct(w)} > {fmt_pct(limit)} limit"
        for w, s in weights
        if abs(values[s]) > cap
    ]
    if over:
        return _check("Max position", False, _listed(over))
    w, s = weights[0]
    return _check("Max position", True, f"{s} {fmt_pct(w)} <= {fmt_pct(limit)} limit")


def _leverage(values: Mapping[str, Decimal], equity: Decimal, limit: Decimal) -> RiskCheck:
    gross_value = sum((abs(v) for v in values.values()), _ZERO)
    gross = _ratio(gross_value, equity)
    if gross is None:
        return _check("Leverage", False, _NOT_POSITIVE)
    ok = gross_value <= limit * equity
    rel = "<=" if ok else ">"
    return _check("Leverage", ok, f"{fmt_ratio(gross)} {rel} {fmt_ratio(limit)} limit")


def _shorts(
    after: Mapping[str, int],
    values: Mapping[str, Decimal],
    equity: Decimal,
    risk: RiskConfig,
    account_type: AccountType,
) -> tuple[RiskCheck, RiskCheck]:
    shorts = sorted(s for s, q in after.items() if q < 0)
    allowed = risk.allow_short and account_type is AccountType.MARGIN
    if shorts and not allowed:
        why = "a cash account" if account_type is AccountType.CASH else "risk.allow_short = false"
        named = _listed([f"{s} {after[s]}" for s in shorts])
        selling = _check("Short selling", False, f"short after the trades: {named} ({why})")
    elif shorts:
        selling = _check("Short selling", True, f"allowed; {len(shorts)} short positions")
    else:
        selling = _check("Short selling", True, "no short positions after the trades")
    short_value = sum((-values[s] for s in shorts if s in values), _ZERO)
    ratio = _ratio(short_value, equity)
    limit = risk.max_short_pct
    if ratio is None:
        exposure = _check("Short exposure", False, _NOT_POSITIVE)
    else:
        ok = short_value <= limit * equity
        rel = "<=" if ok else ">"
        exposure = _check(
            "Short exposure", ok, f"{fmt_pct(ratio)} {rel} {fmt_pct(limit)} limit"
        )
    return selling, exposure


def _max_trade(plan: Plan, limit: Decimal) -> RiskCheck:
    if not plan.orders:
        return _check("Max trade value", True, "no orders")
    over = [
        f"{o.symbol} {fmt_usd(o.notional)} > {fmt_usd(limit)} max_trade_usd"
        for o in plan.orders
        if o.notional > limit
    ]
    if over:
        return _check("Max trade value", False, _listed(over))
    top = max(plan.orders, key=lambda o: (o.notional, o.symbol))
    detail = f"largest {top.symbol} {fmt_usd(top.notional)} <= {fmt_usd(limit)} limit"
    return _check("Max trade value", True, detail)


def _min_trade(plan: Plan, limit: Decimal) -> RiskCheck:
    sized = [o for o in plan.orders if not _closes(o)]
    under = [
        f"{o.symbol} {fmt_usd(o.notional)} < {fmt_usd(limit)} min_trade_usd"
        for o in sized
        if o.notional < limit
    ]
    if under:
        return _check("Min trade value", False, _listed(under))
    if not sized:
        return _check("Min trade value", True, "no orders other than closes")
    low = min(sized, key=lambda o: (o.notional, o.symbol))
    return _check(
        "Min trade value",
        True,
        f"smallest {low.symbol} {fmt_usd(low.notional)} >= {fmt_usd(limit)} limit (closes exempt)",
    )


def _closes(order: PlannedOrder) -> bool:
    return order.target_quantity == 0


def _order_count(plan: Plan, limit: int) -> RiskCheck:
    n = len(plan.orders)
    if n > limit:
        return _check("Order count", False, f"{n} orders > {limit} max_orders_per_run")
    return _check("Order count", True, f"{n} orders <= {limit} limit")


def _cash(plan: Plan, cash: Decimal, account_type: AccountType, costs: Decimal) -> RiskCheck:
    buys = sum((o.notional for o in plan.orders if _SIGN[o.action] > 0), _ZERO)
    # Only the part of a sell that reduces a long position raises cash a cash account may use.
    proceeds = sum(
        (
            min(o.quantity, max(o.current_quantity, 0)) * o.limit_price
            for o in plan.orders
            if o.action is OrderAction.SELL
        ),
        _ZERO,
    )
    need, have = buys + costs, cash + proceeds
    text = (
        f"buys {fmt_usd(buys)} + est. costs {fmt_usd(costs)} "
        f"{'<=' if need <= have else '>'} cash {fmt_usd(cash)} + sell proceeds {fmt_usd(proceeds)}"
    )
    if need <= have:
        return _check("Cash sufficiency", True, text)
    if account_type is AccountType.CASH:
        return _check("Cash sufficiency", False, text)
    return _check(
        "Cash sufficiency", False, f"{text} (margin account: the difference is borrowed)",
        fail=CheckStatus.WARN,
    )


def _allocation(values: Mapping[str, Decimal], equity: Decimal) -> RiskCheck:
    if equity <= 0:
        return _check("Weight allocation", True, _NOT_POSITIVE)
    long = sum((v for v in values.values() if v > 0), _ZERO) / equity
    short = -sum((v for v in values.values() if v < 0), _ZERO) / equity
    cash = 1 - long + short
    return _check(
        "Weight allocation",
        True,
        f"{fmt_pct(long)} long, {fmt_pct(short)} short, {fmt_pct(cash)} cash",
    )
