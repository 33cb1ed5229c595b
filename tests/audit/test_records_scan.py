"""The chain scanner: valid prefix, torn tail versus mid-file damage (property tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rebalancer.audit.errors import AuditCorruptError
from rebalancer.audit.records import GENESIS_HASH, encode_record, parse_line, scan_log

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


def _not_an_object_line(junk: bytes) -> bool:
    return all(parse_line(part) is None for part in junk.split(b"\n"))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=200).filter(_not_an_object_line))
def test_any_junk_tail_is_a_torn_tail_at_the_end_of_the_chain(junk: bytes) -> None:
    """Bytes after the last record that hold no JSON object are a torn tail at its offset."""
    scan = scan_log(LOG + junk)
    assert scan.torn_offset == len(LOG)
    assert scan.records == 4


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_flipped_byte_before_the_last_record_is_corruption(data: st.DataObject) -> None:
    """Changing any non-newline byte of an earlier record raises AuditCorruptError."""
    position = data.draw(st.integers(min_value=0, max_value=OFFSETS[-1] - 1))
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
