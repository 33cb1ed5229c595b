"""Validator: lines of ours are exact canonical bytes, parsed strictly; hostile header values."""

from __future__ import annotations

import json

import pytest
from fixtures.audit_logs import LogBuilder, add_full_run

from rebalancer.audit.reader import canonical_fast, parse_log
from rebalancer.audit.records import canonical_bytes, record_hash
from rebalancer.audit.validate import ValidationReport, validate_bytes


def _codes(report: ValidationReport) -> list[tuple[int | None, str]]:
    return [(e.line, e.code) for e in report.errors]


def _log() -> LogBuilder:
    b = LogBuilder()
    add_full_run(b, "run-1")
    return b


def _with_floats() -> LogBuilder:
    b = _log()
    b.add("kill_requested", "run-1", price=0.1 + 0.2, commission=1e-05)
    return b


@pytest.mark.parametrize(
    "hash_json",
    [
        json.dumps("\u00e9" * 64, ensure_ascii=False).encode(),  # raw UTF-8
        json.dumps("\u00e9" * 64).encode(),  # \u00e9 escapes
        b'"\\ud800"',  # a lone surrogate
        b'"' + b"A" * 64 + b'"',  # upper-case hex
        b'"' + "\u0661".encode() * 64 + b'"',  # Unicode digits
    ],
)
def test_hash_that_is_not_64_lowercase_hex_is_bad_field_type(hash_json: bytes) -> None:
    """A hash value that is not 64 lowercase hex digits is reported, never a crash."""
    b = _log()
    line = b.lines[0]
    stored = b.records[0]["hash"].encode()
    b.lines[0] = line.replace(b'"' + stored + b'"', hash_json)
    report = validate_bytes(b.data())
    assert (1, "bad_field_type") in _codes(report)
    assert "64 lowercase hex" in report.errors[0].message
    assert report.records == len(b.lines)


def test_duplicate_key_in_a_record_of_ours_is_damage_not_a_record() -> None:
    """A line of ours with a repeated key fails the strict parse: malformed_json, no record."""
    b = _log()
    b.lines[3] = b.lines[3].replace(b"{", b'{"event":"order_submitted",', 1)
    report = validate_bytes(b.data())
    assert _codes(report)[0] == (4, "malformed_json")
    assert "duplicate key" in report.errors[0].message
    assert report.records == len(b.lines) - 1
    view = parse_log(b.data())
    assert [(p.line, p.code) for p in view.problems] == [(4, "malformed_json")]
    assert len(view.records) == len(b.lines) - 1


def test_duplicate_key_with_the_same_value_is_still_damage() -> None:
    """Even a repeated key holding the very same value is refused for our format."""
    b = _log()
    b.lines[3] = b.lines[3].replace(b'"event":', b'"event":"x","event":', 1)
    assert _codes(validate_bytes(b.data()))[0] == (4, "malformed_json")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_in_a_record_of_ours_are_damage(constant: bytes) -> None:
    """Non-JSON constants make a line of ours malformed_json (the writer never writes them)."""
    b = _log()
    b.lines[4] = b.lines[4].replace(b'"latency_ms":12', b'"latency_ms":' + constant)
    report = validate_bytes(b.data())
    assert _codes(report)[0] == (5, "malformed_json")
    assert constant.lstrip(b"-").decode() in report.errors[0].message


def test_ancestor_lines_keep_the_lenient_parse() -> None:
    """Ancestor records with a repeated key or NaN are still read as records."""
    data = (b'{"event":"run_started","event":"run_started","ts":"2026-03-02T15:00:00Z"}\n'
            b'{"event":"quote","price":NaN,"ts":"2026-03-02T15:00:01Z"}\n')
    report = validate_bytes(data)
    assert report.records == 2
    assert not [e for e in report.errors if e.code == "malformed_json"]
    assert len(parse_log(data).records) == 2


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"1e-05", b"1E-05"),  # one bit: e -> E
        (b"0.30000000000000004", b"0.30000000000000005"),  # same double, other digits
        (b"0.30000000000000004", b"0.300000000000000040"),  # a trailing zero
        (b"1e-05", b"1.0e-05"),  # another spelling of the same number
        (b'"kill_requested"', b'"kill_\\u0072equested"'),  # an escape for a plain letter
        (b'"price":', b'"price": '),  # whitespace
        (b"}", b"} "),  # trailing whitespace
    ],
)
def test_line_that_is_not_the_canonical_encoding_is_non_canonical(old: bytes, new: bytes) -> None:
    """Bytes that parse to the same values but are not what was hashed are non_canonical."""
    b = _with_floats()
    n = max(i for i, line in enumerate(b.lines) if old in line)
    b.lines[n] = b.lines[n].replace(old, new, 1)
    report = validate_bytes(b.data())
    assert _codes(report) == [(n + 1, "non_canonical")]
    assert "canonical JSON" in report.errors[0].message


