"""`rebalancer status` reports the runner, the safety latch and the last run beside the broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runenv import Env

from rebalancer.cli.main import main
from rebalancer.exit_codes import ExitCode
from rebalancer.runtime.latch import set_latch


def _status(env: Env, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["status", "--config", str(env.config), "--json"])
    assert code == ExitCode.OK
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def test_status_shows_the_last_run_and_a_set_latch(tmp_path: Path, capsys: Any) -> None:
    """After a completed run and a latch, status names the run, its end and the latch reason."""
    env = Env(tmp_path).write()
    assert env.run("--yes") == ExitCode.OK
    doc = _status(env, capsys)
    run_id = env.records()[0]["run_id"]
    assert doc["last_run"]["run_id"] == run_id
    assert doc["last_run"]["state"] == "run_completed (completed)"
    assert doc["runner"] == {"alive": False}
    assert doc["safety_latch"] == {"set": False}
    set_latch(tmp_path / "audit", reason="operator test", source="operator")
    doc = _status(env, capsys)
    assert doc["safety_latch"] == {"set": True, "reasons": ["operator test"]}


def test_status_without_any_run(tmp_path: Path, capsys: Any) -> None:
    """With no audit log yet, status says there is no last run."""
    env = Env(tmp_path).write()
    doc = _status(env, capsys)
    assert doc["last_run"] is None
    assert doc["broker"]["reachable"] is True
