"""The ``rebalancer audit`` commands: exit codes, JSON shape, repair output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.audit_logs import FIXTURES, LogBuilder, add_full_run, add_run_start

from rebalancer.audit.validate import validate_file
from rebalancer.cli.main import main
from rebalancer.exit_codes import ExitCode


@pytest.fixture(name="log_dir")
def _log_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir(mode=0o700)
    return directory


def _write(log_dir: Path, data: bytes) -> Path:
    path = log_dir / "audit.jsonl"
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _valid_log() -> LogBuilder:
    b = LogBuilder()
    add_full_run(b, "run-1")
    return b


def test_validate_valid_log_exits_zero(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid log exits 0 and says OK."""
    path = _write(log_dir, _valid_log().data())
    assert main(["audit", "validate", str(path)]) == ExitCode.OK
    assert capsys.readouterr().out.startswith(f"audit log OK: {path}")


def test_validate_json_shape(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints valid, errors with line/code/message, warnings and the extra keys."""
    b = _valid_log()
    b.lines[4] = b.lines[4].replace(b'"latency_ms":12', b'"latency_ms":13')
    path = _write(log_dir, b.data())
    assert main(["audit", "validate", str(path), "--json"]) == ExitCode.AUDIT_FAILURE
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False
    assert [(e["line"], e["code"]) for e in doc["errors"]] == [(5, "hash_mismatch")]
    assert isinstance(doc["errors"][0]["message"], str)
    assert doc["warnings"] == []
    assert doc["format"] == "rebalancer"
    assert doc["runs"] == 1
    assert doc["records"] == len(b.lines)
    assert doc["path"] == str(path)


def test_validate_reports_incomplete_intents_in_json(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupted run is valid (exit 0) and lists its incomplete intents."""
    b = LogBuilder()
    add_run_start(b, "run-x")
    b.intent("quotes_intent", "run-x")
    path = _write(log_dir, b.data())
    assert main(["audit", "validate", str(path), "--json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["incomplete_intents"] == [{
        "line": len(b.lines), "operation": "quotes", "op_id": "run-x:4",
        "client_order_id": None, "run_id": "run-x", "symbol": None}]
    assert "run_incomplete" in [w["code"] for w in doc["warnings"]]


def test_validate_torn_log_exits_with_audit_failure(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A torn tail is an invalid log: exit AUDIT_FAILURE, torn_tail named with its offset."""
    good = _valid_log().data()
    path = _write(log_dir, good + b'{"eve')
    assert main(["audit", "validate", str(path)]) == ExitCode.AUDIT_FAILURE
    out = capsys.readouterr().out
    assert "INVALID" in out
    assert f"torn_tail: torn tail at byte offset {len(good)}" in out


def test_validate_missing_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing log exits BAD_INPUT with one clear line and no traceback."""
    missing = tmp_path / "nope.jsonl"
    assert main(["audit", "validate", str(missing)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err == f"error: {missing}: cannot read audit log: No such file or directory\n"


def test_validate_directory_is_bad_input(tmp_path: Path) -> None:
    """A directory given as LOG is unreadable input."""
    assert main(["audit", "validate", str(tmp_path)]) == ExitCode.BAD_INPUT


def test_validate_accepts_an_optional_config(log_dir: Path) -> None:
    """--config is accepted (and not needed) for uniformity with the other commands."""
    path = _write(log_dir, _valid_log().data())
    assert main(["audit", "validate", str(path), "--config", "unused.toml"]) == ExitCode.OK


def test_validate_ancestor_log_exits_zero_with_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """An ancestor log is valid; the missing hash chain is printed as a warning."""
    assert main(["audit", "validate", str(FIXTURES / "nanobook_old_format.jsonl")]) == ExitCode.OK
    assert "no_hash_chain" in capsys.readouterr().out


def test_show_prints_a_timeline(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """show prints one line per record under the run header, then the verdict."""
    b = _valid_log()
    path = _write(log_dir, b.data())
    assert main(["audit", "show", str(path)]) == ExitCode.OK
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("== run run-1 ") for line in out)
    assert sum(1 for line in out if line.startswith("  20:00:")) == len(b.lines)
    assert out[-1] == "validation: VALID"


def test_show_unknown_run_is_bad_input(log_dir: Path) -> None:
    """Asking for a run id that is not in the log is bad input."""
    path = _write(log_dir, _valid_log().data())
    assert main(["audit", "show", str(path), "--run", "nope"]) == ExitCode.BAD_INPUT


def test_show_missing_file_is_bad_input(tmp_path: Path) -> None:
    """show on a missing file exits BAD_INPUT."""
    assert main(["audit", "show", str(tmp_path / "x.jsonl")]) == ExitCode.BAD_INPUT


def test_repair_cuts_a_torn_tail_and_keeps_the_original(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """repair cuts the torn bytes, says where and how much, and names the copy."""
    good = _valid_log().data()
    torn = good + b'{"event":"order_in'
    path = _write(log_dir, torn)
    assert main(["audit", "repair", str(path)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"cut 18 byte(s) at offset {len(good)}" in out
    copy_line = next(line for line in out.splitlines() if "original kept at" in line)
    copy = Path(copy_line.split("original kept at ", 1)[1])
    assert copy.read_bytes() == torn
    assert path.read_bytes().startswith(good)
    report = validate_file(path)
    assert report.valid, report.errors


def test_repair_json_and_nothing_to_repair(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clean log needs no repair: exit 0, repaired false."""
    path = _write(log_dir, _valid_log().data())
    assert main(["audit", "repair", str(path), "--json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["repaired"] is False
    assert doc["bytes_removed"] == 0


def test_repair_refuses_mid_file_damage(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Damage that is not a torn tail is never repaired: AUDIT_FAILURE with the message."""
    b = _valid_log()
    b.lines[3] = b"{broken\n"
    path = _write(log_dir, b.data())
    before = path.read_bytes()
    assert main(["audit", "repair", str(path)]) == ExitCode.AUDIT_FAILURE
    assert "corrupt" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_repair_missing_file_is_bad_input(tmp_path: Path) -> None:
    """repair on a missing log exits BAD_INPUT."""
    assert main(["audit", "repair", str(tmp_path / "none.jsonl")]) == ExitCode.BAD_INPUT


def test_show_last_prints_only_the_last_run(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--last limits the timeline to the last run started."""
    b = LogBuilder()
    add_full_run(b, "run-1")
    add_full_run(b, "run-2")
    path = _write(log_dir, b.data())
    assert main(["audit", "show", str(path), "--last"]) == ExitCode.OK
    headers = [line for line in capsys.readouterr().out.splitlines() if line.startswith("==")]
    assert headers == ["== run run-2 (2026-12-04, 21 records, completed) =="]


def test_show_last_on_a_log_without_runs_is_bad_input(log_dir: Path) -> None:
    """--last on a log that never started a run is bad input."""
    b = LogBuilder()
    b.add("latch_cleared", "latch-1", reason="ok")
    path = _write(log_dir, b.data())
    assert main(["audit", "show", str(path), "--last"]) == ExitCode.BAD_INPUT


def test_show_and_validate_print_hostile_strings_escaped(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lone surrogate and a terminal escape in the log never reach stdout raw (no crash)."""
    b = LogBuilder()
    add_run_start(b, "run-\ud800\x1b[2J")
    path = _write(log_dir, b.data())
    assert main(["audit", "show", str(path)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "run-\\ud800\\x1b[2J" in out
    assert "\x1b" not in out
    assert main(["audit", "validate", str(path)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "\\ud800" in out
    assert "\x1b" not in out


def test_validate_reports_a_complete_unterminated_record_as_kept_by_repair(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json marks a sound last record lacking its newline as a complete torn tail."""
    b = _valid_log()
    path = _write(log_dir, b.data()[:-1])
    assert main(["audit", "validate", str(path), "--json"]) == ExitCode.AUDIT_FAILURE
    doc = json.loads(capsys.readouterr().out)
    assert [e["code"] for e in doc["errors"]] == ["torn_tail"]
    assert doc["torn_tail_complete"] is True
    assert doc["records"] == len(b.lines)
    assert "keeps the record" in doc["errors"][0]["message"]


def test_repair_completes_a_sound_unterminated_record(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """repair adds the newline a complete last record lacks and says so; the log then verifies."""
    b = _valid_log()
    path = _write(log_dir, b.data()[:-1])
    assert main(["audit", "repair", str(path), "--json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert (doc["repaired"], doc["completed_line"], doc["bytes_removed"]) == (True, True, 0)
    assert path.read_bytes().startswith(b.data())
    report = validate_file(path)
    assert report.valid, report.errors
    assert report.records == len(b.lines) + 1  # the completed record and tail_repaired
    path.write_bytes(b.data()[:-1])
    assert main(["audit", "repair", str(path)]) == ExitCode.OK
    assert "added its newline" in capsys.readouterr().out
