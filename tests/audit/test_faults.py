"""Fail-stop under injected I/O faults, at every write and sync position, and power loss."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from rebalancer.audit.errors import AuditWriteError
from rebalancer.audit.records import AuditRecord, scan_log
from rebalancer.audit.repair import repair_log
from rebalancer.audit.writer import AuditLog

APPENDS = 5
# A new log costs two syncs on open (file fsync, directory fsync), then one per append.
SYNCS = 2 + APPENDS

FAULTS = [
    ("write", k, err, persistent)
    for k in range(1, APPENDS + 1)
    for err in (errno.ENOSPC, errno.EIO, "short")
    for persistent in (False, True)
] + [
    ("sync", k, err, persistent)
    for k in range(1, SYNCS + 1)
    for err in (errno.ENOSPC, errno.EIO)
    for persistent in (False, True)
]


@pytest.mark.parametrize(("op", "k", "error", "persistent"), FAULTS)
async def test_fault_at_kth_io_is_fail_stop_and_only_synced_records_count(
    faulty_io: type, log_path: Path, op: str, k: int, error: int | str, persistent: bool
) -> None:
    """A fault at the k-th write/sync poisons the log; only synced records are reported durable."""
    io = faulty_io(fail_op=op, at=k, error=error, persistent=persistent)
    returned: list[AuditRecord] = []
    try:
        log = await AuditLog.open(log_path, run_id="r", config_hash="c", io=io)
    except AuditWriteError:
        # The fault hit the creation syncs: nothing can have been reported durable.
        assert op == "sync"
        assert k <= 2
        io.power_loss()
        assert not log_path.exists() or log_path.read_bytes() == b""
        return
    failures = 0
    for i in range(APPENDS):
        try:
            rec = await log.append("order_intent", {"client_order_id": f"rb1-{i}", "i": i})
        except AuditWriteError:
            failures += 1
            break
        # Oracle: at the moment append returns, its line is in the durable state.
        durable = io.durable_bytes(log_path)
        assert durable is not None
        line = durable[rec.offset : rec.offset + rec.size]
        assert line.endswith(b"\n")
        assert json.loads(line)["hash"] == rec.hash
        returned.append(rec)
    assert failures == 1
    assert log.poisoned
    # After the fault nothing more is written or synced, whatever the caller does.
    after = log_path.read_bytes()
    counts = dict(io.counts)
    for _ in range(3):
        with pytest.raises(AuditWriteError, match="poisoned"):
            await log.append("order_intent", {"client_order_id": "rb1-late"})
    assert log_path.read_bytes() == after
    assert dict(io.counts) == counts
    assert io.faults == 1
    stats = log.statistics()
    assert stats.poisoned
    assert stats.write_errors["order_intent"] == 4
    await log.aclose()
    # Power loss keeps exactly the synced prefix: the records that were returned.
    io.power_loss()
    data = log_path.read_bytes()
    expected_len = sum(r.size for r in returned)
    assert len(data) == expected_len
    scan = scan_log(data)
    assert scan.torn_offset is None
    assert scan.records == len(returned)
    assert scan.last_sequence_number == len(returned)


async def test_power_loss_drops_exactly_the_unsynced_bytes(faulty_io: type, log_path: Path) -> None:
    """Bytes written after the last sync vanish on power loss; synced records all survive."""
    io = faulty_io()
    log = await AuditLog.open(log_path, run_id="r", config_hash="c", io=io)
    recs = [await log.append("order_status", {"i": i}) for i in range(3)]
    synced = log_path.read_bytes()
    await log.aclose()
    with log_path.open("ab") as f:
        f.write(b'{"event":"never-synced"}\n')
    io.power_loss()
    assert log_path.read_bytes() == synced
    assert len(synced) == sum(r.size for r in recs)


async def test_new_log_vanishes_on_power_loss_before_directory_sync(
    faulty_io: type, log_path: Path
) -> None:
    """If the directory fsync fails, the open fails: the new file's entry is not durable."""
    io = faulty_io(fail_op="sync", at=2, error=errno.EIO)
    with pytest.raises(AuditWriteError, match="create"):
        await AuditLog.open(log_path, run_id="r", config_hash="c", io=io)
    io.power_loss()
    assert not log_path.exists()


async def test_short_write_leaves_a_torn_tail_and_no_retry(faulty_io: type, log_path: Path) -> None:
    """A short write poisons the log without a second write; the partial line is a torn tail."""
    io = faulty_io(fail_op="write", at=2, error="short")
    log = await AuditLog.open(log_path, run_id="r", config_hash="c", io=io)
    first = await log.append("run_started")
    with pytest.raises(AuditWriteError, match="short write"):
        await log.append("order_intent", {"client_order_id": "rb1-x"})
    await log.aclose()
    assert io.counts["write"] == 2
    assert io.counts["sync"] == 3  # two on creation, one for the first record; none after
    scan = scan_log(log_path.read_bytes())
    assert scan.torn_offset == first.size


