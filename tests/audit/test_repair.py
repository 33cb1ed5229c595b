"""Torn tails: detected at every cut, repaired with a kept copy, recorded, idempotent."""

from __future__ import annotations

import errno
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebalancer.audit.errors import (
    AncestorLogError,
    AuditCorruptError,
    AuditPathError,
    AuditWriteError,
    TornTailError,
)
from rebalancer.audit.records import scan_log
from rebalancer.audit.repair import repair_log
from rebalancer.audit.writer import AuditLog

NOW = datetime(2026, 12, 4, 21, 30, 0, 123456, tzinfo=UTC)


async def _real_log(path: Path) -> tuple[bytes, int]:
    """A two-record log; returns its bytes and the offset where the last record starts."""
    async with await AuditLog.open(path, run_id="run-1", config_hash="cfg") as log:
        await log.append("run_started", {"target_file": "t.json", "mode": "live"})
        last = await log.append(
            "order_intent",
            {"client_order_id": "rb1-a", "symbol": "AAPL", "shares": 5, "limit": "185.10"},
        )
    return path.read_bytes(), last.offset


def _torn_variants(data: bytes, last: int) -> list[tuple[str, bytes, int]]:
    """(name, torn file bytes, expected torn offset) for every way the tail can tear."""
    # Every cut short of the full line without its newline (that one is a complete record,
    # which repair completes instead of cutting: see test_repair_tail.py).
    variants = [(f"cut{k}", data[: last + k], last) for k in range(1, len(data) - last - 1)]
    variants += [
        ("nul-tail", data + b"\x00" * 512, len(data)),
        ("nul-record", data[:last] + b"\x00" * (len(data) - last), last),
        ("junk-tail", data + b"\xde\xad\xbe\xef garbage {", len(data)),
        ("junk-no-newline", data + b"junk\r\x00\x00\rmore junk", len(data)),
        ("spaces", data + b"   ", len(data)),
    ]
    return variants


async def test_every_torn_variant_is_detected_on_open_with_its_offset(tmp_path: Path) -> None:
    """Every cut of the last line, and unterminated NUL or junk, raise TornTailError there."""
    data, last = await _real_log(tmp_path / "src" / "audit.jsonl")
    variants = _torn_variants(data, last)
    assert len(variants) > 100
    for name, torn, offset in variants:
        path = tmp_path / name / "audit.jsonl"
        path.parent.mkdir(mode=0o700)
        path.write_bytes(torn)
        with pytest.raises(TornTailError) as info:
            await AuditLog.open(path, run_id="r", config_hash="c")
        assert info.value.offset == offset, name
        assert path.read_bytes() == torn, name


async def test_repair_keeps_a_copy_truncates_records_and_is_idempotent(tmp_path: Path) -> None:
    """Repair copies the original, cuts the tail, appends tail_repaired; a second run is a no-op."""
    data, last = await _real_log(tmp_path / "src" / "audit.jsonl")
    for name, torn, offset in _torn_variants(data, last):
        path = tmp_path / name / "audit.jsonl"
        path.parent.mkdir(mode=0o700)
        path.write_bytes(torn)
        report = repair_log(path, now=NOW)
        assert report.repaired, name
        assert report.truncated_at_offset == offset
        assert report.bytes_removed == len(torn) - offset
        assert report.original_copy == path.with_name("audit.jsonl.torn-20261204T213000123456Z")
        assert report.original_copy.read_bytes() == torn
        assert stat.S_IMODE(report.original_copy.stat().st_mode) == 0o600
        repaired = path.read_bytes()
        assert repaired[:offset] == torn[:offset]
        scan = scan_log(repaired)
        assert scan.torn_offset is None
        assert scan.end_offset == len(repaired)
        record = json.loads(repaired[offset:])
        assert record["event"] == "tail_repaired"
        assert record["original_copy"] == str(report.original_copy)
        assert (record["truncated_at_offset"], record["bytes_removed"]) == (
            offset, len(torn) - offset,
        )
        assert record["config_hash"] == "cfg"
        assert record["run_id"] == "repair-20261204T213000123456Z"
        again = repair_log(path, now=NOW)
        assert not again.repaired
        assert path.read_bytes() == repaired
        assert len(list(path.parent.iterdir())) == 2


