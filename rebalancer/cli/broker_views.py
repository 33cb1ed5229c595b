"""Read-only broker views: ``status`` (is the broker there, what does the account hold in
cash, which of our orders are open) and ``positions`` (a table with market values and weights).

They talk to the broker directly, without the audit log: they change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from brokers.errors import BrokerError
from brokers.types import AccountSummary, OrderSnapshot, Position, Quote
from rebalancer.broker_factory import make_broker
from rebalancer.cli._common import (
    add_config_arg,
    add_json_arg,
    config_from_args,
    emit_json,
    say,
    warn,
)
from rebalancer.errors import RebalancerError
from rebalancer.exit_codes import ExitCode
from rebalancer.model import CLIENT_ORDER_PREFIX

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

    from brokers.base import Broker
    from rebalancer.config import Config

CLOSE_TIMEOUT_SECS = 5

T = TypeVar("T")


def register(sub: Any) -> None:
    """Add the ``status`` and ``positions`` commands."""
    status = sub.add_parser("status", help="broker reachable?, account, our open orders")
    add_config_arg(status)
    add_json_arg(status)
    status.set_defaults(handler=_status)
    positions = sub.add_parser("positions", help="positions with market value and weight")
    add_config_arg(positions)
    add_json_arg(positions)
    positions.set_defaults(handler=_positions)


@dataclass(frozen=True, slots=True, kw_only=True)
class _StatusView:
    summary: AccountSummary
    ours: tuple[OrderSnapshot, ...]
    others: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _PositionsView:
    summary: AccountSummary
    positions: tuple[Position, ...]
    quotes: dict[str, Quote]


async def _with_broker(cfg: Config, read: Callable[[Broker], Awaitable[T]]) -> T:
    # Its own client id: the runner's stays connected during a run (one connection per id).
    broker = make_broker(cfg, client_id=cfg.connection.view_client_id)
    with anyio.fail_after(cfg.connection.timeout_secs):
        await broker.connect()
    try:
        with anyio.fail_after(cfg.connection.timeout_secs):
            return await read(broker)
    finally:
        with anyio.move_on_after(CLOSE_TIMEOUT_SECS, shield=True):
            await broker.close()


async def _read_status(broker: Broker) -> _StatusView:
    summary = await broker.account_summary()
    orders = await broker.open_orders()
    ours = tuple(o for o in orders if o.client_order_id.startswith(CLIENT_ORDER_PREFIX))
    return _StatusView(summary=summary, ours=ours, others=len(orders) - len(ours))


async def _read_positions(broker: Broker) -> _PositionsView:
    summary = await broker.account_summary()
    held = await broker.positions()
    quotes = await broker.quotes([p.symbol for p in held]) if held else ()
    return _PositionsView(summary=summary, positions=held, quotes={q.symbol: q for q in quotes})


def _fetch(cfg: Config, read: Callable[[Broker], Awaitable[T]]) -> T | str:
    """The view, or the reason the broker could not be read."""
    try:
        return anyio.run(_with_broker, cfg, read)
    except BrokerError as exc:
        return str(exc)
    except TimeoutError:
        return f"no answer within {cfg.connection.timeout_secs} s"


def _local_state(cfg: Config) -> dict[str, Any]:
    """Runner, safety latch and last run, from the files beside the audit log (no broker)."""
    from rebalancer.audit.reader import read_log
    from rebalancer.runtime.latch import read_latch
    from rebalancer.runtime.runlock import holder_is_alive, lock_path, read_holder

    audit_dir = cfg.audit.dir
    runner: dict[str, Any] = {"alive": False}
    try:
        holder = read_holder(lock_path(audit_dir))
        if holder is not None and holder_is_alive(holder):
            runner = {"alive": True, "pid": holder.pid, "run_id": holder.run_id,
                      "started_at": holder.started_at.isoformat()}
    except (RebalancerError, OSError) as exc:
        runner = {"alive": None, "error": str(exc)}
    try:
        latch = read_latch(audit_dir)
    except (RebalancerError, OSError) as exc:
        latch_doc: dict[str, Any] = {"set": None, "error": str(exc)}
    else:
        latch_doc = {"set": latch is not None}
        if latch is not None:
            latch_doc["reasons"] = list(latch.reasons)
    last: dict[str, Any] | None = None
    if cfg.audit.path.is_file():
        try:
            run = read_log(cfg.audit.path).last_run
        except OSError as exc:
            last = {"error": f"cannot read the audit log: {exc.strerror or exc}"}
        else:
            if run is not None and run.started is not None:
                end = run.terminal
                state = "in progress or interrupted" if end is None else end.event
                if end is not None and end.text("status"):
                    state = f"{end.event} ({end.text('status')})"
                last = {"run_id": run.run_id, "started": run.started.fields.get("ts"),
                        "mode": run.started.fields.get("mode"), "state": state}
    return {"runner": runner, "safety_latch": latch_doc, "last_run": last}


def _say_local(local: dict[str, Any]) -> None:
    runner = local["runner"]
    if runner["alive"]:
        say(f"runner       running: pid {runner['pid']}, run {runner['run_id']}")
    elif runner["alive"] is None:
        say(f"runner       unknown: {runner['error']}")
    else:
        say("runner       not running")
    latch = local["safety_latch"]
    if latch["set"]:
        say("safety latch SET: " + "; ".join(latch["reasons"]))
    elif latch["set"] is None:
        say(f"safety latch unknown: {latch['error']}")
    else:
        say("safety latch clear")
    last = local["last_run"]
    if last is None:
        say("last run     none in the audit log")
    elif "error" in last:
        say(f"last run     {last['error']}")
    else:
        say(f"last run     {last['run_id']} ({last['mode']}): {last['state']}")


def _status(args: argparse.Namespace) -> ExitCode:
    cfg = config_from_args(args)
    local = _local_state(cfg)
    view = _fetch(cfg, _read_status)
    broker_doc: dict[str, Any] = {
        "kind": cfg.broker.kind.value,
        "client_id": cfg.connection.view_client_id,
        "reachable": not isinstance(view, str),
    }
    if isinstance(view, str):
        broker_doc["error"] = view
        if args.json:
            emit_json({"broker": broker_doc, "account": {"id": cfg.account.id}, **local})
        else:
            _say_local(local)
        warn(f"broker unreachable ({cfg.broker.kind.value}): {view}")
        return ExitCode.ERROR
    s = view.summary
    if args.json:
        emit_json(
            {
                "broker": broker_doc,
                "account": {
                    "id": s.account_id,
                    "currency": s.currency,
                    "net_liquidation": str(s.net_liquidation),
                    "cash": str(s.cash),
                    "buying_power": str(s.buying_power),
                },
                "open_orders": [_order_doc(o) for o in view.ours],
                "other_open_orders": view.others,
                **local,
            }
        )
        return ExitCode.OK
    _say_local(local)
    view_id = cfg.connection.view_client_id
    say(f"broker       {cfg.broker.kind.value}: reachable (client id {view_id})")
    say(f"account      {s.account_id} ({s.currency})")
    say(f"net liq      {_money(s.net_liquidation)}")
    say(f"cash         {_money(s.cash)}")
    say(f"open orders  {len(view.ours)} of ours, {view.others} others")
    for o in view.ours:
        say(
            f"  {o.client_order_id}  {o.side.value:<4} {o.quantity:>6} {o.symbol:<6} "
            f"@ {o.limit_price}  {o.status.value}  filled {o.filled}/{o.quantity}  "
            f"(order {o.order_id}, client {o.client_id})"
        )
    return ExitCode.OK


def _positions(args: argparse.Namespace) -> ExitCode:
    cfg = config_from_args(args)
    view = _fetch(cfg, _read_positions)
    if isinstance(view, str):
        warn(f"broker unreachable ({cfg.broker.kind.value}): {view}")
        return ExitCode.ERROR
    netliq = view.summary.net_liquidation
    rows = [_position_row(p, view.quotes.get(p.symbol), netliq) for p in view.positions]
    if args.json:
        emit_json(
            {
                "account": view.summary.account_id,
                "currency": view.summary.currency,
                "net_liquidation": str(netliq),
                "cash": str(view.summary.cash),
                "positions": rows,
            }
        )
        return ExitCode.OK
    say(f"account {view.summary.account_id}  net liq {_money(netliq)} {view.summary.currency}")
    say(f"{'SYMBOL':<8}{'QUANTITY':>10}{'AVG COST':>12}{'MKT VALUE':>15}{'WEIGHT':>9}")
    for row in rows:
        value = "n/a" if row["market_value"] is None else _money(Decimal(row["market_value"]))
        weight = "n/a" if row["weight"] is None else f"{Decimal(row['weight']) * 100:.2f}%"
        say(
            f"{row['symbol']:<8}{row['quantity']:>10}{row['avg_cost']:>12}{value:>15}{weight:>9}"
        )
    say(f"{'CASH':<8}{'':>10}{'':>12}{_money(view.summary.cash):>15}")
    return ExitCode.OK


def _position_row(p: Position, quote: Quote | None, netliq: Decimal) -> dict[str, Any]:
    price = _mark(quote)
    value = None if price is None else (p.quantity * price).quantize(Decimal("0.01"))
    weight = None
    if value is not None and netliq > 0:
        weight = str((value / netliq).quantize(Decimal("0.0001")))
    return {
        "symbol": p.symbol,
        "quantity": p.quantity,
        "avg_cost": str(p.avg_cost.quantize(Decimal("0.01"))),
        "market_price": None if price is None else str(price),
        "market_value": None if value is None else str(value),
        "weight": weight,
    }


def _mark(quote: Quote | None) -> Decimal | None:
    if quote is None:
        return None
    if quote.bid is not None and quote.ask is not None:
        return ((quote.bid + quote.ask) / 2).quantize(Decimal("0.0001"))
    return quote.last


def _order_doc(o: OrderSnapshot) -> dict[str, Any]:
    return {
        "client_order_id": o.client_order_id,
        "order_id": o.order_id,
        "perm_id": o.perm_id,
        "client_id": o.client_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "quantity": o.quantity,
        "limit_price": str(o.limit_price),
        "status": o.status.value,
        "filled": o.filled,
        "remaining": o.remaining,
    }


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"
