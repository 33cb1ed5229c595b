"""Pre-trade risk checks on post-trade exposure: each check passes, warns or fails exactly."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from core_factories import position, quote, target

from brokers.types import Position, Quote, Side
from rebalancer.config import AccountType, CostConfig, RiskConfig
from rebalancer.diff import compute_diff
from rebalancer.model import CheckStatus, OrderAction, Plan, PlannedOrder
from rebalancer.risk import check_risk, estimate_costs, post_trade_quantities

D = Decimal
PASS, WARN, FAIL = CheckStatus.PASS, CheckStatus.WARN, CheckStatus.FAIL
NAMES = [
    "Equity", "Quote sanity", "Valuation", "Max position", "Leverage", "Short selling",
    "Short exposure", "Max trade value", "Min trade value", "Order count", "Cash sufficiency",
    "Weight allocation",
]
MARGIN_SHORTS = replace(RiskConfig(), allow_short=True, max_leverage=D("2"))


def order(
    symbol: str, action: OrderAction, quantity: int, limit: str = "100",
    *, current: int = 0, wanted: int | None = None,
) -> PlannedOrder:
    """A planned order with a $100 reference price."""
    sign = 1 if action in (OrderAction.BUY, OrderAction.BUY_COVER) else -1
    return PlannedOrder(
        client_order_id=f"rb1-{symbol}",
        symbol=symbol,
        side=Side.BUY if sign > 0 else Side.SELL,
        action=action,
        quantity=quantity,
        limit_price=D(limit),
        reference_price=D("100"),
        notional=quantity * D(limit),
        current_quantity=current,
        target_quantity=current + sign * quantity if wanted is None else wanted,
        description="test",
    )


def _quotes(*symbols: str) -> dict[str, Quote]:
    return {s: quote(s, "99.99", "100.01") for s in symbols}


def _checks(
    plan: Plan,
    *,
    positions: list[Position] | None = None,
    quotes: dict[str, Quote] | None = None,
    equity: str = "100000",
    cash: str = "100000",
    risk: RiskConfig | None = None,
    account: AccountType = AccountType.CASH,
    max_orders: int = 50,
) -> dict[str, tuple[CheckStatus, str]]:
    symbols = {o.symbol for o in plan.orders} | {p.symbol for p in positions or []}
    report = check_risk(
        plan=plan, equity=D(equity), cash=D(cash), positions=positions or [],
        quotes=_quotes(*symbols) if quotes is None else quotes, risk=risk or RiskConfig(),
        account_type=account, cost=CostConfig(), max_spread_bps=100,
        max_orders_per_run=max_orders,
    )
    assert [c.name for c in report.checks] == NAMES
    return {c.name: (c.status, c.detail) for c in report.checks}


def test_sound_plan_passes_every_check_with_details() -> None:
    """A diff of a long-only target on a cash account passes, and the details say why."""
    quotes = _quotes("AAPL", "MSFT")
    plan = compute_diff(
        run_id="r", equity=D("100000"), positions=[],
        target=target(("AAPL", "0.2"), ("MSFT", "0.15")), quotes=quotes, limit_offset_bps=5,
        min_trade_usd=D("100"),
    )
    checks = _checks(plan, quotes=quotes)
    assert all(status is PASS for status, _ in checks.values())
    assert checks["Equity"] == (PASS, "$100,000.00 net liquidation")
    assert checks["Quote sanity"] == (PASS, "2 ordered symbols, spreads <= 100 bps")
    assert checks["Max position"] == (PASS, "AAPL 20.0% <= 25.0% limit")
    assert checks["Leverage"] == (PASS, "0.35x <= 1.00x limit")
    assert checks["Short selling"] == (PASS, "no short positions after the trades")
    assert checks["Max trade value"] == (PASS, "largest AAPL $20,014.00 <= $100,000.00 limit")
    assert checks["Min trade value"] == (
        PASS, "smallest MSFT $15,010.50 >= $100.00 limit (closes exempt)"
    )
    assert checks["Order count"] == (PASS, "2 orders <= 50 limit")
    assert checks["Cash sufficiency"] == (
        PASS, "buys $35,024.50 + est. costs $18.74 <= cash $100,000.00 + sell proceeds $0.00"
    )
    assert checks["Weight allocation"] == (PASS, "35.0% long, 0.0% short, 65.0% cash")


def test_non_positive_equity_fails_every_ratio() -> None:
    """With zero equity the equity check and every ratio check fail."""
    checks = _checks(Plan(orders=()), positions=[position("AAPL", 10)], equity="0")
    assert checks["Equity"] == (FAIL, "$0.00 net liquidation: equity is not positive")
    for name in ("Max position", "Leverage", "Short exposure"):
        assert checks[name] == (FAIL, "equity is not positive")


@pytest.mark.parametrize(
    ("q", "detail"),
    [
        (None, "AAPL: no quote"),
        (quote("AAPL", "99", "101"), "AAPL: spread 200.0 bps > 100 bps limit"),
        (quote("AAPL", "101", "100"), "AAPL: crossed book: bid 101 > ask 100"),
        (quote("AAPL", None, "100"), "AAPL: no bid"),
    ],
)
def test_quote_sanity_fails_for_ordered_symbol(q: Quote | None, detail: str) -> None:
    """An ordered symbol with a missing, wide, crossed or one-sided quote fails."""
    quotes = {} if q is None else {"AAPL": q}
    checks = _checks(Plan(orders=(order("AAPL", OrderAction.BUY, 10),)), quotes=quotes)
    assert checks["Quote sanity"] == (FAIL, detail)


def test_max_position_uses_post_trade_holdings() -> None:
    """A holding plus a buy above 25% of equity fails, naming the symbol and both figures."""
    plan = Plan(orders=(order("AAPL", OrderAction.BUY, 100, current=200),))
    checks = _checks(plan, positions=[position("AAPL", 200)])
    assert checks["Max position"] == (FAIL, "AAPL 30.0% > 25.0% limit")


def test_max_position_counts_holdings_without_orders() -> None:
    """An untouched oversized holding fails the check even when the plan does not trade it."""
    checks = _checks(Plan(orders=()), positions=[position("XOM", 400), position("JPM", 10)])
    assert checks["Max position"] == (FAIL, "XOM 40.0% > 25.0% limit")


def test_leverage_fails_above_limit() -> None:
    """Gross post-trade exposure above max_leverage fails."""
    risk = replace(RiskConfig(), max_position_pct=D("1"))
    checks = _checks(
        Plan(orders=()), positions=[position("AAPL", 600), position("MSFT", 600)], risk=risk,
        account=AccountType.MARGIN,
    )
    assert checks["Leverage"] == (FAIL, "1.20x > 1.00x limit")


@pytest.mark.parametrize(
    ("risk", "account", "detail"),
    [
        (RiskConfig(), AccountType.MARGIN,
         "short after the trades: SPY -50 (risk.allow_short = false)"),
        (MARGIN_SHORTS, AccountType.CASH, "short after the trades: SPY -50 (a cash account)"),
    ],
)
def test_short_selling_refused_when_not_allowed(
    risk: RiskConfig, account: AccountType, detail: str
) -> None:
    """A post-trade short fails unless shorting is allowed on a margin account."""
    plan = Plan(orders=(order("SPY", OrderAction.SELL_SHORT, 50),))
    checks = _checks(plan, risk=risk, account=account)
    assert checks["Short selling"] == (FAIL, detail)


def test_short_exposure_limit() -> None:
    """Allowed shorts pass selling but fail exposure above max_short_pct."""
    risk = replace(MARGIN_SHORTS, max_short_pct=D("0.1"))
    plan = Plan(orders=(order("SPY", OrderAction.SELL_SHORT, 200),))
    checks = _checks(plan, risk=risk, account=AccountType.MARGIN)
    assert checks["Short selling"] == (PASS, "allowed; 1 short positions")
    assert checks["Short exposure"] == (FAIL, "20.0% > 10.0% limit")


def test_max_trade_value_fails_not_warns() -> None:
    """An order above max_trade_usd is a FAIL naming the order."""
    risk = replace(RiskConfig(), max_trade_usd=D("5000"))
    checks = _checks(Plan(orders=(order("AAPL", OrderAction.BUY, 60),)), risk=risk)
    assert checks["Max trade value"] == (FAIL, "AAPL $6,000.00 > $5,000.00 max_trade_usd")


def test_min_trade_value_fails_except_closes() -> None:
    """A small order that leaves a position fails; a small close does not."""
    close = order("XOM", OrderAction.SELL, 1, current=1)
    at_minimum = _checks(Plan(orders=(order("AAPL", OrderAction.BUY, 1),)))
    assert at_minimum["Min trade value"][0] is PASS
    checks = _checks(Plan(orders=(close, order("AAPL", OrderAction.BUY, 1, "99"))),
                     positions=[position("XOM", 1)])
    assert checks["Min trade value"] == (FAIL, "AAPL $99.00 < $100.00 min_trade_usd")
    only_close = _checks(Plan(orders=(close,)), positions=[position("XOM", 1)])
    assert only_close["Min trade value"] == (PASS, "no orders other than closes")


def test_order_count_limit() -> None:
    """More orders than max_orders_per_run fails."""
    plan = Plan(orders=tuple(order(s, OrderAction.BUY, 10) for s in ("A", "B", "C")))
    assert _checks(plan, max_orders=2)["Order count"] == (FAIL, "3 orders > 2 max_orders_per_run")


def test_cash_account_cannot_buy_beyond_cash_and_proceeds() -> None:
    """A cash account fails when buys and costs exceed cash plus long-sale proceeds."""
    plan = Plan(orders=(order("XOM", OrderAction.SELL, 50, current=50),
                        order("AAPL", OrderAction.BUY, 200)))
    checks = _checks(plan, positions=[position("XOM", 50)], cash="14000")
    assert checks["Cash sufficiency"] == (
        FAIL, "buys $20,000.00 + est. costs $13.55 > cash $14,000.00 + sell proceeds $5,000.00"
    )
    enough = _checks(plan, positions=[position("XOM", 50)], cash="15100")
    assert enough["Cash sufficiency"][0] is PASS


def test_margin_account_shortfall_is_a_warning() -> None:
    """On a margin account a cash shortfall is borrowing: WARN, not FAIL."""
    plan = Plan(orders=(order("AAPL", OrderAction.BUY, 200),))
    checks = _checks(plan, cash="1000", account=AccountType.MARGIN)
    assert checks["Cash sufficiency"] == (
        WARN, "buys $20,000.00 + est. costs $10.70 > cash $1,000.00 + sell proceeds $0.00 "
        "(margin account: the difference is borrowed)"
    )


def test_short_sale_proceeds_do_not_fund_buys() -> None:
    """Only the long part of a flip's sale counts as proceeds."""
    flip = order("XOM", OrderAction.SELL, 30, current=10)
    checks = _checks(Plan(orders=(flip,)), positions=[position("XOM", 10)], cash="0",
                     risk=MARGIN_SHORTS, account=AccountType.MARGIN)
    assert checks["Cash sufficiency"][1].endswith("sell proceeds $1,000.00")


