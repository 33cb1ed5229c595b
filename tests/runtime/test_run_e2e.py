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
    """A clean run writes reads, the open-orders check, diff, risk, paired order brackets,
    reconciliation, completion."""
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    assert summary["status"] == "completed"
    events = env.events()
    assert events[:10] == ["run_started", *READS, "open_orders_intent", "open_orders_result",
                           "diff_computed"]
    assert events[10] == "risk_check_passed"
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


def _sim(env: Env) -> Any:
    from brokers.sim.inspect import read_sim_state

    view = read_sim_state(env.root / "state" / "sim.json")
    assert view is not None
    return view


def test_partial_fills_are_recorded_as_they_come(tmp_path: Any, run_json: Any) -> None:
    """Orders filled in several parts write one order_filled per execution, cumulative."""
    env = Env(tmp_path).write(partial_fills=3, fill_min=50, fill_max=400)
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    fills = [r for r in env.records() if r["event"] == "order_filled"]
    by_order: dict[str, list[dict[str, Any]]] = {}
    for f in fills:
        by_order.setdefault(f["client_order_id"], []).append(f)
    assert any(len(v) > 1 for v in by_order.values())
    for cid, parts in by_order.items():
        cumulative = [p["cumulative_filled"] for p in parts]
        assert cumulative == sorted(cumulative)
        assert cumulative[-1] == sum(p["shares"] for p in parts)
        planned = next(o for o in summary["orders"] if o["client_order_id"] == cid)
        assert cumulative[-1] == planned["shares"]


def test_order_timeout_cancels_through_the_shared_path(tmp_path: Any, run_json: Any) -> None:
    """An order not filled within the timeout is cancelled: cancel intent, result, terminal."""
    env = Env(tmp_path).write(fill_min=60_000, fill_max=60_000, order_timeout=1,
                              max_in_flight=20)
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.ORDERS_INCOMPLETE, summary
    records = env.records()
    intents = [r for r in records if r["event"] == "cancel_intent"]
    results = [r for r in records if r["event"] == "cancel_result"]
    planned = len(summary["orders_planned"])
    assert len(intents) == len(results) == summary["counts"]["submitted"] > 0
    assert {r["reason"] for r in intents} == {"order_timeout"}
    assert {r["op_id"] for r in intents} == {r["op_id"] for r in results}
    statuses = [r for r in records if r["event"] == "order_status"]
    assert {s["status"] for s in statuses} == {"cancelled"}
    assert summary["counts"]["cancelled"] == planned - summary["counts"]["failed"]
    assert _sim(env).resubmitted() == ()
    assert not [o for o in _sim(env).orders() if not o.status.is_terminal]


def test_rejected_order_is_recorded_and_reported(tmp_path: Any, run_json: Any) -> None:
    """A broker reject writes order_failed with error_class rejected and ends incomplete."""
    env = Env(tmp_path).write(faults='reject_symbols = ["TLT"]')
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.ORDERS_INCOMPLETE
    failed = [r for r in env.records() if r["event"] == "order_failed"]
    assert [(r["symbol"], r["error_class"]) for r in failed] == [("TLT", "rejected")]
    assert summary["counts"]["failed"] == 1
    assert summary["counts"]["filled"] == len(summary["orders_planned"]) - 1


def test_lost_ack_is_resolved_by_lookup_and_never_sent_twice(tmp_path: Any,
                                                              run_json: Any) -> None:
    """An order whose ack is lost is found by client_order_id, followed, and sent only once."""
    env = Env(tmp_path).write(faults='lose_ack_for_symbols = ["GLD"]')
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    records = env.records()
    gld = next(o for o in summary["orders"] if o["symbol"] == "GLD")
    assert gld["filled"] == gld["shares"]
    failed = [r for r in records if r["event"] == "order_failed"]
    assert [(r["symbol"], r["error_class"]) for r in failed] == [("GLD", "ambiguous")]
    assert any(r["event"] == "open_orders_intent" for r in records)
    view = _sim(env)
    assert view.submissions(gld["client_order_id"]) == 1
    assert view.resubmitted() == ()


def test_duplicate_callbacks_are_counted_once(tmp_path: Any, run_json: Any) -> None:
    """With every update delivered twice, each execution is recorded once."""
    env = Env(tmp_path).write(faults="duplicate_callbacks = true", partial_fills=2)
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    fills = [r for r in env.records() if r["event"] == "order_filled"]
    exec_ids = [f["exec_id"] for f in fills]
    assert len(exec_ids) == len(set(exec_ids))
    assert len(exec_ids) == len(_sim(env).executions())
    for o in summary["orders"]:
        assert o["filled"] == o["shares"]


