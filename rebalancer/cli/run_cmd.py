"""``rebalancer run TARGET``: one live rebalance."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from rebalancer.broker_factory import make_broker
from rebalancer.cli._common import (
    add_config_arg,
    add_json_arg,
    config_from_args,
    emit_json,
    warn,
)
from rebalancer.config import LogFormat
from rebalancer.errors import RebalancerError
from rebalancer.logsetup import configure_logging, log_file_path
from rebalancer.runtime.orders import StopRequest
from rebalancer.runtime.report import ConsoleUI, JsonUI
from rebalancer.runtime.run import RunOutcome, RunRequest, run_rebalance

if TYPE_CHECKING:
    import argparse

    from rebalancer.exit_codes import ExitCode


def register(sub: Any) -> None:
    """Add the ``run`` command."""
    p = sub.add_parser("run", help="drive one live rebalance towards a target file")
    p.add_argument("target", metavar="TARGET", type=Path, help="target weights (JSON)")
    add_config_arg(p)
    p.add_argument("--dry-run", action="store_true",
                   help="read, plan and risk-check; send nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--cron", action="store_true",
                   help="unattended: implies --yes, refuses a completed window or a set latch")
    add_json_arg(p)
    p.add_argument("--log-format", choices=[f.value for f in LogFormat], default=None,
                   help="stderr log rendering (default: the config's [logging] format)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> ExitCode:
    cfg = config_from_args(args)
    fmt = LogFormat(args.log_format) if args.log_format else cfg.logging.format
    configure_logging(fmt=fmt, level=cfg.logging.level,
                      log_file=log_file_path(cfg.audit.dir))
    req = RunRequest(target_path=args.target, dry_run=args.dry_run, yes=args.yes or args.cron,
                     cron=args.cron)
    ui = JsonUI() if args.json else ConsoleUI()
    outcome: RunOutcome = anyio.run(_main, cfg, req, ui)
    if args.json:
        emit_json(outcome.to_json())
    else:
        ui.summary(outcome)
    return outcome.exit_code


async def _main(cfg: Any, req: RunRequest, ui: ConsoleUI) -> RunOutcome:
    stop = StopRequest()
    result: list[RunOutcome] = []
    errors: list[RebalancerError] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, stop)

        async def body() -> None:
            try:
                result.append(await run_rebalance(cfg, req, ui=ui, stop=stop,
                                                  broker_factory=make_broker))
            except RebalancerError as exc:  # surfaced as itself, not as an exception group
                errors.append(exc)
            tg.cancel_scope.cancel()

        tg.start_soon(body)
    if errors:
        raise errors[0]
    return result[0]


async def _watch_signals(stop: StopRequest) -> None:
    """SIGTERM/SIGINT: graceful stop. Later signals do not cut it short: abandoning the stop
    would leave working orders at the broker with nobody following them. The stop is bounded
    (every cancel has its own timeout); only SIGKILL ends it at once."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not stop.requested:
                stop.request(name)
                warn(f"{name}: stopping: no new orders; cancelling working orders of this run")
            else:
                warn(f"{name}: already stopping; waiting for the cancels to be confirmed "
                     "(SIGKILL abandons them, leaving orders working at the broker)")
