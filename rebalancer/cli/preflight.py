"""Preflight commands that need no broker: ``config check`` and ``target check``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.cli._common import say
from rebalancer.config import load_config
from rebalancer.exit_codes import ExitCode

if TYPE_CHECKING:
    import argparse


def register(sub: Any) -> None:
    """Add the ``config`` command group."""
    config = sub.add_parser("config", help="check a config file")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a TOML config and print a summary")
    check.add_argument("config_path", metavar="CONFIG", type=Path)
    check.set_defaults(handler=_config_check)


def _config_check(args: argparse.Namespace) -> ExitCode:
    cfg = load_config(args.config_path)
    say(f"config OK: {args.config_path}")
    say(f"  account      {cfg.account.id} ({cfg.account.type.value})")
    say(f"  broker       {cfg.broker.kind.value}")
    say(f"  audit log    {cfg.audit.path}")
    say(f"  config hash  {cfg.config_hash}")
    return ExitCode.OK
