"""Preflight commands that need no broker: ``config check`` and ``target check``.

Both exit 0 with a short summary when the file is valid; a bad file is one line on stderr and
exit code 2 (``ExitCode.BAD_INPUT``), raised as ``ConfigError``/``TargetError`` and printed by
the main handler.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.cli._common import add_config_arg, add_json_arg, emit_json, say
from rebalancer.config import RiskConfig, load_config
from rebalancer.exit_codes import ExitCode
from rebalancer.money import fmt_pct, fmt_ratio, fmt_usd
from rebalancer.target import effective_risk, load_target

if TYPE_CHECKING:
    import argparse

    from rebalancer.config import Config
    from rebalancer.model import Target


def register(sub: Any) -> None:
    """Add the ``config`` and ``target`` command groups."""
    config = sub.add_parser("config", help="check a config file")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a TOML config and print a summary")
    check.add_argument("config_path", metavar="CONFIG", type=Path)
    add_json_arg(check)
    check.set_defaults(handler=_config_check)

    target = sub.add_parser("target", help="check a target file")
    target_sub = target.add_subparsers(dest="target_command", metavar="ACTION", required=True)
    tcheck = target_sub.add_parser(
        "check",
        help="validate a target JSON file and print a summary",
        description="Validate a target file. With --config, the config's [risk] limits apply "
        "(shorting, position size, leverage, and constraints that may only tighten).",
    )
    tcheck.add_argument("target_path", metavar="TARGET", type=Path)
    add_config_arg(tcheck, required=False)
    add_json_arg(tcheck)
    tcheck.set_defaults(handler=_target_check)


def _config_check(args: argparse.Namespace) -> ExitCode:
    cfg = load_config(args.config_path)
    if args.json:
        emit_json(_config_summary(cfg, args.config_path))
        return ExitCode.OK
    r, ex, q = cfg.risk, cfg.execution, cfg.quotes
    say(f"config OK: {args.config_path}")
    say(f"  account      {cfg.account.id} ({cfg.account.type.value})")
    broker = cfg.broker.kind.value
    if broker == "ib":
        c = cfg.connection
        broker += f" at {c.host}:{c.port} (client id {c.client_id})"
    say(f"  broker       {broker}")
    say(f"  risk         {_risk_line(r)}")
    say(
        f"  execution    limit offset {ex.limit_offset_bps} bps, "
        f"at most {ex.max_orders_per_run} orders, order timeout {ex.order_timeout_secs} s"
    )
    say(
        f"  quotes       stale after {q.staleness_secs} s, spread <= {q.max_spread_bps} bps, "
        f"on unusable: {q.on_unusable.value}"
    )
    say(f"  window       {cfg.schedule.window_period.value}")
    say(f"  audit log    {cfg.audit.path}")
    say(f"  config hash  {cfg.config_hash}")
    return ExitCode.OK


def _target_check(args: argparse.Namespace) -> ExitCode:
    cfg = load_config(args.config) if args.config is not None else None
    # Without a config the default [risk] limits apply (no shorts, leverage 1): the same a
    # config without a [risk] table gets, so a target never passes here and fails at run time.
    risk = cfg.risk if cfg is not None else RiskConfig()
    target = load_target(args.target_path, risk=risk)
    if args.json:
        emit_json(_target_summary(target, args.target_path, cfg))
        return ExitCode.OK
    long_w, short_w = _weights(target)
    n_long = sum(1 for t in target.targets if t.weight > 0)
    say(f"target OK: {args.target_path}")
    say(f"  id           {target.metadata_id or '(none)'}")
    if target.timestamp is not None:
        say(f"  timestamp    {target.timestamp.isoformat().replace('+00:00', 'Z')}")
    n = len(target.targets)
    say(f"  targets      {n} ({n_long} long, {n - n_long} short)")
    say(
        f"  weights      long {fmt_pct(long_w)}, short {fmt_pct(short_w)}, "
        f"gross {fmt_pct(long_w + short_w)}, cash {fmt_pct(1 - long_w + short_w)}"
    )
    say(f"  window id    {target.window_id}")
    limits = effective_risk(risk, target.constraints)
    say(f"  limits       {_risk_line(limits)}")
    if cfg is not None:
        say(f"               from {args.config}, tightened by the target's constraints")
    else:
        say("               the default [risk] limits (pass --config CONFIG for yours)")
    return ExitCode.OK


def _weights(target: Target) -> tuple[Decimal, Decimal]:
    long_w = sum((t.weight for t in target.targets if t.weight > 0), Decimal(0))
    short_w = sum((-t.weight for t in target.targets if t.weight < 0), Decimal(0))
    return long_w, short_w


def _risk_line(r: RiskConfig) -> str:
    shorts = f"shorts <= {fmt_pct(r.max_short_pct)}" if r.allow_short else "no shorts"
    return (
        f"position <= {fmt_pct(r.max_position_pct)}, leverage <= {fmt_ratio(r.max_leverage)}, "
        f"trades {fmt_usd(r.min_trade_usd)}-{fmt_usd(r.max_trade_usd)}, {shorts}"
    )


def _config_summary(cfg: Config, path: Path) -> dict[str, Any]:
    r = cfg.risk
    return {
        "valid": True,
        "path": str(path),
        "account": {"id": cfg.account.id, "type": cfg.account.type.value},
        "broker": cfg.broker.kind.value,
        "risk": {
            "max_position_pct": str(r.max_position_pct),
            "max_leverage": str(r.max_leverage),
            "min_trade_usd": str(r.min_trade_usd),
            "max_trade_usd": str(r.max_trade_usd),
            "allow_short": r.allow_short,
            "max_short_pct": str(r.max_short_pct),
        },
        "audit_log": str(cfg.audit.path),
        "config_hash": cfg.config_hash,
    }


def _target_summary(target: Target, path: Path, cfg: Config | None) -> dict[str, Any]:
    long_w, short_w = _weights(target)
    doc: dict[str, Any] = {
        "valid": True,
        "path": str(path),
        "id": target.metadata_id,
        "targets": [{"symbol": t.symbol, "weight": str(t.weight)} for t in target.targets],
        "long_weight": str(long_w),
        "short_weight": str(short_w),
        "gross_weight": str(long_w + short_w),
        "window_id": target.window_id,
        "checked_against_config": cfg is not None,
    }
    if cfg is not None:
        doc["config_hash"] = cfg.config_hash
    return doc
