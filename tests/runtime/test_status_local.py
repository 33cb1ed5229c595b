"""`rebalancer status` reports the runner, the safety latch and the last run beside the broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
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


def test_status_works_while_the_runner_holds_its_client_id(tmp_path: Path, capsys: Any) -> None:
    """With one connection per client id (as at IB), status uses its own id and still works."""
    import anyio

    from rebalancer.broker_factory import make_broker
    from rebalancer.config import load_config

    env = Env(tmp_path).write()
    cfg = load_config(env.config)

    async def check() -> dict[str, Any]:
        runner = make_broker(cfg)  # the runner's connection, client id 1
        await runner.connect()
        try:
            return await anyio.to_thread.run_sync(_status, env, capsys)
        finally:
            await runner.close()

    doc = anyio.run(check)
    assert doc["broker"]["reachable"] is True
    assert doc["broker"]["client_id"] == cfg.connection.view_client_id != cfg.connection.client_id


@pytest.mark.parametrize("command", ["status", "positions"])
def test_a_closed_stdout_is_not_an_error(tmp_path: Path, command: str) -> None:
    """`rebalancer positions | head`: the reader leaving early gives no traceback, exit 0."""
    env = Env(tmp_path).write()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rebalancer.cli.main", command, "--config", str(env.config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.OK, err.decode()
    assert b"Traceback" not in err
    assert b"internal error" not in err
