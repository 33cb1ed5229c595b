"""``rebalancer latch status`` and ``latch clear``: exit codes, output, the audit record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rebalancer.cli.main import main
from rebalancer.config import load_config
from rebalancer.exit_codes import ExitCode
from rebalancer.runtime.latch import latch_path, read_latch, set_latch


@pytest.fixture(name="config")
def fixture_config(tmp_path: Path) -> Path:
    """A minimal config whose audit directory is ``<tmp>/audit``."""
    path = tmp_path / "config.toml"
    path.write_text('[account]\nid = "DU1"\n\n[audit]\ndir = "audit"\n')
    return path


@pytest.fixture(name="audit_dir")
def fixture_audit_dir(tmp_path: Path) -> Path:
    """The audit directory named by the config."""
    return tmp_path / "audit"


def _records(audit_dir: Path) -> list[dict[str, object]]:
    path = audit_dir / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_status_when_clear_exits_zero(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No latch file: exit 0 and a line saying the latch is clear."""
    assert main(["latch", "status", "--config", str(config)]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("safety latch: clear")


def test_status_when_set_exits_latch_set_with_reasons(
    config: Path, audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A set latch: exit 5 and every reason, with source and run id."""
    set_latch(audit_dir, reason="kill requested", source="kill", run_id="kill-1")
    set_latch(audit_dir, reason="manual review", source="manual_review")
    assert main(["latch", "status", "--config", str(config)]) == ExitCode.LATCH_SET
    out = capsys.readouterr().out
    assert "safety latch: SET" in out
    assert "[kill, run kill-1]  kill requested" in out
    assert "[manual_review]  manual review" in out


def test_status_json(config: Path, audit_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one document with the set flag and the reasons in order."""
    assert main(["latch", "status", "--config", str(config), "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == {"set": False, "reasons": [], "entries": []}
    set_latch(audit_dir, reason="a", source="run")
    set_latch(audit_dir, reason="b", source="kill")
    assert main(["latch", "status", "--config", str(config), "--json"]) == ExitCode.LATCH_SET
    doc = json.loads(capsys.readouterr().out)
    assert (doc["set"], doc["reasons"], doc["unreadable"]) == (True, ["a", "b"], None)


def test_status_of_a_corrupt_latch_fails_safe(
    config: Path, audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable latch file reports SET with 'latch file unreadable'."""
    audit_dir.mkdir(mode=0o700)
    latch_path(audit_dir).write_bytes(b"\x00garbage")
    assert main(["latch", "status", "--config", str(config)]) == ExitCode.LATCH_SET
    assert "latch file unreadable" in capsys.readouterr().out


def test_clear_without_a_latch_says_so_and_writes_nothing(
    config: Path, audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing to clear: exit 0, a message, and no audit record."""
    assert main(["latch", "clear", "--reason", "checked", "--config", str(config)]) == ExitCode.OK
    assert "not set" in capsys.readouterr().out
    assert _records(audit_dir) == []


def test_clear_records_then_removes_the_latch(
    config: Path, audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The latch_cleared record carries the reason and what was cleared; the latch is gone."""
    set_latch(audit_dir, reason="kill requested", source="kill")
    set_latch(audit_dir, reason="manual review", source="manual_review")
    code = main(["latch", "clear", "--reason", "orders checked in TWS", "--config", str(config)])
    assert code == ExitCode.OK
    assert read_latch(audit_dir) is None
    out = capsys.readouterr().out
    assert "safety latch cleared: orders checked in TWS" in out
    assert "kill requested" in out
    records = _records(audit_dir)
    assert len(records) == 1
    record = records[0]
    assert record["event"] == "latch_cleared"
    assert record["reason"] == "orders checked in TWS"
    assert record["cleared_reasons"] == ["kill requested", "manual review"]
    assert str(record["run_id"]).startswith("latch-")
    assert record["config_hash"] == load_config(config).config_hash
    assert record["sequence_number"] == 1


@pytest.mark.parametrize("reason", ["", "   "])
def test_clear_with_a_blank_reason_is_bad_input(
    config: Path, audit_dir: Path, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A blank --reason is refused with exit 2; the latch stays set and nothing is logged."""
    set_latch(audit_dir, reason="kill requested", source="kill")
    assert main(["latch", "clear", "--reason", reason, "--config", str(config)]) == (
        ExitCode.BAD_INPUT
    )
    assert "--reason: must not be empty" in capsys.readouterr().err
    assert read_latch(audit_dir) is not None
    assert _records(audit_dir) == []


def test_clear_without_reason_option_is_a_usage_error(config: Path) -> None:
    """--reason is required by the parser (exit 2)."""
    with pytest.raises(SystemExit) as info:
        main(["latch", "clear", "--config", str(config)])
    assert info.value.code == ExitCode.BAD_INPUT


def test_clear_keeps_the_latch_when_the_audit_record_cannot_be_written(
    config: Path, audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A torn audit log refuses the latch_cleared append, so the latch stays set (exit 8)."""
    set_latch(audit_dir, reason="audit write failed", source="audit_failure")
    (audit_dir / "audit.jsonl").write_bytes(b'{"event":"run_star')
    code = main(["latch", "clear", "--reason", "looked", "--config", str(config)])
    assert code == ExitCode.AUDIT_FAILURE
    assert "torn" in capsys.readouterr().err
    state = read_latch(audit_dir)
    assert state is not None
    assert state.reasons == ("audit write failed",)
