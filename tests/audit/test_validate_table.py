"""Walk every row of the validator's run table: allowed moves pass, every other move is flagged."""

from __future__ import annotations

import pytest
from fixtures.audit_logs import RESULT_OF, LogBuilder

from rebalancer.audit.validate import RUN_TABLE, Phase, validate_bytes

RUN = "run-t"
KEY = {"client_order_id": "rb-t-0", "symbol": "SPY"}


def _reach(b: LogBuilder, phase: Phase) -> None:
    """Append the records that bring run RUN to ``phase``."""
    b.add("run_started", RUN)
    steps = {
        Phase.ACCOUNT: [("bracket", "account_summary_intent")],
        Phase.POSITIONS: [("bracket", "positions_intent")],
        Phase.QUOTES: [("bracket", "positions_intent"), ("bracket", "quotes_intent")],
        Phase.DIFF: [("bracket", "positions_intent"), ("event", "diff_computed")],
        Phase.NO_CHANGE: [("bracket", "positions_intent"), ("event", "diff_computed"),
                          ("event", "no_rebalance_needed")],
        Phase.TRADING: [("bracket", "positions_intent"), ("event", "diff_computed"),
                        ("event", "risk_check_passed")],
        Phase.RECONCILING: [("bracket", "positions_intent"), ("event", "diff_computed"),
                            ("event", "risk_check_passed"), ("event", "reconcile_completed")],
        Phase.ENDED: [("bracket", "positions_intent"), ("event", "diff_computed"),
                      ("event", "risk_check_passed"), ("event", "run_completed")],
        Phase.CRON_DONE: [("bracket", "positions_intent"), ("event", "diff_computed"),
                          ("event", "risk_check_passed"), ("event", "run_completed"),
                          ("event", "cron_completed")],
    }.get(phase, [])
    for kind, event in steps:
        if kind == "bracket":
            b.bracket(event, RUN)
        else:
            b.add(event, RUN, status="completed")


def _append(b: LogBuilder, event: str, *, with_result: bool) -> None:
    payload = dict(KEY, order_id=7) if event in ("order_intent", "cancel_intent") else {}
    if event in RESULT_OF:
        if with_result:
            b.bracket(event, RUN, **payload)
        else:
            b.intent(event, RUN, **payload)
    else:
        b.add(event, RUN, status="completed", **payload)


ALLOWED = [(event, phase) for event, rule in RUN_TABLE.items() for phase in rule]
FORBIDDEN = [(event, phase) for event, rule in RUN_TABLE.items() for phase in Phase
             if phase not in rule]


@pytest.mark.parametrize(("event", "phase"), ALLOWED)
def test_every_allowed_move_validates(event: str, phase: Phase) -> None:
    """An event in a phase its table row allows leaves the log valid."""
    b = LogBuilder()
    _reach(b, phase)
    _append(b, event, with_result=True)
    report = validate_bytes(b.data())
    assert report.valid, report.errors


@pytest.mark.parametrize(("event", "phase"), FORBIDDEN)
def test_every_other_move_is_an_order_violation(event: str, phase: Phase) -> None:
    """An event in a phase its table row does not list is an order_violation on its line."""
    b = LogBuilder()
    _reach(b, phase)
    _append(b, event, with_result=False)
    report = validate_bytes(b.data())
    assert [(e.line, e.code) for e in report.errors][:1] == [(len(b.lines), "order_violation")]


def test_idempotency_rejection_right_after_run_started_ends_the_run() -> None:
    """A cron run refused after run_started ends there, with no incomplete-run warning."""
    b = LogBuilder()
    b.add("run_started", RUN)
    b.add("idempotency_rejection", RUN, window_id="w", completed_sequence_number=3)
    report = validate_bytes(b.data())
    assert report.valid
    assert report.warnings == ()
