"""What a person sees during a run: the plan, live progress, the final summary.

With ``--json`` nothing is printed on stdout until the single summary document at the end.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

import anyio

from rebalancer.cli._common import write_stdout

if TYPE_CHECKING:
    from decimal import Decimal

    from rebalancer.model import Plan, RiskReport, Target
    from rebalancer.runtime.run import RunOutcome


def _money(value: Decimal) -> str:
    return f"${value:,.2f}"


class ConsoleUI:
    """Plain text on stdout for a person; the prompt reads stdin."""

    def __init__(self, *, out: TextIO | None = None, quiet: bool = False,
                 stdin: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._quiet = quiet
        self._stdin = stdin or sys.stdin

    @property
    def can_prompt(self) -> bool:
        """True when stdin is a terminal."""
        try:
            return self._stdin.isatty()
        except (ValueError, AttributeError):
            return False

    def _say(self, text: str = "") -> None:
        if self._quiet:
            return
        if self._out is sys.stdout:
            write_stdout(text + "\n")  # a closed pipe must not stop a live run
        else:
            self._out.write(text + "\n")
            self._out.flush()

    def plan(self, *, target: Target, plan: Plan, risk: RiskReport, equity: Decimal,
             costs: Decimal) -> None:
        """Print the order table and the risk report."""
        self._say(f"Plan: {len(plan.orders)} orders against net liquidation {_money(equity)}"
                  f" (target {target.metadata_id or target.window_id[:12]})")
        self._say(f"  {'ACTION':<10} {'SHARES':>7} {'SYMBOL':<7} {'LIMIT':>10} {'NOTIONAL':>14}"
                  "  WHY")
        for o in plan.orders:
            self._say(f"  {o.action.value:<10} {o.quantity:>7} {o.symbol:<7} "
                      f"{o.limit_price:>10} {_money(o.notional):>14}  {o.description}")
        for s in plan.skipped:
            self._say(f"  skipped {s.symbol}: {s.reason}")
        self._say(f"  estimated costs {_money(costs)}")
        self._say("Risk checks:")
        for c in risk.checks:
            self._say(f"  [{c.status.value}] {c.name}: {c.detail}")

    def progress(self, line: str) -> None:
        """Print one progress line."""
        self._say(f"  {line}")

    async def confirm(self, question: str) -> bool:
        """Ask on stdout, read one line from stdin in a worker thread."""
        self._out.write(question)
        self._out.flush()
        answer = await anyio.to_thread.run_sync(self._stdin.readline, abandon_on_cancel=True)
        return answer.strip().lower() in {"y", "yes"}

    def summary(self, outcome: RunOutcome) -> None:
        """Print the final summary."""
        ex = outcome.execution
        if ex is not None:
            self._say("Orders:")
            for o in ex.orders:
                avg = "" if o.avg_price is None else f" avg {o.avg_price}"
                note = f"  ({o.note})" if o.note else ""
                self._say(f"  {o.side:<4} {o.quantity:>7} {o.symbol:<7} "
                          f"{o.state.value:<16} filled {o.filled}{avg}{note}")
        rec = outcome.reconciliation
        if rec is not None:
            self._say(f"Tracking error after the run: {rec.tracking_error_pct}%")
        self._say(f"Result: {outcome.status}: {outcome.message}")
        for reason in outcome.latch_reasons:
            self._say(f"SAFETY LATCH SET: {reason}")
        self._say(f"Run {outcome.run_id}; audit log {outcome.audit_path}")


class JsonUI(ConsoleUI):
    """Silent during the run; the CLI prints ``RunOutcome.to_json()`` at the end."""

    def __init__(self, *, stdin: TextIO | None = None) -> None:
        super().__init__(quiet=True, stdin=stdin, out=sys.stderr)

    async def confirm(self, question: str) -> bool:
        """Prompt on stderr so that stdout stays one JSON document."""
        sys.stderr.write(question)
        sys.stderr.flush()
        answer = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        return answer.strip().lower() in {"y", "yes"}