async def test_fsync_error_is_not_retried(faulty_io: type, log_path: Path) -> None:
    """An fdatasync error is reported once and never retried."""
    io = faulty_io(fail_op="sync", at=3, error=errno.EIO)
    log = await AuditLog.open(log_path, run_id="r", config_hash="c", io=io)
    with pytest.raises(AuditWriteError, match="fdatasync"):
        await log.append("order_intent")
    await log.aclose()
    assert io.counts["sync"] == 3
    assert io.counts["write"] == 1


def _crash_states(durable: bytes, unsynced: bytes) -> list[tuple[str, bytes]]:
    """ALICE-style states after a crash: the unsynced append lost, cut, zero- or junk-filled.

    Junk holds no newline: newline-terminated junk is mid-file damage, not a torn tail.
    """
    states = [("dropped", durable), ("kept", durable + unsynced)]
    for cut in (1, len(unsynced) // 2, len(unsynced) - 1):
        states.append((f"prefix{cut}", durable + unsynced[:cut]))
    states.append(("zeros", durable + b"\x00" * len(unsynced)))
    states.append(("junk", durable + _junk(len(unsynced)).replace(b"\n", b"\x0b")))
    return states


def _junk(n: int) -> bytes:
    """``n`` bytes of deterministic junk (a newline at index 83)."""
    return bytes((i * 37 + 11) % 256 for i in range(n))


@pytest.mark.parametrize("k", range(1, APPENDS + 1))
async def test_every_crash_state_recovers_with_all_durable_records(
    faulty_io: type, tmp_path: Path, k: int
) -> None:
    """After a failed sync at append k, each crash state repairs to a valid log with records < k."""
    source = tmp_path / "src" / "audit.jsonl"
    io = faulty_io(fail_op="sync", at=2 + k, error=errno.EIO)
    log = await AuditLog.open(source, run_id="r", config_hash="c", io=io)
    returned = [
        await log.append("order_intent", {"client_order_id": f"rb1-{i}"}) for i in range(k - 1)
    ]
    with pytest.raises(AuditWriteError):
        await log.append("order_intent", {"client_order_id": f"rb1-{k - 1}"})
    await log.aclose()
    assert len(returned) == k - 1
    durable = io.durable_bytes(source)
    assert durable is not None
    unsynced = source.read_bytes()[len(durable):]
    assert unsynced.endswith(b"\n")
    for name, state in _crash_states(durable, unsynced):
        path = tmp_path / name / "audit.jsonl"
        path.parent.mkdir(mode=0o700)
        path.write_bytes(state)
        repair_log(path)
        scan = scan_log(path.read_bytes())
        assert scan.torn_offset is None, name
        for rec in returned:
            line = path.read_bytes()[rec.offset : rec.offset + rec.size]
            assert json.loads(line)["hash"] == rec.hash, name
        async with await AuditLog.open(path, run_id="next", config_hash="c") as again:
            nxt = await again.append("run_started")
        assert nxt.sequence_number == scan.last_sequence_number + 1, name


@pytest.mark.parametrize("first", ["fails", "crashes"])
async def test_next_open_makes_an_undurable_new_entry_durable(
    faulty_io: type, log_path: Path, first: str
) -> None:
    """A first open that failed (or died) before the directory fsync is healed by the next open."""
    if first == "fails":
        io = faulty_io(fail_op="sync", at=2, error=errno.EIO)  # 1: file, 2: directory fsync
        with pytest.raises(AuditWriteError, match="create"):
            AuditLog.open_sync(log_path, run_id="r1", config_hash="c", io=io)
    else:
        # As if the process died between O_CREAT and the directory fsync.
        io = faulty_io()
        log_path.parent.mkdir(mode=0o700)
        io.close(io.open(log_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    assert log_path.exists()
    assert io.durable_bytes(log_path) is None  # a power loss now would drop the file
    log = AuditLog.open_sync(log_path, run_id="r2", config_hash="c", io=io)
    rec = log.append_sync("kill_requested", {"why": "test"})
    log.close_sync()
    assert rec.sequence_number == 1
    io.power_loss()
    assert log_path.exists()
    assert log_path.stat().st_size == rec.size
    assert json.loads(log_path.read_bytes())["hash"] == rec.hash


async def test_every_open_of_an_existing_log_syncs_file_and_directory(
    faulty_io: type, log_path: Path
) -> None:
    """Reopening an existing log costs the same two syncs (file, then directory) as creating it."""
    AuditLog.open_sync(log_path, run_id="r1", config_hash="c").close_sync()
    io = faulty_io(fail_op="sync", at=2, error=errno.EIO)
    with pytest.raises(AuditWriteError, match="during open"):
        AuditLog.open_sync(log_path, run_id="r2", config_hash="c", io=io)
    assert io.counts["sync"] == 2
    log = AuditLog.open_sync(log_path, run_id="r3", config_hash="c", io=io)
    log.close_sync()
    assert io.counts["sync"] == 4
