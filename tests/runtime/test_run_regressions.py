"""Regression tests for defects found in review: double-counted fills, pacing counted against
the ack deadline, unexpected broker errors, a second signal, and trading over open orders."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from runenv import Env, start_runner, wait_for_event

from brokers.errors import BrokerProtocolError
from brokers.sim.broker import SimBroker
from brokers.sim.inspect import read_sim_state
from brokers.types import OrderRequest
from rebalancer.exit_codes import ExitCode
from rebalancer.runtime.latch import read_latch


def _real_fills(env: Env) -> dict[str, int]:
    view = read_sim_state(env.root / "state" / "sim.json")
    assert view is not None
    real: dict[str, int] = defaultdict(int)
    for e in view.executions():
        real[e.client_order_id] += e.quantity
    return real


def _working(env: Env) -> list[str]:
    view = read_sim_state(env.root / "state" / "sim.json")
    assert view is not None
    return [o.client_order_id for o in view.orders() if not o.status.is_terminal]


def _fail_after_placing(monkeypatch: pytest.MonkeyPatch, symbol: str, error: Exception) -> None:
    """The sim places orders in ``symbol`` normally, then raises ``error`` instead of the ack."""
    original = SimBroker.place_order

    async def place(self: SimBroker, request: OrderRequest) -> Any:
        ack = await original(self, request)
        if request.symbol == symbol:
            raise error
        return ack

    monkeypatch.setattr(SimBroker, "place_order", place)


def test_lookup_then_stream_does_not_double_count(tmp_path: Path, run_json: Any) -> None:
    """A lost ack found by lookup and then reported by the stream counts its fills once."""
    env = Env(tmp_path).write(fill_min=0, fill_max=0, faults='lose_ack_for_symbols = ["GLD"]')
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    real = _real_fills(env)
    assert {o["client_order_id"]: o["filled"] for o in summary["orders"]} == dict(real)
    assert all(o["filled"] == o["shares"] for o in summary["orders"])


def test_cancel_racing_fill_counts_each_fill_once(tmp_path: Path, run_json: Any) -> None:
    """When every timeout cancel loses to a fill, the run reports exactly the broker's fills."""
    env = Env(tmp_path).write(fill_min=60_000, fill_max=60_000, order_timeout=1,
                              max_in_flight=20, faults="cancel_races_fill = true")
    code, summary = run_json(env, "--yes")
    real = _real_fills(env)
    assert {o["client_order_id"]: o["filled"] for o in summary["orders"]} == dict(real)
    assert code == ExitCode.OK, summary
    assert [o["state"] for o in summary["orders"]] == ["filled"] * len(summary["orders"])


def test_slow_pacing_never_turns_unsent_orders_into_unknowns(tmp_path: Path,
                                                             run_json: Any) -> None:
    """A long pacing queue delays orders but never sends them to manual review."""
    env = Env(tmp_path).write(max_in_flight=20)
    env.config.write_text(env.config.read_text().replace(
        "max_in_flight = 20", "max_in_flight = 20\nmessages_per_second = 4"))
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    assert summary["counts"]["unresolved"] == 0
    assert not [r for r in env.records() if r["event"] == "order_failed"]


def test_unexpected_error_cancels_working_orders_and_latches(
    tmp_path: Path, run_json: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defect in the order phase cancels every working order, sets the latch, exit 6."""
    env = Env(tmp_path).write(fill_min=60_000, fill_max=90_000, order_timeout=300,
                              max_in_flight=20)
    _fail_after_placing(monkeypatch, "XOM", RuntimeError("simulated defect after placing"))
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.MANUAL_REVIEW
    assert summary["status"] == "internal_error"
    assert _working(env) == []
    latch = read_latch(tmp_path / "audit")
    assert latch is not None
    assert "failed unexpectedly" in latch.reason
    assert env.events()[-1] in {"run_aborted", "latch_set"}


def test_unknown_broker_error_on_placement_is_looked_up_not_resent(
    tmp_path: Path, run_json: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A protocol error after the order reached the broker is resolved by lookup, sent once."""
    env = Env(tmp_path).write()
    _fail_after_placing(monkeypatch, "XOM", BrokerProtocolError("garbled reply (simulated)"))
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.OK, summary
    view = read_sim_state(tmp_path / "state" / "sim.json")
    assert view is not None
    assert view.resubmitted() == ()
    xom = next(o for o in summary["orders"] if o["symbol"] == "XOM")
    assert xom["filled"] == xom["shares"]


def test_second_signal_does_not_abandon_the_graceful_stop(tmp_path: Path) -> None:
    """Two SIGTERMs in a row still cancel every working order and write kill_completed."""
    env = Env(tmp_path).write(fill_min=60_000, fill_max=90_000, order_timeout=300,
                              max_in_flight=20)
    proc = start_runner(env)
    wait_for_event(env, "order_submitted", 2, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err.decode()
    assert "already stopping" in err.decode()
    assert env.events().count("kill_completed") == 1
    assert _working(env) == []


def test_open_orders_of_ours_block_a_new_run(tmp_path: Path, run_json: Any,
                                             capsys: Any) -> None:
    """Orders of ours left working at the broker make the next run refuse before any order."""
    env = Env(tmp_path).write(fill_min=60_000, fill_max=90_000, order_timeout=300,
                              max_in_flight=20)
    proc = start_runner(env)
    wait_for_event(env, "order_submitted", 2, proc)
    proc.kill()  # like an OOM kill: no graceful stop, orders stay working
    proc.communicate(timeout=30)
    working = _working(env)
    assert working
    code, summary = run_json(env, "--cron")
    assert code == ExitCode.MANUAL_REVIEW
    assert summary["status"] == "open_orders"
    records = env.records()
    assert records[-1]["event"] == "run_aborted"
    assert sorted(records[-1]["client_order_ids"]) == sorted(working)
    view = read_sim_state(tmp_path / "state" / "sim.json")
    assert view is not None
    assert set(view.all_submissions()) == set(working) | {
        r["client_order_id"] for r in records if r["event"] == "order_submitted"}


def test_zero_net_liquidation_is_an_error_not_a_no_op(tmp_path: Path, run_json: Any) -> None:
    """An account worth nothing ends the run as an error; the cron window stays open."""
    env = Env(tmp_path).write(sim_extra="starting_cash = 0\npositions = []")
    code, summary = run_json(env, "--cron")
    assert code == ExitCode.ERROR
    assert summary["status"] == "bad_account_report"
    events = env.events()
    assert events[-1] == "run_aborted"
    assert "cron_completed" not in events
    assert "net liquidation is 0" in summary["message"]
