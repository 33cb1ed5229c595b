"""No input breaks the audit tools: validator, reader, timeline and CLI over hostile logs.

Hypothesis feeds arbitrary bytes and real logs (ours and the ancestor fixtures) mutated at the
byte level and at the value level (surrogates, control characters, huge numbers, deep nesting,
wrong types, duplicate keys, NaN). Only our report types may come out: no exception from
``validate_bytes``/``parse_log``/the view's helpers/``render_timeline``, and the CLI never takes
its internal-error exit. The validator's torn-tail verdict also matches the writer's scanner.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from fixtures.audit_logs import FIXTURES, LogBuilder, add_full_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rebalancer.audit.errors import AuditCorruptError
from rebalancer.audit.reader import AuditLogView, parse_log
from rebalancer.audit.records import canonical_bytes, record_hash, scan_log
from rebalancer.audit.timeline import render_timeline
from rebalancer.audit.validate import ValidationReport, validate_bytes
from rebalancer.cli.main import main
from rebalancer.exit_codes import ExitCode

_OURS = LogBuilder()
add_full_run(_OURS, "run-a")
_OURS.add("kill_requested", "run-a", price=0.1 + 0.2, commission=1e-05)
OURS = _OURS.data()
OURS_RECORDS = tuple(_OURS.records)
ANCESTOR = tuple(p.read_bytes() for p in sorted(FIXTURES.glob("nanobook_*.jsonl")))
BASES = (OURS, *ANCESTOR)

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SNIPPETS = (
    b"\n", b"\n\n", b"\r\n", b" \n", b"\x00\x00", b"\xff\xfe", b"\xef\xbb\xbf", b'"\\ud800"',
    b"NaN", b"-Infinity", b"1e999", b"9" * 5000, b"[" * 3000, b'{"a":' * 200, b"\x1b[31m",
    b'"hash":"' + "\u00e9".encode() * 64 + b'"', b'{"event":"x",', b',"event":"order_intent"',
    b'"\\u0000"', b"}", b'"', b"\\",
)

_HOSTILE_TEXT = st.sampled_from([
    "\ud800", "\x1b[2J", "a\nb", "\u202e", "", " ", "\u0662026-12-04T20:00:00.000000Z",
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "1e999999999", "-0", "NaN",
    "order_intent", "run-a", "run-a:5", "AAPL", "x" * 10_000,
])
_HOSTILE_VALUE: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20) | _HOSTILE_TEXT
    | st.just(10**4000),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "status", "symbol", "client_order_id", "shares", "limit",
                         "reason", "qty", "avg_cost", "limit_price_cents", "op_id"]) | st.text(
            max_size=5), inner, max_size=3),
    max_leaves=8,
)
_KEYS = ("event", "ts", "hash", "prev_hash", "sequence_number", "run_id", "config_hash", "op_id",
         "symbol", "client_order_id", "orders", "checks", "latency_ms", "status", "unusable",
         "positions", "price", "shares", "order_id", "error_class", "window_id", "checkpoint",
         "approved", "passed", "filled", "avg_price", "limit_price_cents", "quotes")


@st.composite
def mutated_log(draw: st.DrawFn, bases: tuple[bytes, ...] = BASES) -> bytes:
    """A real log with one to four byte-level or value-level edits."""
    data = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "lines", "value"]))
        pos = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from(SNIPPETS) | st.binary(max_size=8))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(min_value=1, max_value=40))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "lines":
            lines = bytes(data).splitlines(keepends=True)
            if len(lines) >= 2:
                i = draw(st.integers(min_value=0, max_value=len(lines) - 2))
                if draw(st.booleans()):
                    lines[i], lines[i + 1] = lines[i + 1], lines[i]
                else:
                    lines.insert(i, lines[i])
                data = bytearray(b"".join(lines))
        elif kind == "value":
            data = bytearray(_edit_value(draw, bytes(data)))
    return bytes(data)


def _edit_value(draw: st.DrawFn, data: bytes) -> bytes:
    """Set one key of one parseable line to a hostile value; often re-hash it (so the hash check
    passes and the deeper rules run)."""
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    try:
        record = json.loads(lines[i])
    except ValueError:
        return data
    if not isinstance(record, dict):
        return data
    record[draw(st.sampled_from(_KEYS))] = draw(_HOSTILE_VALUE)
    if draw(st.booleans()) and "hash" in record:
        body = {k: v for k, v in record.items() if k != "hash"}
        try:
            record["hash"] = record_hash(body)
            lines[i] = canonical_bytes({**body, "hash": record["hash"]}) + b"\n"
        except ValueError:
            return data
    else:
        lines[i] = json.dumps(record, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    return b"".join(lines)


def _exercise(data: bytes) -> tuple[ValidationReport, AuditLogView]:
    """Every pure entry point, as recovery, status and the timeline call them."""
    report = validate_bytes(data)
    assert isinstance(report, ValidationReport)
    json.dumps(report.as_dict())
    view = parse_log(data)
    assert isinstance(view, AuditLogView)
    assert report.records == len(view.records)
    assert report.torn_tail_offset == (None if view.torn_tail is None else view.torn_tail.offset)
    assert report.torn_tail_complete == (view.torn_tail is not None and view.torn_tail.complete)
    view.incomplete_intents  # noqa: B018 - computed property: must not raise
    _ = view.last_run, view.good_length
    for run in view.runs:
        _ = run.terminal, run.completed, run.window_id, run.incomplete, run.fills()
        _ = run.diff_orders(), [(t.order_id, t.filled_shares, t.last_status, t.incomplete)
                                for t in run.orders()]
        for record in run.records:
            _ = record.timestamp, record.money("price"), record.money("limit_price_cents")
            _ = record.shares("shares"), record.operation
    for bracket in view.brackets:
        _ = bracket.ok, bracket.error_class, bracket.client_order_id
    for line in render_timeline(view, report):
        line.encode("utf-8")  # strict: no lone surrogates reach the terminal
        assert "\n" not in line
        assert "\x1b" not in line
    return report, view


def _cli(data: bytes, *argv: str) -> tuple[int, str]:
    """Run ``rebalancer audit ...`` on ``data`` with a strict UTF-8 stdout."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.jsonl"
        path.write_bytes(data)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(["audit", *argv, str(path)])
    out.seek(0)
    return code, out.read()


@SETTINGS
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_break_the_tools(data: bytes) -> None:
    """Any bytes give a report, a view and a timeline, never an exception."""
    _exercise(data)


@SETTINGS
@given(mutated_log())
def test_mutated_real_logs_never_break_the_tools(data: bytes) -> None:
    """Real logs with hostile edits give a report, a view and a timeline, never an exception."""
    _exercise(data)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_log())
def test_cli_never_takes_the_internal_error_exit(data: bytes) -> None:
    """validate (text and --json) and show exit OK or AUDIT_FAILURE and print valid UTF-8."""
    report = validate_bytes(data)
    want = ExitCode.OK if report.valid else ExitCode.AUDIT_FAILURE
    assert _cli(data, "validate")[0] == want
    code, out = _cli(data, "validate", "--json")
    assert code == want
    assert json.loads(out)["error_count"] == report.error_count
    assert _cli(data, "show")[0] == ExitCode.OK


@SETTINGS
@given(mutated_log(bases=(OURS,)))
def test_torn_tail_verdict_matches_the_writers_scanner(data: bytes) -> None:
    """Where scan_log (the writer's rule) sees a torn tail, so does the validator; where it
    sees damage, the validator reports an error that is not just the torn tail."""
    report = validate_bytes(data)
    try:
        scan = scan_log(data)
    except AuditCorruptError:
        assert {e.code for e in report.errors} - {"torn_tail"}, report.errors
        return
    assert scan.ancestor_line is None
    assert report.torn_tail_offset == scan.torn_offset
    assert report.torn_tail_complete == (scan.tail_record is not None)
    structural = {e.code for e in report.errors} - {"torn_tail", "order_violation",
                                                    "unknown_op", "missing_field",
                                                    "bad_field_type", "bad_timestamp"}
    assert not structural, report.errors


def test_hostile_values_through_the_cli_are_escaped() -> None:
    """A surrogate and a terminal escape in a run id are printed escaped by validate and show."""
    b = LogBuilder()
    add_full_run(b, "run-\ud800-\x1b[2J")
    for argv in (("validate",), ("show",)):
        code, out = _cli(b.data()[:-1], *argv)  # torn: validate lists the run's records
        assert code in (ExitCode.OK, ExitCode.AUDIT_FAILURE)
        assert "\x1b" not in out
    code, out = _cli(b.data(), "show")
    assert code == ExitCode.OK
    assert "run-\\ud800-\\x1b[2J" in out
