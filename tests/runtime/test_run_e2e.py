"""End-to-end runs of `rebalancer run` on the simulated broker, asserting on the audit trail."""

from __future__ import annotations

from collections import Counter
from typing import Any

from runenv import Env

from rebalancer.exit_codes import ExitCode

READS = [
    "account_summary_intent", "account_summary_result",
    "positions_intent", "positions_result",
    "quotes_intent", "quotes_result",
]


def _orders_phase(events: list[str]) -> list[str]:
    start = events.index("risk_check_passed") + 1
    end = len(events) - 1 - events[::-1].index("account_summary_intent")
    return events[start:end]


def test_clean_run_writes_the_exact_event_order(env: Env, run_json: Any) -> None:
    """A clean run writes reads, diff, risk, paired order brackets, reconciliation, completion."""
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    assert summary["status"] == "completed"
    events = env.events()
    assert events[:8] == ["run_started", *READS, "diff_computed"]
    assert events[8] == "risk_check_passed"
    assert events[-8:] == [*READS, "reconcile_completed", "run_completed"]
    phase = _orders_phase(events)
    counts = Counter(phase)
    n = len(summary["orders_planned"])
    assert n > 0
    assert counts["order_intent"] == counts["order_submitted"] == n
    assert counts["order_status"] == n
    assert counts["order_failed"] == 0
    records = env.records()
    # Every order record pairs with its intent by op_id, and every intent came first.
    intents = {r["op_id"]: i for i, r in enumerate(records) if r["event"].endswith("_intent")}
    for i, r in enumerate(records):
        if r["event"] in {"order_submitted", "order_failed"} or r["event"].endswith("_result"):
            assert intents[r["op_id"]] < i
    final = records[-1]
    assert final["event"] == "run_completed"
    assert final["filled"] == n
    assert final["failed"] == 0


def test_dry_run_sends_nothing(env: Env, run_json: Any) -> None:
    """A dry run plans and risk-checks, ends with dry_run_completed, and places no order."""
    code, summary = run_json(env, "--dry-run")
    assert code == ExitCode.OK
    assert summary["status"] == "dry_run"
    events = env.events()
    assert events[-1] == "dry_run_completed"
    assert "order_intent" not in events
