"""The chain scanner: valid prefix, torn tail versus mid-file damage (property tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rebalancer.audit.errors import AuditCorruptError
from rebalancer.audit.records import GENESIS_HASH, encode_record, scan_log

TS = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def _log(n: int) -> tuple[bytes, list[int]]:
    """A valid n-record log and the start offset of each record."""
    prev, out, offsets = GENESIS_HASH, b"", []
    for seq in range(1, n + 1):
        enc = encode_record(
            event="order_status", sequence_number=seq, run_id="r", config_hash="c",
            prev_hash=prev, ts=TS, payload={"client_order_id": f"rb1-{seq}", "filled": seq},
        )
        offsets.append(len(out))
        out += enc.line
        prev = enc.hash
    return out, offsets


LOG, OFFSETS = _log(4)


def test_scan_of_a_valid_log_reaches_its_end() -> None:
    """A clean log scans to its last byte with its last number and hash."""
    scan = scan_log(LOG)
    assert scan.records == 4
    assert scan.end_offset == len(LOG)
    assert scan.last_sequence_number == 4
    assert scan.torn_offset is None
    assert scan.lines == 4


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=200).filter(lambda junk: b"\n" not in junk))
def test_any_unterminated_junk_is_a_torn_tail_at_the_end_of_the_chain(junk: bytes) -> None:
    """Non-empty bytes after the last newline are a torn tail at its offset."""
    scan = scan_log(LOG + junk)
    assert scan.torn_offset == len(LOG)
    assert scan.tail_record is None
    assert scan.records == 4
    assert scan.end_offset == len(LOG)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100), st.binary(max_size=100))
def test_newline_terminated_junk_after_the_records_is_corruption(
    line: bytes, rest: bytes
) -> None:
    """A newline-terminated line that is not the next record is damage, never a torn tail."""
    with pytest.raises(AuditCorruptError) as info:
        scan_log(LOG + line + b"\n" + rest)
    assert info.value.offset == len(LOG)


@pytest.mark.parametrize("tail", [b"\n", b" \n", b"\t \r\n", b"\n\n", b"\n{\"event\":\"x"])
def test_blank_last_line_is_corruption(tail: bytes) -> None:
    """A blank or whitespace-only newline-terminated line, even the last one, is damage."""
    with pytest.raises(AuditCorruptError, match=r"blank|whitespace"):
        scan_log(LOG + tail)


def test_a_complete_last_record_without_newline_is_a_torn_tail_holding_the_record() -> None:
    """A valid next record missing only its newline is torn, with the record in tail_record."""
    scan = scan_log(LOG[:-1])
    assert scan.torn_offset == OFFSETS[3]
    assert "complete" in (scan.torn_reason or "")
    assert scan.tail_record is not None
    assert scan.tail_record["sequence_number"] == 4
    assert (scan.records, scan.last_sequence_number, scan.end_offset) == (3, 3, OFFSETS[3])


def test_an_unterminated_record_that_does_not_chain_is_a_plain_torn_tail() -> None:
    """An unterminated, valid-looking record that is not the next one is just torn bytes."""
    scan = scan_log(LOG[: OFFSETS[3]] + LOG[OFFSETS[2] : OFFSETS[3] - 1])
    assert scan.torn_offset == OFFSETS[3]
    assert scan.tail_record is None


def test_a_complete_tail_after_a_known_point_is_found() -> None:
    """Scanning from a known point finds a complete unterminated next record too."""
    head = scan_log(LOG[: OFFSETS[3]])
    tail = scan_log(
        LOG[OFFSETS[3] : -1], base_offset=OFFSETS[3], base_line=head.lines,
        last_sequence_number=head.last_sequence_number, last_hash=head.last_hash,
    )
    assert tail.torn_offset == OFFSETS[3]
    assert tail.tail_record is not None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_flipped_byte_in_any_terminated_record_is_corruption(data: st.DataObject) -> None:
    """Changing any non-newline byte of any record, the last one too, is AuditCorruptError."""
    position = data.draw(st.integers(min_value=0, max_value=len(LOG) - 2))
    if LOG[position] == ord("\n"):
        position -= 1
    new = data.draw(st.integers(min_value=0, max_value=255).filter(
        lambda b: b not in (LOG[position], ord("\n"))
    ))
    damaged = bytearray(LOG)
    damaged[position] = new
    with pytest.raises(AuditCorruptError):
        scan_log(bytes(damaged))


@pytest.mark.parametrize("drop", [0, 1, 2])
def test_a_deleted_record_is_a_sequence_gap(drop: int) -> None:
    """Removing a record in the middle breaks the numbering and is corruption."""
    start, end = OFFSETS[drop], OFFSETS[drop + 1]
    with pytest.raises(AuditCorruptError, match=r"sequence_number|prev_hash"):
        scan_log(LOG[:start] + LOG[end:])


def test_a_duplicated_record_is_reported_as_duplicate() -> None:
    """A record repeated is a duplicate sequence number."""
    second = LOG[OFFSETS[1]:OFFSETS[2]]
    with pytest.raises(AuditCorruptError, match="duplicate"):
        scan_log(LOG[: OFFSETS[2]] + second + LOG[OFFSETS[2]:])


def test_scan_continues_from_a_known_point() -> None:
    """Scanning only the bytes after record 2, given its number and hash, checks the rest."""
    head = scan_log(LOG[: OFFSETS[2]])
    tail = scan_log(
        LOG[OFFSETS[2]:], base_offset=OFFSETS[2], base_line=head.lines,
        last_sequence_number=head.last_sequence_number, last_hash=head.last_hash,
    )
    assert tail.records == 2
    assert tail.end_offset == len(LOG)
    assert tail.lines == 4


def _with_float(value: float) -> tuple[bytes, int]:
    """A valid 2-record log whose first record carries ``value``; and where record 2 starts."""
    prev, out, second = GENESIS_HASH, b"", 0
    for seq in (1, 2):
        enc = encode_record(
            event="order_status", sequence_number=seq, run_id="r", config_hash="c",
            prev_hash=prev, ts=TS, payload={"ratio": value, "client_order_id": "rb1-x"},
        )
        second = len(out)
        out += enc.line
        prev = enc.hash
    return out, second


@pytest.mark.parametrize(
    ("value", "old", "new"),
    [
        (1e-05, b"1e-05", b"1E-05"),
        (0.1 + 0.2, b"0.30000000000000004", b"0.30000000000000005"),
        (0.5, b"0.5", b"0.50"),
        (2.0, b"2.0", b"2.00000000000000000001"),
    ],
)
@pytest.mark.parametrize("which", ["first", "last"])
def test_a_respelled_number_is_corruption(
    value: float, old: bytes, new: bytes, which: str
) -> None:
    """A number re-spelled to the same float (same parsed record and hash) is damage."""
    log, second = _with_float(value)
    start = 0 if which == "first" else second
    line_end = log.index(b"\n", start)
    assert log[start:line_end].count(old) == 1
    damaged = log[:start] + log[start:line_end].replace(old, new) + log[line_end:]
    with pytest.raises(AuditCorruptError, match="canonical") as info:
        scan_log(damaged)
    assert info.value.offset == start


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'{"client_order_id"', b'{ "client_order_id"'),  # whitespace
        (b'"run_id":"r"', b'"run_id":"\\u0072"'),  # needless escape
        (b'{"client_order_id":"rb1-x"', b'{"client_order_id":"rb1-y","client_order_id":"rb1-x"'),
    ],
)
def test_non_canonical_spellings_of_a_record_are_corruption(old: bytes, new: bytes) -> None:
    """Extra whitespace, escapes and duplicate keys in a terminated line are damage."""
    log, _ = _with_float(0.25)
    assert log.count(old) == 2
    with pytest.raises(AuditCorruptError):
        scan_log(log.replace(old, new, 1))
