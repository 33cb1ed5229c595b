"""Support for end-to-end run tests: a temporary config and target, the audit log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rebalancer.cli.main import main

BASE_CONFIG = """
[account]
id = "DEMO1"
type = "cash"

[broker]
kind = "sim"

[broker.sim]
seed = 7
state_file = "state/sim.json"
fill_delay_ms_min = {fill_min}
fill_delay_ms_max = {fill_max}
partial_fills = {partial_fills}
exclusive_client_ids = true
{sim_extra}

[broker.sim.faults]
{faults}

[execution]
order_timeout_secs = {order_timeout}
ack_timeout_secs = 3
cancel_timeout_secs = 5
max_in_flight = {max_in_flight}

[quotes]
staleness_secs = 30

[audit]
dir = "audit"
"""

# Moves the demo account (cash $40k; ten holdings of about $21k) towards a new mix: it sells
# XOM, JNJ, SPY and META out and buys TLT, GLD, VTI and PG.
TARGET = {
    "metadata": {"id": "test-window"},
    "targets": [
        {"symbol": "AAPL", "weight": 0.12},
        {"symbol": "MSFT", "weight": 0.12},
        {"symbol": "AMZN", "weight": 0.10},
        {"symbol": "GOOGL", "weight": 0.10},
        {"symbol": "NVDA", "weight": 0.10},
        {"symbol": "JPM", "weight": 0.08},
        {"symbol": "TLT", "weight": 0.10},
        {"symbol": "GLD", "weight": 0.08},
        {"symbol": "VTI", "weight": 0.05},
        {"symbol": "PG", "weight": 0.05},
    ],
}


class Env:
    """A temporary config + target, with helpers to run the CLI and read the audit log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.toml"
        self.target = root / "target.json"
        self.audit = root / "audit" / "audit.jsonl"

    def write(self, *, fill_min: int = 20, fill_max: int = 80, partial_fills: int = 1,
              order_timeout: int = 10, max_in_flight: int = 4, faults: str = "",
              sim_extra: str = "", target: dict[str, Any] | None = None) -> Env:
        self.config.write_text(BASE_CONFIG.format(
            fill_min=fill_min, fill_max=fill_max, partial_fills=partial_fills,
            order_timeout=order_timeout, max_in_flight=max_in_flight, faults=faults,
            sim_extra=sim_extra))
        self.target.write_text(json.dumps(target or TARGET))
        return self

    def run(self, *args: str) -> int:
        return main(["run", str(self.target), "--config", str(self.config), *args])

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_bytes().splitlines()]

    def events(self) -> list[str]:
        return [r["event"] for r in self.records()]


def start_runner(env: Env) -> subprocess.Popen[bytes]:
    """``rebalancer run TARGET --config CONFIG --yes --json`` as a real process."""
    return subprocess.Popen(
        [sys.executable, "-m", "rebalancer.cli.main", "run", str(env.target),
         "--config", str(env.config), "--yes", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )


def wait_for_event(env: Env, event: str, count: int, proc: subprocess.Popen[bytes]) -> None:
    """Poll the audit log until ``event`` was written ``count`` times (bounded: 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if env.audit.exists() and env.events().count(event) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"runner exited early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {count} x {event} within 30 s")
