"""An audit write failure during a live run is fail-stop."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from runenv import Env

from brokers.sim.inspect import read_sim_state
from rebalancer.audit.fileio import OsFileIO
from rebalancer.exit_codes import ExitCode
from rebalancer.runtime.latch import read_latch


def test_failed_intent_write_stops_the_run_and_sets_the_latch(
    tmp_path: Path, run_json: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on the third order intent: it and later orders are never sent; latch set."""
    env = Env(tmp_path).write(max_in_flight=1)
    real_write = OsFileIO.write
    seen = {"order_intent": 0}

    def faulty(self: OsFileIO, fd: int, data: bytes) -> int:
        if b'"event":"order_intent"' in data:
            seen["order_intent"] += 1
            if seen["order_intent"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, fd, data)

    monkeypatch.setattr(OsFileIO, "write", faulty)
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.AUDIT_FAILURE
    assert summary["status"] == "audit_failure"
    latch = read_latch(tmp_path / "audit")
    assert latch is not None
    assert "audit write failed" in latch.reason
    events = env.events()
    assert events.count("order_intent") == 2
    assert "run_completed" not in events
    view = read_sim_state(tmp_path / "state" / "sim.json")
    assert view is not None
    sent = view.all_submissions()
    intents = {r["client_order_id"] for r in env.records() if r["event"] == "order_intent"}
    assert set(sent) == intents


def test_fresh_log_failing_validation_sets_the_latch(
    tmp_path: Path, run_json: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the log fails validation after a run, the run exits 8 and the latch says why."""
    from rebalancer.audit import validate

    env = Env(tmp_path).write()
    monkeypatch.setattr(validate, "validate_file",
                        lambda _path: validate.validate_bytes(b"{damaged\n"))
    code, summary = run_json(env, "--yes")
    assert code == ExitCode.AUDIT_FAILURE
    assert summary["status"] == "audit_invalid"
    latch = read_latch(tmp_path / "audit")
    assert latch is not None
    assert "failed validation" in latch.reason
    assert "line 1" in latch.reason
