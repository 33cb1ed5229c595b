"""The validator over ancestor (nanobook) logs: hand-written fixtures following its format."""

from __future__ import annotations

import pytest
from fixtures.audit_logs import FIXTURES

from rebalancer.audit.validate import validate_bytes, validate_file


@pytest.mark.parametrize(
    ("name", "runs"),
    [
        ("nanobook_wal_run.jsonl", 1),
        ("nanobook_old_format.jsonl", 1),
        ("nanobook_default_build.jsonl", 1),
        ("nanobook_mixed_format.jsonl", 2),
    ],
)
def test_ancestor_logs_are_valid_with_a_no_hash_chain_warning(name: str, runs: int) -> None:
    """Ancestor logs validate; the missing hash chain is a warning, never an error."""
    report = validate_file(FIXTURES / name)
    assert report.valid, report.errors
    assert report.format == "nanobook"
    assert report.runs == runs
    assert "no_hash_chain" in [w.code for w in report.warnings]
    assert report.incomplete_intents == ()
    assert report.incomplete_runs == ()


def test_ancestor_wal_log_has_every_bracket_paired_by_position() -> None:
    """The WAL-build run pairs each intent with the next result of its operation."""
    report = validate_file(FIXTURES / "nanobook_wal_run.jsonl")
    assert [w.code for w in report.warnings] == ["no_hash_chain"]


def test_blank_line_in_ancestor_log_is_skipped_with_a_warning() -> None:
    """The ancestor skipped blank lines; so do we, with a warning on that line."""
    report = validate_file(FIXTURES / "nanobook_default_build.jsonl")
    assert (7, "blank_line") in [(w.line, w.code) for w in report.warnings]


def test_interrupted_ancestor_run_lists_its_incomplete_intents() -> None:
    """An order intent and a cancel intent without results are incomplete, with client ids."""
    report = validate_file(FIXTURES / "nanobook_interrupted.jsonl")
    assert report.valid
    got = [(i.line, i.operation, i.client_order_id, i.run_id) for i in report.incomplete_intents]
    assert got == [
        (8, "place_order", "e1f2a3b4c5d64e7f8091a2b3c4d5e6f7", "nanobook@1"),
        (9, "cancel_order", None, "nanobook@1"),
    ]
    assert report.incomplete_runs == ("nanobook@1",)


def test_non_monotonic_checkpoint_sequence_is_an_error() -> None:
    """A checkpoint whose sequence number goes back is rejected at its line."""
    report = validate_file(FIXTURES / "nanobook_bad_checkpoint.jsonl")
    assert [(e.line, e.code) for e in report.errors] == [(3, "sequence_not_monotonic")]


def test_repeated_checkpoint_sequence_is_a_duplicate() -> None:
    """Two checkpoints with the same number are a sequence_duplicate."""
    lines = (FIXTURES / "nanobook_wal_run.jsonl").read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"1764878403", b"1764878402")
    report = validate_bytes(b"".join(lines))
    assert [(e.line, e.code) for e in report.errors] == [(4, "sequence_duplicate")]


def test_cron_markers_reusing_the_run_base_are_not_checked() -> None:
    """cron_start/cron_completed carry the run base (not checkpoints) and are ignored."""
    report = validate_file(FIXTURES / "nanobook_wal_run.jsonl")
    assert report.errors == ()


def test_ancestor_diff_before_positions_is_an_order_violation() -> None:
    """Even loosely, an ancestor run needs positions before its diff."""
    data = (
        b'{"event":"run_started","ts":"2026-03-02T15:00:00Z"}\n'
        b'{"event":"diff_computed","orders":[],"ts":"2026-03-02T15:00:01Z"}\n'
    )
    report = validate_bytes(data)
    assert [(e.line, e.code) for e in report.errors] == [(2, "order_violation")]


def test_ancestor_order_before_risk_check_is_an_order_violation() -> None:
    """An ancestor order_submitted before any passed risk check is out of order."""
    data = (
        b'{"event":"run_started","ts":"2026-03-02T15:00:00Z"}\n'
        b'{"event":"positions_fetched","positions":[],"ts":"2026-03-02T15:00:01Z"}\n'
        b'{"event":"diff_computed","orders":[],"ts":"2026-03-02T15:00:02Z"}\n'
        b'{"event":"order_submitted","symbol":"SPY","ts":"2026-03-02T15:00:03Z"}\n'
    )
    report = validate_bytes(data)
    assert [(e.line, e.code) for e in report.errors] == [(4, "order_violation")]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"ts":"2026-03-02T15:00:00Z"}\n', "missing_field"),
        (b'{"event":"run_started"}\n', "missing_field"),
        (b'{"event":"run_started","ts":"yesterday"}\n', "bad_timestamp"),
        (b'{"event":"cron_start","sequence_number":"1","ts":"2026-03-02T15:00:00Z"}\n',
         "bad_field_type"),
        (b'{"event":"run_started","checkpoint":"RunStarted","ts":"2026-03-02T15:00:00Z"}\n',
         "missing_field"),
    ],
)
def test_ancestor_parse_errors(line: bytes, code: str) -> None:
    """The ancestor's own parse rules: event and ts present, typed sequence numbers."""
    report = validate_bytes(line)
    assert [(e.line, e.code) for e in report.errors] == [(1, code)]


def test_ancestor_timestamps_with_nine_fraction_digits_are_accepted() -> None:
    """RFC 3339 with 0, 3, 6 or 9 fractional digits and Z or an offset are all fine."""
    for ts in ("2026-03-02T15:00:00Z", "2026-03-02T15:00:00.5Z", "2026-03-02T15:00:00.123456789Z",
               "2026-03-02T15:00:00+00:00"):
        data = b'{"event":"run_started","ts":"' + ts.encode() + b'"}\n'
        assert validate_bytes(data).valid, ts


def test_torn_ancestor_log_is_a_torn_tail() -> None:
    """A crash mid-write in an ancestor log is detected the same way."""
    data = (FIXTURES / "nanobook_old_format.jsonl").read_bytes()
    report = validate_bytes(data + b'{"event":"run_sta')
    assert [(e.line, e.code) for e in report.errors] == [(8, "torn_tail")]
    assert report.torn_tail_offset == len(data)
