"""Entry point of the ``rebalancer`` console script.

Every command module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
commands with ``set_defaults(handler=...)``; a handler takes the parsed arguments and returns an
``ExitCode``. Errors of the runtime's own types become one line on stderr and their exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

import structlog

from rebalancer import __version__
from rebalancer.config import LogFormat
from rebalancer.errors import RebalancerError
from rebalancer.exit_codes import ExitCode
from rebalancer.logsetup import configure_logging

if TYPE_CHECKING:
    from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "rebalancer.cli.preflight",
    "rebalancer.cli.run_cmd",
    "rebalancer.cli.broker_views",
    "rebalancer.cli.latch_cmd",
    "rebalancer.cli.audit_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our bad-input code (2) and a one-line hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(ExitCode.BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered command."""
    parser = _Parser(
        prog="rebalancer",
        description="Drive a live portfolio rebalance with a write-ahead audit log.",
    )
    parser.add_argument("--version", action="version", version=f"rebalancer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return int(ExitCode.BAD_INPUT)
    # Until a command configures logging from its config: warnings and up, on stderr only.
    configure_logging(fmt=LogFormat.AUTO, level="warning", log_file=None)
    try:
        return int(handler(args))
    except RebalancerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return int(exc.exit_code)
    except Exception as exc:  # a defect: one line for the operator, the traceback in the log
        structlog.get_logger(__name__).exception("internal_error")
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc}\n")
        return int(ExitCode.ERROR)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
