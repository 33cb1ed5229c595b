"""The human timeline: one line per record, runs grouped, incomplete intents marked."""

from __future__ import annotations

from fixtures.audit_logs import FIXTURES, LogBuilder, add_full_run, add_run_start

from rebalancer.audit.reader import Record, parse_log, read_log
from rebalancer.audit.timeline import (
    INCOMPLETE_MARK,
    describe,
    printable,
    render_timeline,
    short_id,
)
from rebalancer.audit.validate import validate_bytes


def test_interleaved_records_are_grouped_under_their_run() -> None:
    """Records of a kill invocation inside a run are listed under the invocation's header."""
    b = LogBuilder()
    add_run_start(b, "run-a")
    b.add("kill_requested", "kill-1", method="graceful")
    b.add("diff_computed", "run-a", orders=[])
    lines = render_timeline(parse_log(b.data()))
    headers = [line for line in lines if line.startswith("==")]
    assert headers == [
        "== run run-a (2026-12-04, 8 records, did not complete) ==",
        "== invocation kill-1 (2026-12-04, 1 records, not a run) ==",
    ]
    run_block = lines[lines.index(headers[0]) + 1: lines.index(headers[1])]
    assert run_block[-2].split()[3] == "diff_computed"
    assert "kill_requested" in lines[-1]


def test_record_line_shows_time_seq_run_event_and_key_fields() -> None:
    """An order intent line carries time, sequence number, run id and the order fields."""
    b = LogBuilder()
    add_full_run(b, "run-a")
    lines = render_timeline(parse_log(b.data()))
    intent = next(line for line in lines if " order_intent " in line)
    assert intent.startswith("  20:00:00.")
    assert "#11 " in intent
    assert "run-a" in intent
    assert "AAPL SELL 20 @ 189.91 cid rb-run-a-0" in intent
    filled = next(line for line in lines if " order_filled " in line)
    assert "status Filled" in filled


def test_incomplete_intent_is_marked() -> None:
    """An intent without a result is followed by the INCOMPLETE mark with its operation."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[])
    b.add("risk_check_passed", "r1", checks=[])
    b.intent("order_intent", "r1", client_order_id="c1", symbol="TLT", side="BUY", shares=4,
             limit="88.10")
    lines = render_timeline(parse_log(b.data()))
    at = next(i for i, line in enumerate(lines) if " order_intent " in line)
    assert lines[at + 1].strip() == f"{INCOMPLETE_MARK} (line {len(b.lines)}, place_order)"
    assert sum(INCOMPLETE_MARK in line for line in lines) == 1


def test_validator_errors_close_the_listing() -> None:
    """Errors from the validator are printed at the end with line and code."""
    b = LogBuilder()
    add_full_run(b, "r1")
    b.lines[2] = b.lines[2].replace(b'"latency_ms":12', b'"latency_ms":99')
    data = b.data()
    lines = render_timeline(parse_log(data), validate_bytes(data))
    assert lines[-2] == "validation: INVALID (1 error(s))"
    assert lines[-1].startswith("  error   line 3: hash_mismatch:")


def test_torn_tail_and_damaged_lines_are_shown() -> None:
    """Unreadable lines and the torn tail are listed with their offsets."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.lines.insert(1, b"junk\n")
    data = b.data() + b"\x00\x00"
    lines = render_timeline(parse_log(data))
    assert "  line 2 (byte " in "\n".join(lines)
    assert lines[-1].startswith(f"!! torn tail at line {len(b.lines) + 1}, byte offset")


def test_run_filter_keeps_one_group() -> None:
    """run_id limits the listing to one run."""
    b = LogBuilder()
    add_full_run(b, "run-a")
    add_full_run(b, "run-b")
    lines = render_timeline(parse_log(b.data()), run_id="run-b")
    assert [line for line in lines if line.startswith("==")] == [
        "== run run-b (2026-12-04, 21 records, completed) =="]


def test_ancestor_records_show_dash_free_checkpoint_numbers_and_dollar_values() -> None:
    """Ancestor records show their checkpoint number (or '-') and float dollar values."""
    view = read_log(FIXTURES / "nanobook_old_format.jsonl")
    lines = render_timeline(view)
    assert lines[0] == "audit log: nanobook format, 7 records, 1 run(s)"
    submitted = next(line for line in lines if " order_submitted " in line)
    assert "#-" in submitted
    assert "JNJ BUY 60 @ 158.4 order 7" in submitted


def test_describe_summarises_risk_and_quote_gate() -> None:
    """Risk checks list the ones that did not pass; the quote gate lists unusable symbols."""
    b = LogBuilder()
    b.add("risk_check_failed", "r", checks=[{"name": "max_trade", "status": "FAIL"},
                                            {"name": "max_orders", "status": "PASS"}])
    b.add("quote_gate_failed", "r", unusable=[{"symbol": "GLD", "reason": "stale"}])
    view = parse_log(b.data())
    assert describe(view.records[0]) == "2 check(s), not passed: max_trade"
    assert describe(view.records[1]) == "unusable: GLD (stale)"


def test_short_id_cuts_long_run_ids() -> None:
    """Long run ids are cut to the column width with a visible mark."""
    assert short_id("run-a") == "run-a"
    assert short_id("20261204T200000Z-4f1a9c") == "~4f1a9c"
    assert short_id("abcdefghijklmnop") == "abcdefghijk~"


def test_aborted_run_shows_its_reason_and_error() -> None:
    """run_aborted lines carry the reason and the error text."""
    b = LogBuilder()
    b.add("run_started", "r1")
    b.add("run_aborted", "r1", reason="broker_unreachable", error="connection refused")
    lines = render_timeline(parse_log(b.data()))
    aborted = next(line for line in lines if " run_aborted " in line)
    assert aborted.endswith("reason broker_unreachable error connection refused")
    assert "(2026-12-04, 2 records, ended by run_aborted)" in lines[2]


def test_printable_escapes_controls_and_lone_surrogates() -> None:
    """Terminal escapes, newlines, bidi overrides and lone surrogates are shown escaped."""
    assert printable("plain AAPL 185.09") == "plain AAPL 185.09"
    assert printable("a\x1b[2Jb\nc") == "a\\x1b[2Jb\\x0ac"
    assert printable("x\ud800y\u202ez") == "x\\ud800y\\u202ez"
    assert printable("\U000e0001") == "\\U000e0001"
    printable("x\ud800").encode("utf-8")


def test_hostile_values_are_rendered_escaped_and_short() -> None:
    """A run id with an escape sequence and a surrogate is escaped on every line it appears."""
    b = LogBuilder()
    add_full_run(b, "r-\x1b]0;pwned\x07-\ud800")
    lines = render_timeline(parse_log(b.data()))
    assert all("\x1b" not in line and "\x07" not in line for line in lines)
    "\n".join(lines).encode("utf-8")
    assert any("r-\\x1b]0;pwned\\x07-\\ud800" in line for line in lines)


def test_describe_tolerates_wrong_types_in_nested_rows() -> None:
    """Check names that are not strings and odd unusable rows are shown, not a TypeError."""
    risk = Record(line=1, offset=0, format="rebalancer", fields={
        "event": "risk_check_failed",
        "checks": [{"name": ["x"], "status": "FAIL"}, {"name": 7, "status": None}, "junk"],
    })
    assert describe(risk).startswith("3 check(s), not passed: ['x'], 7")
    gate = Record(line=1, offset=0, format="rebalancer", fields={
        "event": "quote_gate_failed", "unusable": [{"symbol": {"a": 1}, "reason": None}, 5],
    })
    assert describe(gate).startswith("unusable: {'a': 1} (None)")
