"""Repair under the tail rule: complete unterminated records are completed, damage is refused."""

from __future__ import annotations

import errno
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures.audit_logs import LogBuilder, add_run_start

from rebalancer.audit.errors import AuditCorruptError, AuditWriteError, TornTailError
from rebalancer.audit.records import scan_log
from rebalancer.audit.repair import repair_log
from rebalancer.audit.writer import AuditLog

NOW = datetime(2026, 12, 4, 21, 30, 0, 123456, tzinfo=UTC)
LATER = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
COPY_NAME = "audit.jsonl.torn-20261204T213000123456Z"


def _order_log() -> LogBuilder:
    """A run that ends with an order intent and its order_submitted result."""
    b = LogBuilder()
    add_run_start(b, "run-1")
    b.add("diff_computed", "run-1", orders=[])
    b.add("risk_check_passed", "run-1")
    op = b.intent("order_intent", "run-1", client_order_id="cid-AAPL-1", symbol="AAPL",
                  side="BUY", shares=10)
    b.result("order_submitted", "run-1", op, client_order_id="cid-AAPL-1", symbol="AAPL",
             order_id=5, perm_id=77, status="Submitted")
    return b


def _write(path: Path, data: bytes) -> Path:
    """Write ``data`` as a 0600 log in a fresh 0700 directory."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_bytes().splitlines()]


async def test_open_refuses_a_complete_record_without_newline_and_points_to_repair(
    log_path: Path,
) -> None:
    """A valid last record lacking only its newline is a torn tail on open; nothing changes."""
    b = _order_log()
    data = b.data()[:-1]
    _write(log_path, data)
    with pytest.raises(TornTailError, match="audit repair") as info:
        await AuditLog.open(log_path, run_id="r", config_hash="c")
    assert info.value.offset == len(data) - len(b.lines[-1]) + 1
    assert "complete" in info.value.reason
    assert log_path.read_bytes() == data


async def test_repair_completes_a_record_missing_its_newline(log_path: Path) -> None:
    """Repair adds the newline, keeps the record and the copy, and records completed_line."""
    b = _order_log()
    data = b.data()[:-1]
    _write(log_path, data)
    report = repair_log(log_path, now=NOW)
    assert report.repaired
    assert report.completed_line
    assert report.bytes_removed == 0
    assert report.truncated_at_offset == len(data)
    assert report.original_copy == log_path.with_name(COPY_NAME)
    assert report.original_copy.read_bytes() == data
    repaired = log_path.read_bytes()
    assert repaired.startswith(b.data())
    assert _events(log_path)[-2:] == ["order_submitted", "tail_repaired"]
    record = json.loads(repaired[len(b.data()):])
    assert record["completed_line"] is True
    assert (record["bytes_removed"], record["truncated_at_offset"]) == (0, len(data))
    assert record["original_copy"] == str(report.original_copy)
    assert record["sequence_number"] == b.seq + 1
    assert record["prev_hash"] == b.records[-1]["hash"]
    assert record["config_hash"] == b.config_hash
    scan = scan_log(repaired)
    assert (scan.torn_offset, scan.records) == (None, b.seq + 1)
    assert not repair_log(log_path, now=LATER).repaired
    assert log_path.read_bytes() == repaired
    async with await AuditLog.open(log_path, run_id="next", config_hash="c") as log:
        nxt = await log.append("run_started")
    assert nxt.sequence_number == b.seq + 2


async def test_a_cut_repair_records_completed_line_false(log_path: Path) -> None:
    """A truncating repair writes completed_line false beside the cut point."""
    b = _order_log()
    _write(log_path, b.data() + b'{"event":"ord')
    report = repair_log(log_path, now=NOW)
    assert not report.completed_line
    assert report.bytes_removed == 13
    row = json.loads(log_path.read_bytes().splitlines()[-1])
    assert (row["completed_line"], row["truncated_at_offset"]) == (False, len(b.data()))


@pytest.mark.parametrize(
    "damage",
    ["flip-last-brace", "flip-last-digit", "blank-line", "spaces-line", "junk-line", "respelled"],
)
async def test_damage_on_the_last_terminated_line_is_never_repaired(
    log_path: Path, damage: str
) -> None:
    """A newline-terminated bad last line is corruption for open and repair; nothing is cut."""
    data = bytearray(_order_log().data())
    if damage == "flip-last-brace":
        data[-2] ^= 0x01  # '}' -> '|': the durable result record would otherwise be dropped
    elif damage == "flip-last-digit":
        at = data.rindex(b'"perm_id":77') + len(b'"perm_id":7')
        data[at] = ord("8")
    elif damage == "blank-line":
        data += b"\n"
    elif damage == "spaces-line":
        data += b"  \t\n"
    elif damage == "junk-line":
        data += b"\x00\x00junk\n"
    else:  # same values, same hash, but not the canonical bytes
        at = data.rindex(b'"symbol":"AAPL"')
        data[at:at + 15] = b'"symbol":"\\u0041APL"'
    damaged = bytes(data)
    _write(log_path, damaged)
    with pytest.raises(AuditCorruptError):
        await AuditLog.open(log_path, run_id="r", config_hash="c")
    with pytest.raises(AuditCorruptError):
        repair_log(log_path, now=NOW)
    assert log_path.read_bytes() == damaged
    assert [p.name for p in log_path.parent.iterdir()] == ["audit.jsonl"]


async def test_completing_repair_interrupted_before_its_record_finishes_next_time(
    faulty_io: type, log_path: Path
) -> None:
    """If tail_repaired fails after the newline was added, the next repair writes it."""
    b = _order_log()
    data = b.data()[:-1]
    _write(log_path, data)
    io = faulty_io(fail_op="write", at=3, error=errno.EIO)  # copy, newline, then the record
    with pytest.raises(AuditWriteError):
        repair_log(log_path, now=NOW, io=io)
    assert log_path.read_bytes() == b.data()
    report = repair_log(log_path, now=LATER)
    assert report.repaired
    assert report.completed_line
    assert report.original_copy == log_path.with_name(COPY_NAME)
    assert (report.truncated_at_offset, report.bytes_removed) == (len(data), 0)
    row = json.loads(log_path.read_bytes().splitlines()[-1])
    assert (row["event"], row["completed_line"], row["bytes_removed"]) == (
        "tail_repaired", True, 0,
    )
    assert not repair_log(log_path, now=LATER).repaired


async def test_a_failed_newline_write_leaves_the_log_as_it_was(
    faulty_io: type, log_path: Path
) -> None:
    """If adding the newline fails, the log is unchanged and a later repair completes it."""
    b = _order_log()
    data = b.data()[:-1]
    _write(log_path, data)
    io = faulty_io(fail_op="write", at=2, error=errno.ENOSPC)
    with pytest.raises(AuditWriteError, match="complete"):
        repair_log(log_path, now=NOW, io=io)
    assert log_path.read_bytes() == data
    report = repair_log(log_path, now=LATER)
    assert report.completed_line
    assert _events(log_path)[-2:] == ["order_submitted", "tail_repaired"]


async def test_repaired_log_power_loss_keeps_the_completed_record(
    faulty_io: type, log_path: Path
) -> None:
    """The added newline and the repair record are synced: a power loss keeps them."""
    b = _order_log()
    _write(log_path, b.data()[:-1])
    io = faulty_io()
    repair_log(log_path, now=NOW, io=io)
    after = log_path.read_bytes()
    io.power_loss()
    assert log_path.read_bytes() == after
    assert _events(log_path)[-2:] == ["order_submitted", "tail_repaired"]
