"""Helpers shared by the command modules: the ``--config`` option, output, loading."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.config import Config, load_config

if TYPE_CHECKING:
    import argparse

CONFIG_ENV = "REBALANCER_CONFIG"


def add_config_arg(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add ``--config PATH``; it falls back to ``$REBALANCER_CONFIG`` when set."""
    default = os.environ.get(CONFIG_ENV)
    parser.add_argument(
        "--config",
        metavar="PATH",
        type=Path,
        default=Path(default) if default else None,
        required=required and not default,
        help=f"TOML config file (default: ${CONFIG_ENV})",
    )


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--json``: one machine-readable JSON document on stdout."""
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the config named by ``--config`` (raises ``ConfigError`` with the file and key)."""
    path: Path | None = args.config
    if path is None:
        from rebalancer.errors import ConfigError

        raise ConfigError(None, f"no config given: pass --config PATH or set ${CONFIG_ENV}")
    return load_config(path)


def write_stdout(text: str) -> None:
    """Write to stdout; a reader that went away (``| head``) silences stdout, it is no error.

    The command goes on and its exit code still says what happened.
    """
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    write_stdout(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def say(text: str = "") -> None:
    """Print a line for a person on stdout."""
    write_stdout(text + "\n")


def warn(text: str) -> None:
    """Print a line for a person on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