def test_valuation_falls_back_with_warning_and_fails_without_price() -> None:
    """A holding without a mid is valued at last/average cost (WARN); none at all FAILs."""
    quotes = {"XOM": quote("XOM", None, None, last="50")}
    warn = _checks(Plan(orders=()), positions=[position("XOM", 10), position("JPM", 5, "80")],
                   quotes=quotes)
    assert warn["Valuation"] == (WARN, "no mid: JPM at average cost 80; XOM at last 50")
    fail = _checks(Plan(orders=()), positions=[position("JPM", 5, "0")], quotes={})
    assert fail["Valuation"] == (FAIL, "JPM has no price")


def test_estimate_costs_commission_floor_and_slippage() -> None:
    """Commission is per share with a floor; slippage is bps of notional; rounded up to cents."""
    plan = Plan(orders=(order("A", OrderAction.BUY, 10), order("B", OrderAction.BUY, 1000)))
    # A: max(0.035, 0.35) + 1000*5bps = 0.35 + 0.50; B: 3.50 + 100000*5bps = 3.50 + 50
    assert estimate_costs(plan, CostConfig()) == D("54.35")
    assert estimate_costs(Plan(orders=()), CostConfig()) == D("0.00")


def test_post_trade_quantities() -> None:
    """Orders are applied with their sign; closed positions disappear."""
    plan = Plan(orders=(order("A", OrderAction.SELL, 5, current=5),
                        order("B", OrderAction.SELL_SHORT, 3), order("C", OrderAction.BUY, 2)))
    assert post_trade_quantities(plan, [position("A", 5), position("C", 1)]) == {"B": -3, "C": 3}