def test_risk_failure_sends_nothing(tmp_path: Any, run_json: Any) -> None:
    """Trades above the target's max trade value fail risk: risk_check_failed, nothing sent."""
    target = {"targets": [{"symbol": "AAPL", "weight": 0.24}, {"symbol": "MSFT", "weight": 0.2}],
              "constraints": {"max_trade_usd": 1000}}
    env = Env(tmp_path).write(target=target)
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.RISK_FAILED
    events = env.events()
    assert events[-1] == "risk_check_failed"
    assert "order_intent" not in events
    assert _sim(env).all_submissions() == {}
    assert summary["status"] == "risk_failed"


def test_stale_quote_stops_the_run(tmp_path: Any, run_json: Any) -> None:
    """A stale quote stops the run before any order, naming the symbol."""
    env = Env(tmp_path).write(faults='stale_quote_symbols = ["MSFT"]')
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.QUOTES_UNUSABLE
    events = env.events()
    assert events[-1] == "quote_gate_failed"
    assert "order_intent" not in events
    assert [u["symbol"] for u in summary["unusable_quotes"]] == ["MSFT"]


def test_delayed_quote_stops_the_run(tmp_path: Any, run_json: Any) -> None:
    """Delayed (non-live) market data makes the symbol unusable and stops the run."""
    env = Env(tmp_path).write(faults='delayed_quote_symbols = ["AAPL"]')
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.QUOTES_UNUSABLE
    assert [u["symbol"] for u in summary["unusable_quotes"]] == ["AAPL"]
    assert "delayed" in summary["unusable_quotes"][0]["reason"]
    assert _sim(env).all_submissions() == {}


def test_second_cron_run_of_a_completed_window_is_refused(env: Env, run_json: Any) -> None:
    """After a completed cron run, the same window is refused with its own exit code."""
    code, first = run_json(env, "--cron")
    assert code == ExitCode.OK, first
    assert env.events()[-1] == "cron_completed"
    code, _second = run_json(env, "--cron")
    assert code == ExitCode.WINDOW_COMPLETED
    records = env.records()
    assert records[-1]["event"] == "idempotency_rejection"
    assert records[-1]["window_id"] == first["window_id"]
    assert sum(1 for r in records if r["event"] == "run_started") == 1


def test_cron_refuses_while_the_latch_is_set(env: Env, run_json: Any) -> None:
    """A set safety latch makes --cron refuse before touching the broker."""
    from rebalancer.runtime.latch import set_latch

    (env.root / "audit").mkdir(mode=0o700)
    set_latch(env.root / "audit", reason="test", source="test")
    code, summary = run_json(env, "--cron")
    assert code == ExitCode.LATCH_SET
    assert summary["status"] == "latch_set"
    assert not env.audit.exists()


def test_no_terminal_without_yes_is_refused_at_once(env: Env, capsys: Any) -> None:
    """Without --yes and without a terminal, the run is refused before anything happens."""
    code = env.run()
    err = capsys.readouterr().err
    assert code == ExitCode.NOT_CONFIRMED
    assert "--yes" in err
    assert not env.audit.exists()


def test_fills_arriving_before_the_acknowledgement_are_kept(tmp_path: Any,
                                                             run_json: Any) -> None:
    """Updates that beat a slow acknowledgement count as the ack; every order ends filled."""
    env = Env(tmp_path).write(faults="ack_latency_ms = 400", fill_min=5, fill_max=20)
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    assert all(o["state"] == "filled" for o in summary["orders"])
    assert summary["counts"]["unresolved"] == 0
    first_seen: dict[str, str] = {}
    for r in env.records():
        if r["event"] in {"order_filled", "order_submitted"}:
            first_seen.setdefault(r["client_order_id"], r["event"])
    assert "order_filled" in first_seen.values()  # the race really happened


def test_broker_disconnect_during_reads_reconnects_and_retries(tmp_path: Any,
                                                               run_json: Any) -> None:
    """A connection lost on a read is re-opened and the read retried under a new bracket."""
    env = Env(tmp_path).write(faults="disconnect_at_request = 2")
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    results = [r for r in env.records() if r["event"] == "positions_result"]
    assert results[0]["error_class"] == "rejected"
    assert "error_class" not in results[1]
    assert env.events().count("positions_intent") == len(results) == 3  # 2 before, 1 after


def test_broker_that_stays_down_ends_the_run_with_run_aborted(
    tmp_path: Any, run_json: Any, capsys: Any
) -> None:
    """When every retry fails the run ends with run_aborted and exit 1; nothing was ordered."""
    env = Env(tmp_path).write()
    env.run("--dry-run")  # create the sim state, then break it so every request fails
    capsys.readouterr()
    state = tmp_path / "state" / "sim.json"
    state.write_text("{not json")
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.ERROR
    events = env.events()
    assert events[-1] == "run_aborted"
    assert "order_intent" not in events[events.index("run_started", 1):]
    assert summary["status"] in {"broker_unreachable", "broker_error"}
