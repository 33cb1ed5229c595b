"""``rebalancer config check`` and ``target check``: exit codes and what they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rebalancer.cli.main import main
from rebalancer.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "targets" / "example.json"
PAPER = REPO / "configs" / "ib-paper.toml"


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep an operator's $REBALANCER_CONFIG out of these tests."""
    monkeypatch.delenv("REBALANCER_CONFIG", raising=False)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_target_check_prints_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid target exits 0 with its counts, weights and window id."""
    assert main(["target", "check", str(EXAMPLE)]) == ExitCode.OK
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"target OK: {EXAMPLE}"
    assert "  id           example-balanced" in out
    assert "  targets      8 (8 long, 0 short)" in out
    assert "  weights      long 95.0%, short 0.0%, gross 95.0%, cash 5.0%" in out
    assert any(line.startswith("  window id    ") and len(line.split()[-1]) == 64 for line in out)
    assert "               the default [risk] limits (pass --config CONFIG for yours)" in out


def test_target_check_with_config_applies_limits(capsys: pytest.CaptureFixture[str]) -> None:
    """With --config the effective limits are shown."""
    assert main(["target", "check", str(EXAMPLE), "--config", str(PAPER)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert (
        "  limits       position <= 25.0%, leverage <= 1.00x, trades $100.00-$100,000.00, "
        "no shorts\n" in out
    )


def test_target_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one document with the window id and weights as decimal strings."""
    assert main(["target", "check", str(EXAMPLE), "--json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True
    assert doc["gross_weight"] == "0.95"
    assert doc["targets"][0] == {"symbol": "SPY", "weight": "0.20"}
    assert doc["checked_against_config"] is False


def test_bad_target_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad target is one line on stderr naming the file, and exit code 2."""
    path = _write(tmp_path, "t.json", '{"targets": [{"symbol": "AAPL", "weight": NaN}]}')
    assert main(["target", "check", str(path)]) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {path}: NaN is not allowed (numbers must be finite)\n"


def test_loosening_constraint_refused_under_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A constraint looser than the limits is refused, against the defaults or a config."""
    path = _write(
        tmp_path, "t.json",
        '{"constraints": {"max_leverage": 3}, "targets": [{"symbol": "AAPL", "weight": 0.2}]}',
    )
    assert main(["target", "check", str(path)]) == ExitCode.BAD_INPUT
    assert "loosens the config's risk.max_leverage 1.0" in capsys.readouterr().err
    assert main(["target", "check", str(path), "--config", str(PAPER)]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err == (
        f"error: {path}: constraints.max_leverage: 3 loosens the config's risk.max_leverage 1.0 "
        "(target constraints may only tighten the config's limits)\n"
    )


def test_target_check_with_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad --config is reported before the target is read."""
    cfg = _write(tmp_path, "c.toml", '[account]\nid = "DU1"\nbogus = 1\n')
    assert main(["target", "check", str(EXAMPLE), "--config", str(cfg)]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err == (
        f"error: {cfg}: account.bogus: unknown key (known keys: id, type)\n"
    )


def test_config_check_prints_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid config exits 0 and shows account, broker, limits and hash."""
    assert main(["config", "check", str(PAPER)]) == ExitCode.OK
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"config OK: {PAPER}"
    assert "  account      DU0000000 (margin)" in out
    assert "  broker       ib at 127.0.0.1:4002 (client id 1)" in out
    assert "  window       day" in out


def test_config_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    """--json gives the limits as decimal strings and the 16-digit config hash."""
    assert main(["config", "check", str(PAPER), "--json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["risk"]["max_position_pct"] == "0.25"
    assert len(doc["config_hash"]) == 16


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An out-of-range value is one line with the key path, exit code 2."""
    cfg = _write(tmp_path, "c.toml", '[account]\nid = "DU1"\n[risk]\nmax_leverage = 0.5\n')
    assert main(["config", "check", str(cfg)]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err == (
        f"error: {cfg}: risk.max_leverage: must be between 1 and 10, got 0.5\n"
    )


def test_target_check_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    """Missing arguments are a usage error with exit code 2."""
    with pytest.raises(SystemExit) as info:
        main(["target", "check"])
    assert info.value.code == ExitCode.BAD_INPUT
    assert "TARGET" in capsys.readouterr().err