def test_crlf_ending_is_named_in_the_message() -> None:
    """A CRLF line ending is called out as such."""
    b = _log()
    b.lines[2] = b.lines[2][:-1] + b"\r\n"
    report = validate_bytes(b.data())
    assert _codes(report) == [(3, "non_canonical")]
    assert "CRLF" in report.errors[0].message


def test_keys_out_of_order_with_a_correct_hash_are_non_canonical() -> None:
    """A record re-serialised with unsorted keys (hash still right) is non_canonical."""
    b = _log()
    record = b.records[2]
    b.lines[2] = json.dumps(dict(reversed(list(record.items()))),
                            separators=(",", ":")).encode() + b"\n"
    report = validate_bytes(b.data())
    assert _codes(report) == [(3, "non_canonical")]
    assert "still match the hash" in report.errors[0].message


def test_hash_entry_moved_out_of_its_sorted_place_is_non_canonical() -> None:
    """The hash entry must sit in its sorted place, not e.g. at the end of the object."""
    b = _log()
    record = b.records[2]
    body = canonical_bytes({k: v for k, v in record.items() if k != "hash"})
    moved = body[:-1] + b',"hash":"' + record["hash"].encode() + b'"}'
    assert not canonical_fast(json.loads(moved), moved, record["hash"])
    b.lines[2] = moved + b"\n"
    assert _codes(validate_bytes(b.data())) == [(3, "non_canonical")]


def test_canonical_fast_accepts_every_line_the_writer_wrote() -> None:
    """The fast proof holds for real lines (so the validator stays on its fast path)."""
    b = _with_floats()
    for line, record in zip(b.lines, b.records, strict=True):
        body = line[:-1]
        assert canonical_fast(json.loads(body), body, record["hash"])


def test_value_change_in_canonical_bytes_is_still_a_hash_mismatch() -> None:
    """An edit that keeps the line canonical but changes a value is hash_mismatch."""
    b = _log()
    b.lines[4] = b.lines[4].replace(b'"latency_ms":12', b'"latency_ms":13')
    assert _codes(validate_bytes(b.data())) == [(5, "hash_mismatch")]


def test_rehashed_edit_is_only_caught_by_the_chain() -> None:
    """A forged record with a recomputed hash still breaks the next record's prev_hash."""
    b = _log()
    record = dict(b.records[4])
    record["latency_ms"] = 13
    del record["hash"]
    record["hash"] = record_hash(record)
    b.lines[4] = canonical_bytes(record) + b"\n"
    assert _codes(validate_bytes(b.data())) == [(6, "chain_broken")]


def test_unicode_digits_in_a_timestamp_are_a_bad_timestamp() -> None:
    """Non-ASCII digits never pass as a timestamp of ours (and never crash)."""
    b = _log()
    b.lines[0] = b.lines[0].replace(b'"ts":"2', b'"ts":"\\u0662', 1)
    assert (1, "bad_timestamp") in _codes(validate_bytes(b.data()))


def test_blank_lines_in_an_ancestor_log_are_warnings() -> None:
    """The ancestor wrote blank lines harmlessly: mid-file and at the end they only warn."""
    data = (b'{"event":"run_started","ts":"2026-03-02T15:00:00Z"}\n\n'
            b'{"event":"run_completed","ts":"2026-03-02T15:00:01Z"}\n  \n')
    report = validate_bytes(data)
    assert report.valid, report.errors
    assert [(w.line, w.code) for w in report.warnings if w.code == "blank_line"] == [
        (2, "blank_line"), (4, "blank_line")]
    assert report.torn_tail_offset is None
    assert [(p.line, p.code) for p in parse_log(data).problems] == [
        (2, "blank_line"), (4, "blank_line")]


def test_blank_line_between_records_of_ours_is_damage() -> None:
    """A blank line inside our log is a blank_line error at its line."""
    b = _log()
    b.lines.insert(5, b"\n")
    report = validate_bytes(b.data())
    assert _codes(report) == [(6, "blank_line")]