async def test_log_is_appendable_after_repair(log_path: Path) -> None:
    """After repair, the appender opens the log and continues the chain."""
    data, last = await _real_log(log_path)
    log_path.write_bytes(data[: last + 10])
    repair_log(log_path, now=NOW)
    async with await AuditLog.open(log_path, run_id="next", config_hash="cfg") as log:
        rec = await log.append("run_started")
    assert rec.sequence_number == 3
    assert scan_log(log_path.read_bytes()).records == 3


async def test_clean_log_repair_is_a_no_op(log_path: Path) -> None:
    """A log without a torn tail is not touched and no copy is made."""
    data, _ = await _real_log(log_path)
    report = repair_log(log_path, now=NOW)
    assert not report.repaired
    assert report.original_copy is None
    assert log_path.read_bytes() == data
    assert [p.name for p in log_path.parent.iterdir()] == ["audit.jsonl"]


async def test_mid_file_damage_is_not_repaired(log_path: Path) -> None:
    """A flipped byte in an earlier record raises AuditCorruptError and changes nothing."""
    data, _ = await _real_log(log_path)
    damaged = bytearray(data + b'{"event":"tor')
    damaged[20] ^= 0x01
    log_path.write_bytes(bytes(damaged))
    with pytest.raises(AuditCorruptError):
        repair_log(log_path, now=NOW)
    assert log_path.read_bytes() == bytes(damaged)
    assert [p.name for p in log_path.parent.iterdir()] == ["audit.jsonl"]


async def test_missing_or_symlinked_log_is_refused(tmp_path: Path) -> None:
    """Repair refuses a missing log and a symlink at the log path."""
    directory = tmp_path / "logs"
    directory.mkdir(mode=0o700)
    with pytest.raises(AuditPathError, match="no such"):
        repair_log(directory / "audit.jsonl", now=NOW)
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b'{"event":"x')
    (directory / "audit.jsonl").symlink_to(target)
    with pytest.raises(AuditPathError, match="symlink"):
        repair_log(directory / "audit.jsonl", now=NOW)
    assert target.read_bytes() == b'{"event":"x'


async def test_ancestor_log_is_not_repaired(log_path: Path) -> None:
    """An ancestor-format log cannot take a tail_repaired record; repair refuses it."""
    log_path.parent.mkdir(mode=0o700)
    log_path.write_bytes(b'{"event":"run_started","ts":"2026-01-02T03:04:05Z"}\n{"ev')
    with pytest.raises(AncestorLogError):
        repair_log(log_path, now=NOW)


async def test_repair_interrupted_before_its_record_is_completed_next_time(
    faulty_io: type, log_path: Path
) -> None:
    """If the tail_repaired append fails after the cut, the next repair writes the record."""
    data, last = await _real_log(log_path)
    torn = data[: last + 7]
    log_path.write_bytes(torn)
    io = faulty_io(fail_op="write", at=2, error=errno.EIO)  # write 1: the copy; 2: the record
    with pytest.raises(AuditWriteError):
        repair_log(log_path, now=NOW, io=io)
    assert log_path.read_bytes() == torn[:last]
    report = repair_log(log_path, now=datetime(2026, 12, 4, 22, 0, tzinfo=UTC))
    assert report.repaired
    assert report.original_copy == log_path.with_name("audit.jsonl.torn-20261204T213000123456Z")
    assert report.truncated_at_offset == last
    assert report.bytes_removed == 7
    rows = [json.loads(x) for x in log_path.read_bytes().splitlines()]
    assert rows[-1]["event"] == "tail_repaired"
    assert not repair_log(log_path, now=NOW).repaired


async def test_repair_with_a_failing_copy_leaves_the_log_untouched(
    faulty_io: type, log_path: Path
) -> None:
    """If the copy cannot be written, the torn log is not truncated; a later repair succeeds."""
    data, last = await _real_log(log_path)
    torn = data[: last + 3]
    log_path.write_bytes(torn)
    io = faulty_io(fail_op="sync", at=1, error=errno.ENOSPC)
    with pytest.raises(AuditWriteError):
        repair_log(log_path, now=NOW, io=io)
    assert log_path.read_bytes() == torn
    report = repair_log(log_path, now=datetime(2026, 12, 4, 22, 0, tzinfo=UTC))
    assert report.repaired
    assert report.original_copy is not None
    assert report.original_copy.read_bytes() == torn
    assert not repair_log(log_path, now=NOW).repaired
