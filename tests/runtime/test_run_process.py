"""The runner as a real process: graceful stop on SIGTERM, one runner at a time."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from runenv import Env, start_runner, wait_for_event

from rebalancer.exit_codes import ExitCode


@pytest.fixture(name="slow_env")
def _slow_env(tmp_path: Path) -> Env:
    # Fills take a minute: every order is still working when the signal arrives.
    return Env(tmp_path).write(fill_min=60_000, fill_max=90_000, order_timeout=300,
                               max_in_flight=20)


def test_sigterm_cancels_working_orders_and_ends_gracefully(slow_env: Env) -> None:
    """SIGTERM mid-orders: no new submission, working orders cancelled, kill_completed written."""
    proc = start_runner(slow_env)
    wait_for_event(slow_env, "order_submitted", 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err.decode()
    summary = json.loads(out)
    assert summary["status"] == "interrupted"
    records = slow_env.records()
    kill = [r for r in records if r["event"] == "kill_completed"]
    assert len(kill) == 1
    assert kill[0]["method"] == "graceful"
    assert kill[0]["orders_remaining_count"] == 0
    submitted = [r for r in records if r["event"] == "order_submitted"]
    cancels = [r for r in records if r["event"] == "cancel_result"]
    assert kill[0]["orders_cancelled_count"] == len(submitted) == len(cancels)
    assert {r["reason"] for r in records if r["event"] == "cancel_intent"} == {
        "graceful_shutdown"}
    # No order was placed after the signal, and nothing is left working at the broker.
    from brokers.sim.inspect import read_sim_state

    view = read_sim_state(slow_env.root / "state" / "sim.json")
    assert view is not None
    assert len(view.all_submissions()) == len(submitted)
    assert [o for o in view.orders() if not o.status.is_terminal] == []
    assert "run_completed" not in [r["event"] for r in records]


def test_second_runner_is_refused_while_the_first_holds_the_lock(
    slow_env: Env, capsys: Any
) -> None:
    """A second runner exits with ALREADY_RUNNING naming the holder; the first is unaffected."""
    proc = start_runner(slow_env)
    try:
        wait_for_event(slow_env, "order_submitted", 1, proc)
        code = slow_env.run("--yes")
        err = capsys.readouterr().err
        assert code == ExitCode.ALREADY_RUNNING
        assert str(proc.pid) in err
        assert slow_env.events().count("run_started") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED
