"""The audit validator: fresh logs, every corruption class, torn tails, ordering, brackets."""

from __future__ import annotations

import json

import pytest
from fixtures.audit_logs import LogBuilder, add_full_run, add_run_start, order_row

from rebalancer.audit.reader import parse_log
from rebalancer.audit.records import GENESIS_HASH, canonical_bytes, record_hash
from rebalancer.audit.validate import ValidationReport, validate_bytes, validate_file


def _codes(report: ValidationReport) -> list[tuple[int | None, str]]:
    return [(e.line, e.code) for e in report.errors]


def _first(report: ValidationReport) -> tuple[int | None, str]:
    assert report.errors, "expected at least one error"
    return report.errors[0].line, report.errors[0].code


def _log(runs: int = 1) -> LogBuilder:
    b = LogBuilder()
    for n in range(runs):
        add_full_run(b, f"run-{n}")
    return b


def _line_of(b: LogBuilder, event: str, nth: int = 0) -> int:
    hits = [i + 1 for i, r in enumerate(b.records) if r["event"] == event]
    return hits[nth]


def _rehash(record: dict[str, object]) -> bytes:
    """Re-encode a hand-edited record with a correct hash (so only the edited rule trips)."""
    body = {k: v for k, v in record.items() if k != "hash"}
    body["hash"] = record_hash(body)
    return canonical_bytes(body) + b"\n"


# -- valid logs -------------------------------------------------------------------------------


def test_fresh_log_of_three_runs_is_valid_without_warnings() -> None:
    """Three complete runs written through the real chain validate with no errors or warnings."""
    b = _log(3)
    report = validate_bytes(b.data())
    assert report.valid
    assert report.errors == ()
    assert report.warnings == ()
    assert report.format == "rebalancer"
    assert report.runs == 3
    assert report.records == len(b.lines)
    assert report.incomplete_intents == ()


def test_validate_file_reads_the_same_verdict_as_validate_bytes(tmp_path) -> None:
    """The streaming file entry point agrees with the in-memory one."""
    b = _log(2)
    path = b.write(tmp_path / "audit.jsonl")
    assert validate_file(path) == validate_bytes(b.data())


def test_cron_run_with_cron_markers_is_valid() -> None:
    """cron_start after run_started and cron_completed after run_completed are accepted."""
    b = LogBuilder()
    add_full_run(b, "cron-1", cron=True)
    report = validate_bytes(b.data())
    assert report.valid, report.errors
    assert report.warnings == ()


def test_empty_log_is_valid_with_a_warning() -> None:
    """An empty file has no records: valid, warned about."""
    report = validate_bytes(b"")
    assert report.valid
    assert [w.code for w in report.warnings] == ["empty_log"]
    assert report.records == 0


@pytest.mark.parametrize(
    ("tail", "status"),
    [
        (("quote_gate_failed",), None),
        (("diff_computed", "risk_check_failed"), None),
        (("diff_computed", "risk_check_failed", "run_completed"), "risk_failed"),
        (("diff_computed", "risk_check_passed", "dry_run_completed"), None),
        (("diff_computed", "no_rebalance_needed", "run_completed"), "completed"),
    ],
)
def test_runs_that_end_early_are_complete_and_valid(
    tail: tuple[str, ...], status: str | None
) -> None:
    """Quote gate, risk failure, dry run and no-change runs end the run without warnings."""
    b = LogBuilder()
    add_run_start(b, "r1")
    for event in tail:
        payload = {"status": status} if event == "run_completed" else {}
        b.add(event, "r1", **payload)
    report = validate_bytes(b.data())
    assert report.valid, report.errors
    assert report.warnings == ()


def test_run_stopped_early_with_a_status_is_valid() -> None:
    """A run_completed whose status says the run was interrupted may close it before the diff."""
    b = LogBuilder()
    b.add("run_started", "r1")
    b.bracket("positions_intent", "r1")
    b.add("run_completed", "r1", status="interrupted")
    assert validate_bytes(b.data()).valid


def test_graceful_stop_ends_the_run_with_kill_completed() -> None:
    """The runner's own kill_completed (graceful stop) is a terminal event of its run."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[])
    b.add("risk_check_passed", "r1", checks=[])
    b.add("kill_completed", "r1", method="graceful", orders_cancelled_count=0,
          orders_remaining_count=0, duration_seconds=0.1)
    b.add("latch_set", "r1", reason="graceful stop")
    report = validate_bytes(b.data())
    assert report.valid, report.errors
    assert report.warnings == ()


@pytest.mark.parametrize("after", ["run_started", "positions", "risk_check_passed"])
def test_run_aborted_ends_the_run_at_any_point(after: str) -> None:
    """run_aborted (broker unreachable, account mismatch...) closes the run wherever it stands."""
    b = LogBuilder()
    b.add("run_started", "r1")
    if after != "run_started":
        b.bracket("positions_intent", "r1")
    if after == "risk_check_passed":
        b.add("diff_computed", "r1", orders=[])
        b.add("risk_check_passed", "r1", checks=[])
    b.add("run_aborted", "r1", reason="broker_error", error="lost")
    report = validate_bytes(b.data())
    assert report.valid, report.errors
    assert report.warnings == ()


def test_idempotency_rejection_before_run_started_is_valid() -> None:
    """A refused cron window writes idempotency_rejection alone under the run id."""
    b = _log(1)
    b.add("idempotency_rejection", "run-9", window_id="w-1", completed_sequence_number=21)
    report = validate_bytes(b.data())
    assert report.valid, report.errors
    assert report.warnings == ()


def test_runner_and_kill_records_may_interleave() -> None:
    """A kill invocation appending while the run trades is valid; both bracket sets pair."""
    b = LogBuilder()
    add_run_start(b, "run-a")
    row = order_row("run-a", 0, "AAPL", "BUY", 10, "190.00")
    b.add("diff_computed", "run-a", orders=[row], skipped=[])
    b.add("risk_check_passed", "run-a", checks=[])
    key = {"client_order_id": row["client_order_id"], "symbol": "AAPL"}
    op = b.intent("order_intent", "run-a", side="BUY", shares=10, limit="190.00", **key)
    b.add("kill_requested", "kill-1")
    b.result("order_submitted", "run-a", op, order_id=5, perm_id=77, status="Submitted", **key)
    b.add("kill_phase1_started", "kill-1", pid=4242)
    look = b.intent("open_orders_intent", "kill-1")
    b.result("open_orders_result", "kill-1", look, orders=[])
    cancel = b.intent("cancel_intent", "kill-1", order_id=5, **key)
    b.add("order_status", "run-a", order_id=5, status="Cancelled", filled=0, remaining=10, **key)
    b.result("cancel_result", "kill-1", cancel, order_id=5, **key)
    b.add("kill_completed", "kill-1", method="graceful", orders_cancelled_count=1,
          orders_remaining_count=0, duration_seconds="0.8")
    b.add("run_completed", "run-a", status="interrupted")
    report = validate_bytes(b.data())
    assert report.valid, report.errors
    assert report.warnings == ()
    assert report.runs == 1


def test_concurrent_order_brackets_pair_by_op_id() -> None:
    """Several orders in flight at once (intents first, results later) pair by op_id."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[], skipped=[])
    b.add("risk_check_passed", "r1", checks=[])
    keys = [{"client_order_id": f"c{n}", "symbol": s} for n, s in enumerate(("AAPL", "MSFT"))]
    ops = [b.intent("order_intent", "r1", **k) for k in keys]
    for op, key in zip(reversed(ops), reversed(keys), strict=True):
        b.result("order_submitted", "r1", op, order_id=1, perm_id=2, status="Submitted", **key)
    b.add("run_completed", "r1", status="completed")
    report = validate_bytes(b.data())
    assert report.valid, report.errors


def test_repair_and_latch_invocations_are_valid_outside_runs() -> None:
    """tail_repaired and latch events under their own run_id need no run_started."""
    b = _log(1)
    b.add("tail_repaired", "repair-1", original_copy="audit.jsonl.torn", truncated_at_offset=10,
          bytes_removed=3)
    b.add("latch_set", "run-0", reason="orders incomplete")
    b.add("latch_cleared", "latch-1", reason="checked by hand")
    report = validate_bytes(b.data())
    assert report.valid, report.errors


# -- incomplete intents and interrupted runs --------------------------------------------------


def test_missing_result_is_an_incomplete_intent_not_an_error() -> None:
    """An order intent without a result is reported with its operation, line and client id."""
    b = LogBuilder()
    add_run_start(b, "r9")
    b.add("diff_computed", "r9", orders=[], skipped=[])
    b.add("risk_check_passed", "r9", checks=[])
    op = b.intent("order_intent", "r9", client_order_id="rb-r9-0", symbol="XOM", side="BUY",
                  shares=3, limit="110.00")
    report = validate_bytes(b.data())
    assert report.valid
    [item] = report.incomplete_intents
    assert (item.line, item.operation, item.op_id, item.client_order_id, item.run_id) == (
        len(b.lines), "place_order", op, "rb-r9-0", "r9")
    codes = [(w.line, w.code) for w in report.warnings]
    assert (len(b.lines), "incomplete_intent") in codes
    assert (1, "run_incomplete") in codes
    assert report.incomplete_runs == ("r9",)
    assert any("run r9 did not complete" in w.message for w in report.warnings)


def test_incomplete_read_intent_is_reported_with_its_operation() -> None:
    """A positions intent cut off by a crash is an incomplete 'positions' intent."""
    b = LogBuilder()
    b.add("run_started", "r2")
    b.intent("positions_intent", "r2")
    report = validate_bytes(b.data())
    assert report.valid
    assert [(i.line, i.operation) for i in report.incomplete_intents] == [(2, "positions")]


# -- corruption classes -----------------------------------------------------------------------


def test_bit_flip_in_a_value_is_a_hash_mismatch_on_that_line() -> None:
    """Changing one byte of a payload value breaks that record's hash, and only that line."""
    b = _log(1)
    n = _line_of(b, "order_intent")
    b.lines[n - 1] = b.lines[n - 1].replace(b'"AAPL"', b'"AAPM"')
    report = validate_bytes(b.data())
    assert not report.valid
    assert _codes(report) == [(n, "hash_mismatch")]
    assert report.errors[0].offset == sum(len(x) for x in b.lines[: n - 1])


def test_bit_flip_in_the_stored_hash_breaks_the_chain_at_the_next_line() -> None:
    """A damaged hash field is a mismatch on its line and a broken link on the next."""
    b = _log(1)
    n = 5
    stored = b.records[n - 1]["hash"]
    flipped = ("1" if stored[0] != "1" else "2") + stored[1:]
    b.lines[n - 1] = b.lines[n - 1].replace(stored.encode(), flipped.encode())
    report = validate_bytes(b.data())
    assert _codes(report) == [(n, "hash_mismatch"), (n + 1, "chain_broken")]


def test_bit_flip_that_breaks_json_is_mid_file_damage() -> None:
    """A flipped brace mid-file is malformed_json at that line, not a torn tail."""
    b = _log(1)
    b.lines[3] = b"[" + b.lines[3][1:]
    report = validate_bytes(b.data())
    assert _codes(report) == [(4, "malformed_json")]
    assert report.errors[0].offset == sum(len(x) for x in b.lines[:3])
    assert report.torn_tail_offset is None


def test_non_object_json_mid_file_is_not_an_object() -> None:
    """A JSON array between records is reported as not_an_object at its line."""
    b = _log(1)
    b.lines.insert(2, b"[1, 2, 3]\n")
    report = validate_bytes(b.data())
    assert _codes(report) == [(3, "not_an_object")]


def test_deleted_line_is_a_gap_and_a_broken_link_at_the_next_line() -> None:
    """Removing a record shows as sequence_gap and chain_broken where the hole is."""
    b = _log(1)
    del b.lines[6]
    report = validate_bytes(b.data())
    assert _codes(report) == [(7, "sequence_gap"), (7, "chain_broken")]


def test_deleted_first_line_is_detected_on_line_one() -> None:
    """A log whose first record is not sequence 1 / genesis has lost its start."""
    b = _log(1)
    del b.lines[0]
    report = validate_bytes(b.data())
    assert _codes(report)[:2] == [(1, "sequence_gap"), (1, "chain_broken")]


def test_swapped_lines_are_reported_on_both_lines() -> None:
    """Two records in the wrong order: a gap at the first, out-of-order at the second."""
    b = _log(1)
    b.lines[4], b.lines[5] = b.lines[5], b.lines[4]
    report = validate_bytes(b.data())
    codes = _codes(report)
    assert _first(report) == (5, "sequence_gap")
    assert (6, "sequence_not_monotonic") in codes
    assert (5, "chain_broken") in codes


def test_duplicated_line_is_a_sequence_duplicate() -> None:
    """A record written twice repeats its sequence number on the second copy."""
    b = _log(1)
    b.lines.insert(4, b.lines[3])
    report = validate_bytes(b.data())
    codes = _codes(report)
    assert _first(report) == (5, "sequence_duplicate")
    assert (5, "chain_broken") in codes
    assert all(line == 5 for line, _ in codes)


def test_an_old_sequence_number_reused_later_is_a_duplicate() -> None:
    """A record re-using a number far behind the current one is a duplicate, not a reorder."""
    b = _log(1)
    b.lines.append(b.lines[2])
    report = validate_bytes(b.data())
    assert _first(report) == (len(b.lines), "sequence_duplicate")


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda r: r.pop("config_hash"), "missing_field"),
        (lambda r: r.pop("ts"), "missing_field"),
        (lambda r: r.update(ts="2026-12-04 20:00:00"), "bad_timestamp"),
        (lambda r: r.update(ts="2026-12-04T20:00:00Z"), "bad_timestamp"),
        (lambda r: r.update(ts="2026-02-30T20:00:00.000000Z"), "bad_timestamp"),
        (lambda r: r.update(sequence_number="4"), "bad_field_type"),
        (lambda r: r.update(run_id=7), "bad_field_type"),
        (lambda r: r.update(event=3), "bad_field_type"),
    ],
)
def test_header_damage_is_reported_with_its_code(edit, code: str) -> None:
    """A record with a missing or wrongly typed header key is reported on its own line."""
    b = _log(1)
    record = dict(b.records[3])
    edit(record)
    b.lines[3] = _rehash(record)
    report = validate_bytes(b.data())
    assert (4, code) in _codes(report)
    assert report.errors[0].line == 4


@pytest.mark.parametrize(
    ("event", "drop", "code"),
    [
        ("order_intent", "client_order_id", "missing_field"),
        ("order_intent", "op_id", "missing_field"),
        ("order_submitted", "perm_id", "missing_field"),
        ("order_submitted", "latency_ms", "missing_field"),
        ("order_submitted", "symbol", "missing_field"),
    ],
)
def test_bracket_records_need_their_keys(event: str, drop: str, code: str) -> None:
    """Order records lacking op_id, client_order_id, symbol, perm_id or latency_ms are errors."""
    b = _log(1)
    n = _line_of(b, event)
    record = dict(b.records[n - 1])
    record.pop(drop)
    b.lines[n - 1] = _rehash(record)
    report = validate_bytes(b.data())
    assert (n, code) in _codes(report)


def test_bad_error_class_is_rejected() -> None:
    """error_class must be 'rejected' or 'ambiguous'."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[])
    b.add("risk_check_passed", "r1", checks=[])
    key = {"client_order_id": "c1", "symbol": "SPY"}
    op = b.intent("order_intent", "r1", **key)
    b.result("order_failed", "r1", op, error_class="maybe", error_type="X", error_message="m",
             **key)
    report = validate_bytes(b.data())
    assert _codes(report) == [(len(b.lines), "bad_field_type")]


# -- torn tails -------------------------------------------------------------------------------


def _good() -> tuple[LogBuilder, bytes]:
    b = _log(1)
    return b, b.data()


@pytest.mark.parametrize(
    "tail",
    [
        b'{"event":"order_int',  # cut mid-record
        b"\x00\x00\x00\x00",  # preallocated zeros after a crash
        b"garbage",  # junk without a newline
        b"   ",  # whitespace without a newline
        b"{}",  # a JSON object without a newline that is no record of ours
    ],
)
def test_torn_tail_is_one_error_at_the_first_bad_byte(tail: bytes) -> None:
    """Bytes after the last newline are a single torn_tail with its offset and line."""
    b, good = _good()
    report = validate_bytes(good + tail)
    assert not report.valid
    assert _codes(report) == [(len(b.lines) + 1, "torn_tail")]
    assert report.errors[0].offset == len(good)
    assert report.torn_tail_offset == len(good)
    assert str(len(good)) in report.errors[0].message
    assert report.records == len(b.lines)


@pytest.mark.parametrize(
    ("tail", "codes"),
    [
        (b"garbage\n", ["malformed_json"]),
        (b"garbage\n\x00\x00", ["malformed_json", "torn_tail"]),
        (b"not json\n{also not\n", ["malformed_json", "malformed_json"]),
        (b"[1]\n", ["not_an_object"]),
        (b"\n", ["blank_line"]),
        (b"   \n", ["blank_line"]),
        (b"\x00\x00\n", ["malformed_json"]),
    ],
)
def test_newline_terminated_bad_lines_at_the_end_are_damage_not_torn(
    tail: bytes, codes: list[str]
) -> None:
    """A bad line that ends in a newline is damage with its own code, even as the last line.

    Only what follows the last newline is a torn tail (the writer's rule in records.scan_log).
    """
    b, good = _good()
    report = validate_bytes(good + tail)
    assert [e.code for e in report.errors] == codes
    assert [e.line for e in report.errors] == list(range(len(b.lines) + 1,
                                                         len(b.lines) + 1 + len(codes)))
    assert report.errors[0].offset == len(good)
    assert report.errors[0].message.startswith("damaged line: ")
    if "torn_tail" in codes:
        assert report.torn_tail_offset == len(good) + tail.rindex(b"\n") + 1
    else:
        assert report.torn_tail_offset is None
    assert report.records == len(b.lines)


def test_last_record_overwritten_by_spaces_is_damage() -> None:
    """A newline-ended record blanked with spaces is a blank_line error, not a clean end."""
    b, good = _good()
    last = b.lines[-1]
    report = validate_bytes(good[: -len(last)] + b" " * (len(last) - 1) + b"\n")
    assert _codes(report) == [(len(b.lines), "blank_line")]
    assert report.torn_tail_offset is None


def test_complete_record_without_newline_is_a_torn_tail_that_repair_keeps() -> None:
    """A last record that is sound but lacks its newline is a torn tail that repair keeps.

    It is checked and counted like any record, so the report after repair only loses the
    torn_tail error.
    """
    b, good = _good()
    last = b.lines[-1]
    report = validate_bytes(good[:-1])
    assert _codes(report) == [(len(b.lines), "torn_tail")]
    assert report.torn_tail_offset == len(good) - len(last)
    assert report.torn_tail_complete is True
    assert report.as_dict()["torn_tail_complete"] is True
    assert "complete" in report.errors[0].message
    assert "keeps the record" in report.errors[0].message
    assert report.records == len(b.lines)
    repaired = validate_bytes(good)
    assert report.runs == repaired.runs
    assert report.incomplete_intents == repaired.incomplete_intents


def test_unterminated_intent_is_listed_as_incomplete() -> None:
    """A sound order intent lacking only its newline is an incomplete intent and a torn tail."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[order_row("r1", 0, "AAPL", "BUY", 10, "190.00")])
    b.add("risk_check_passed", "r1")
    b.intent("order_intent", "r1", client_order_id="rb-r1-0", symbol="AAPL")
    report = validate_bytes(b.data()[:-1])
    assert _codes(report) == [(len(b.lines), "torn_tail")]
    assert report.torn_tail_complete
    assert [(i.line, i.client_order_id) for i in report.incomplete_intents] == [
        (len(b.lines), "rb-r1-0")]


@pytest.mark.parametrize("edit", ["bad_hash", "bad_sequence", "bad_link", "non_canonical"])
def test_unterminated_record_that_is_not_sound_is_only_a_torn_tail(edit: str) -> None:
    """A last fragment that parses but does not verify or chain is a torn tail repair cuts."""
    b, good = _good()
    last = dict(b.records[-1])
    if edit == "bad_hash":
        raw = b.lines[-1][:-1].replace(last["hash"].encode(), b"1" * 64)
    elif edit == "bad_sequence":
        last["sequence_number"] += 1
        raw = _rehash(last)[:-1]
    elif edit == "bad_link":
        last["prev_hash"] = "2" * 64
        raw = _rehash(last)[:-1]
    else:
        raw = b.lines[-1][:-1] + b" "
    report = validate_bytes(good[: -len(b.lines[-1])] + raw)
    assert _codes(report) == [(len(b.lines), "torn_tail")]
    assert not report.torn_tail_complete
    assert "can cut it" in report.errors[0].message
    assert report.records == len(b.lines) - 1


def test_torn_tail_and_mid_file_damage_are_told_apart() -> None:
    """Damage in the middle stays malformed_json while the cut end is torn_tail."""
    b, _ = _good()
    b.lines[2] = b"{oops\n"
    report = validate_bytes(b.data() + b'{"ev')
    assert _codes(report) == [(3, "malformed_json"), (len(b.lines) + 1, "torn_tail")]


def test_trailing_blank_line_is_an_error_in_a_log_of_ours() -> None:
    """A newline-terminated blank line after our records is blank_line damage, not torn."""
    b, good = _good()
    report = validate_bytes(good + b"\n")
    assert not report.valid
    assert _codes(report) == [(len(b.lines) + 1, "blank_line")]
    assert report.torn_tail_offset is None


def test_blank_lines_before_any_record_are_judged_by_the_first_record() -> None:
    """Blank lines before a record of ours are errors; in an empty file they are errors too."""
    _, good = _good()
    assert _codes(validate_bytes(b"\n" + good)) == [(1, "blank_line")]
    assert _codes(validate_bytes(b"\n \n")) == [(1, "blank_line"), (2, "blank_line")]


# -- ordering and brackets --------------------------------------------------------------------


def test_diff_before_positions_is_an_order_violation() -> None:
    """diff_computed straight after run_started breaks the run order."""
    b = LogBuilder()
    b.add("run_started", "r1")
    b.add("diff_computed", "r1", orders=[])
    report = validate_bytes(b.data())
    assert _codes(report) == [(2, "order_violation")]
    assert "before positions" in report.errors[0].message


def test_order_intent_before_risk_check_is_an_order_violation() -> None:
    """An order intent right after the diff (no risk_check_passed) is rejected."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[])
    b.intent("order_intent", "r1", client_order_id="c", symbol="SPY")
    report = validate_bytes(b.data())
    assert _codes(report) == [(len(b.lines), "order_violation")]
    assert "before risk_check_passed" in report.errors[0].message


def test_quotes_before_positions_is_an_order_violation() -> None:
    """Quotes come after positions in a fresh run."""
    b = LogBuilder()
    b.add("run_started", "r1")
    b.bracket("quotes_intent", "r1")
    assert _first(validate_bytes(b.data())) == (2, "order_violation")


def test_diff_while_a_read_is_open_is_an_order_violation() -> None:
    """The diff cannot be computed while the positions fetch has no result."""
    b = LogBuilder()
    b.add("run_started", "r1")
    b.intent("positions_intent", "r1")
    b.add("diff_computed", "r1", orders=[])
    report = validate_bytes(b.data())
    assert _codes(report) == [(3, "order_violation")]
    assert "line 2" in report.errors[0].message


def test_result_without_intent_is_an_unknown_op() -> None:
    """A result whose op_id was never announced by an intent is unknown_op."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.result("positions_result", "r1", "r1:999")
    assert _codes(validate_bytes(b.data())) == [(len(b.lines), "unknown_op")]


def test_duplicate_op_id_is_an_order_violation() -> None:
    """Two intents may not share an op_id."""
    b = LogBuilder()
    b.add("run_started", "r1")
    b.add("positions_intent", "r1", op_id="r1:1")
    b.result("positions_result", "r1", "r1:1")
    b.add("positions_intent", "r1", op_id="r1:1")
    report = validate_bytes(b.data())
    assert _codes(report) == [(4, "order_violation")]
    assert "duplicate op_id" in report.errors[0].message


def test_second_result_for_one_intent_is_an_order_violation() -> None:
    """An intent is answered once."""
    b = LogBuilder()
    b.add("run_started", "r1")
    op = b.bracket("positions_intent", "r1")
    b.result("positions_result", "r1", op)
    assert _codes(validate_bytes(b.data())) == [(4, "order_violation")]


def test_result_of_the_wrong_operation_is_an_order_violation() -> None:
    """A quotes result cannot answer a positions intent."""
    b = LogBuilder()
    b.add("run_started", "r1")
    op = b.intent("positions_intent", "r1")
    b.result("quotes_result", "r1", op)
    assert _codes(validate_bytes(b.data())) == [(3, "order_violation")]


def test_events_after_run_completed_are_order_violations() -> None:
    """Nothing but cron_completed and free events may follow run_completed."""
    b = _log(1)
    b.add("diff_computed", "run-0", orders=[])
    report = validate_bytes(b.data())
    assert _codes(report) == [(len(b.lines), "order_violation")]
    assert "after the run ended" in report.errors[0].message


def test_order_after_risk_failure_is_an_order_violation() -> None:
    """risk_check_failed ends the run; an order intent after it is rejected."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[])
    b.add("risk_check_failed", "r1", checks=[])
    b.intent("order_intent", "r1", client_order_id="c", symbol="SPY")
    assert _first(validate_bytes(b.data())) == (len(b.lines), "order_violation")


def test_run_events_outside_a_run_are_order_violations() -> None:
    """diff_computed under a run_id that never started is out of place."""
    b = LogBuilder()
    b.add("diff_computed", "ghost", orders=[])
    report = validate_bytes(b.data())
    assert _codes(report) == [(1, "order_violation")]
    assert "no run_started" in report.errors[0].message


def test_second_run_started_for_a_run_id_is_an_order_violation() -> None:
    """A run id is started once."""
    b = _log(1)
    b.add("run_started", "run-0")
    assert _codes(validate_bytes(b.data())) == [(len(b.lines), "order_violation")]


def test_unknown_events_are_warned_not_rejected() -> None:
    """An event name the validator does not know is a warning (forward compatibility)."""
    b = _log(1)
    b.add("broker_reconnected", "run-0")
    b.add("broker_reconnected", "run-0")
    report = validate_bytes(b.data())
    assert report.valid
    [warning] = report.warnings
    assert warning.code == "unknown_event"
    assert "2 record(s)" in warning.message


# -- ancestor and mixed logs ------------------------------------------------------------------


def test_our_records_after_ancestor_records_make_a_mixed_valid_log() -> None:
    """A hash-chained tail after nanobook records validates; the format is 'mixed'."""
    from fixtures.audit_logs import FIXTURES

    old = (FIXTURES / "nanobook_old_format.jsonl").read_bytes()
    b = _log(1)
    report = validate_bytes(old + b.data())
    assert report.valid, report.errors
    assert report.format == "mixed"
    assert report.runs == 2
    assert "no_hash_chain" in [w.code for w in report.warnings]


def test_ancestor_record_after_chained_records_breaks_the_chain() -> None:
    """A header-less record slipped in after our records is a chain_broken error."""
    b = _log(1)
    b.lines.append(json.dumps({"event": "run_started", "ts": "2026-12-04T21:00:00Z"}).encode()
                   + b"\n")
    assert _codes(validate_bytes(b.data())) == [(len(b.lines), "chain_broken")]


def test_json_report_shape() -> None:
    """as_dict carries valid/errors/warnings and the extra keys, JSON-serialisable."""
    b = _log(1)
    b.lines[2] = b"{bad\n"
    doc = json.loads(json.dumps(validate_bytes(b.data()).as_dict()))
    assert doc["valid"] is False
    assert doc["errors"][0] == {"line": 3, "code": "malformed_json",
                                "message": doc["errors"][0]["message"],
                                "offset": sum(len(x) for x in b.lines[:2])}
    assert set(doc) >= {"valid", "errors", "warnings", "incomplete_intents", "format", "runs",
                        "records"}


def test_genesis_hash_is_required_on_the_first_record() -> None:
    """A first record whose prev_hash is not 64 zeros is chain_broken on line 1."""
    b = LogBuilder()
    b.prev = "ab" * 32
    b.add("run_started", "r1")
    assert b.records[0]["prev_hash"] != GENESIS_HASH
    assert _codes(validate_bytes(b.data())) == [(1, "chain_broken")]


def test_clock_stepping_back_is_a_warning() -> None:
    """A record stamped seconds before its predecessor is valid but warned about."""
    from datetime import timedelta

    b = LogBuilder()
    b.add("run_started", "r1")
    b.now -= timedelta(seconds=5)
    b.bracket("positions_intent", "r1")
    report = validate_bytes(b.data())
    assert report.valid
    assert (report.warnings[0].line, report.warnings[0].code) == (2, "clock_backwards")


def test_small_clock_steps_back_are_tolerated() -> None:
    """Concurrent writers may stamp a few milliseconds out of order: no warning."""
    from datetime import timedelta

    b = _log(1)
    b.now -= timedelta(milliseconds=200)
    b.add("latch_set", "kill-1", reason="x")
    assert validate_bytes(b.data()).warnings == ()


def test_bracket_after_run_end_is_flagged_once_per_record() -> None:
    """An intent and its result after run_completed are each one order_violation."""
    b = _log(1)
    b.bracket("positions_intent", "run-0")
    report = validate_bytes(b.data())
    assert _codes(report) == [(len(b.lines) - 1, "order_violation"),
                              (len(b.lines), "order_violation")]
    assert all("after the run ended" in e.message for e in report.errors)


def test_read_and_validate_returns_view_and_report(tmp_path) -> None:
    """One read gives the reader's view and the validator's report of the same bytes."""
    from rebalancer.audit.validate import read_and_validate

    b = _log(1)
    path = b.write(tmp_path / "audit.jsonl")
    view, report = read_and_validate(path)
    assert report.valid
    assert len(view.records) == report.records == len(b.lines)


def test_order_outside_the_plan_is_warned_about() -> None:
    """An order intent whose client id is not in the run's diff is valid but warned about."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[order_row("r1", 0, "SPY", "BUY", 1, "600.00")])
    b.add("risk_check_passed", "r1", checks=[])
    b.bracket("order_intent", "r1", client_order_id="rogue-1", symbol="TLT")
    report = validate_bytes(b.data())
    assert report.valid
    first = report.warnings[0]
    assert (first.line, first.code) == (len(b.lines) - 1, "order_not_planned")


def test_second_submission_of_a_client_order_id_is_warned_about() -> None:
    """The same client order id placed twice in one run is flagged (possible duplicate order)."""
    b = LogBuilder()
    add_run_start(b, "r1")
    row = order_row("r1", 0, "SPY", "BUY", 1, "600.00")
    b.add("diff_computed", "r1", orders=[row])
    b.add("risk_check_passed", "r1", checks=[])
    key = {"client_order_id": row["client_order_id"], "symbol": "SPY"}
    b.bracket("order_intent", "r1", **key)
    b.bracket("order_intent", "r1", **key)
    report = validate_bytes(b.data())
    assert report.valid
    codes = [(w.line, w.code) for w in report.warnings]
    assert codes == [(len(b.lines) - 1, "order_resubmitted"), (1, "run_incomplete")]


def test_recovery_may_resume_an_interrupted_run() -> None:
    """run_resumed reopens a run stopped gracefully; it goes through reads, diff and risk again."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[])
    b.add("risk_check_passed", "r1", checks=[])
    b.add("kill_completed", "r1", method="graceful", orders_cancelled_count=0,
          orders_remaining_count=0, duration_seconds=0.2)
    b.add("run_resumed", "r1", by="recover-1")
    b.bracket("positions_intent", "r1")
    b.add("diff_computed", "r1", orders=[])
    b.add("no_rebalance_needed", "r1")
    b.add("run_completed", "r1", status="no_op")
    report = validate_bytes(b.data())
    assert report.valid, report.errors
    assert report.warnings == ()
    run = parse_log(b.data()).runs[0]
    assert run.terminal is not None
    assert run.terminal.event == "run_completed"


def test_a_completed_run_cannot_be_resumed() -> None:
    """run_resumed after run_completed is an order_violation."""
    b = _log(1)
    b.add("run_resumed", "run-0")
    assert _codes(validate_bytes(b.data())) == [(len(b.lines), "order_violation")]


def test_crlf_line_endings_are_not_canonical() -> None:
    """A log whose newlines were turned into CRLF no longer holds the bytes that were hashed.

    Every line is reported as non_canonical (the parsed values still match the hash).
    """
    b = _log(1)
    report = validate_bytes(b.data().replace(b"\n", b"\r\n"))
    assert _codes(report) == [(n, "non_canonical") for n in range(1, len(b.lines) + 1)]
    assert "CRLF" in report.errors[0].message
    assert "parsed values still match the hash" in report.errors[0].message
    assert report.records == len(b.lines)
