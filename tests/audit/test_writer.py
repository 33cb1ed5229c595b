"""The appender: durable numbered records, reopen, permissions, symlinks, refusal rules."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebalancer.audit.errors import (
    AncestorLogError,
    AuditCorruptError,
    AuditPathError,
    AuditPayloadError,
    AuditWriteError,
    TornTailError,
)
from rebalancer.audit.records import GENESIS_HASH, LogScan, verify_record_hash
from rebalancer.audit.writer import AuditLog
from rebalancer.exit_codes import ExitCode

Scan = Callable[[Path], LogScan]


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def test_appends_are_numbered_chained_and_on_disk(log_path: Path, scan: Scan) -> None:
    """Each append returns a record numbered +1 whose bytes are the file's next line."""
    log = await AuditLog.open(log_path, run_id="run-1", config_hash="cfg")
    first = await log.append("run_started", {"target_file": "t.json", "mode": "live"})
    second = await log.append("diff_computed", {"orders": []})
    await log.aclose()
    rows = _lines(log_path)
    assert [r["sequence_number"] for r in rows] == [1, 2]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert rows[1]["prev_hash"] == rows[0]["hash"] == first.hash
    assert rows[1]["hash"] == second.hash
    assert all(verify_record_hash(r) for r in rows)
    assert rows[0]["run_id"] == "run-1"
    assert rows[0]["config_hash"] == "cfg"
    assert rows[0]["target_file"] == "t.json"
    assert second.offset == first.size
    assert log_path.stat().st_size == first.size + second.size
    assert scan(log_path).last_sequence_number == 2


async def test_reopen_continues_sequence_and_chain(log_path: Path, scan: Scan) -> None:
    """A second run appending to the same file continues at last+1 with the right prev_hash."""
    async with await AuditLog.open(log_path, run_id="a", config_hash="c") as log:
        last = await log.append("run_completed", {"status": "ok"})
    async with await AuditLog.open(log_path, run_id="b", config_hash="c") as log:
        assert log.last_sequence_number == 1
        nxt = await log.append("run_started")
    assert nxt.sequence_number == 2
    assert nxt.record["prev_hash"] == last.hash
    assert scan(log_path).records == 2


async def test_ts_comes_from_the_clock_in_rfc3339_utc(log_path: Path) -> None:
    """The record's ts is the injected clock's time, printed with microseconds and Z."""
    at = datetime(2026, 12, 4, 21, 0, 0, 5, tzinfo=UTC)
    log = await AuditLog.open(log_path, run_id="r", config_hash="c", clock=lambda: at)
    rec = await log.append("run_started")
    await log.aclose()
    assert rec.ts == at
    assert rec.record["ts"] == "2026-12-04T21:00:00.000005Z"


async def test_file_is_0600_in_a_0700_directory_under_umask_zero(tmp_path: Path) -> None:
    """With umask 0 the new directory is still 0700 and the new log file 0600."""
    old = os.umask(0)
    try:
        path = tmp_path / "fresh" / "audit.jsonl"
        log = await AuditLog.open(path, run_id="r", config_hash="c")
        await log.append("run_started")
        await log.aclose()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_existing_loose_directory_and_file_of_ours_are_tightened(tmp_path: Path) -> None:
    """A 0755 directory and a 0644 log we own are set to 0700 and 0600 on open."""
    directory = tmp_path / "loose"
    directory.mkdir()
    directory.chmod(0o755)
    path = directory / "audit.jsonl"
    path.write_bytes(b"")
    path.chmod(0o644)
    log = await AuditLog.open(path, run_id="r", config_hash="c")
    await log.aclose()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_symlinked_log_file_is_refused(tmp_path: Path) -> None:
    """A symlink at the log path is refused and the file it points at is left untouched."""
    directory = tmp_path / "logs"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    (directory / "audit.jsonl").symlink_to(victim)
    with pytest.raises(AuditPathError, match="symlink"):
        await AuditLog.open(directory / "audit.jsonl", run_id="r", config_hash="c")
    assert victim.read_bytes() == b"precious\n"


async def test_symlinked_log_directory_is_refused(tmp_path: Path) -> None:
    """A log directory that is itself a symlink is refused; nothing is created behind it."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "logs").symlink_to(real, target_is_directory=True)
    with pytest.raises(AuditPathError, match="symlink"):
        await AuditLog.open(tmp_path / "logs" / "audit.jsonl", run_id="r", config_hash="c")
    assert list(real.iterdir()) == []


async def test_a_directory_at_the_log_path_is_refused(log_path: Path) -> None:
    """Something other than a regular file at the log path is refused."""
    log_path.parent.mkdir(mode=0o700)
    log_path.mkdir()
    with pytest.raises((AuditPathError, AuditWriteError)):
        await AuditLog.open(log_path, run_id="r", config_hash="c")


async def test_ancestor_log_is_refused_for_appending(log_path: Path) -> None:
    """A nanobook-format log (records without hash) cannot be appended to; bytes unchanged."""
    log_path.parent.mkdir(mode=0o700)
    original = b'{"event":"run_started","ts":"2026-01-02T03:04:05Z","target_file":"t.json"}\n'
    log_path.write_bytes(original)
    with pytest.raises(AncestorLogError, match="line 1") as info:
        await AuditLog.open(log_path, run_id="r", config_hash="c")
    assert info.value.exit_code == ExitCode.AUDIT_FAILURE
    assert log_path.read_bytes() == original


async def test_torn_tail_on_open_names_offset_and_repair_command(log_path: Path) -> None:
    """A log ending in a partial line is refused on open with its offset and the fix."""
    async with await AuditLog.open(log_path, run_id="r", config_hash="c") as log:
        good = await log.append("run_started")
    with log_path.open("ab") as f:
        f.write(b'{"event":"order_int')
    with pytest.raises(TornTailError) as info:
        await AuditLog.open(log_path, run_id="r", config_hash="c")
    assert info.value.offset == good.size
    assert f"rebalancer audit repair {log_path}" in str(info.value)
    assert info.value.exit_code == ExitCode.AUDIT_FAILURE


async def test_mid_file_damage_is_corruption_not_a_torn_tail(log_path: Path) -> None:
    """A bad line followed by valid records raises AuditCorruptError on open."""
    async with await AuditLog.open(log_path, run_id="r", config_hash="c") as log:
        for _ in range(3):
            await log.append("run_started")
    data = bytearray(log_path.read_bytes())
    first_end = data.index(b"\n")
    data[first_end - 5] ^= 0x01
    log_path.write_bytes(bytes(data))
    with pytest.raises(AuditCorruptError, match="line 1"):
        await AuditLog.open(log_path, run_id="r", config_hash="c")


async def test_payload_shadowing_a_header_key_writes_nothing(log_path: Path) -> None:
    """A payload using a header key is refused before any byte is written; the log stays usable."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    with pytest.raises(AuditPayloadError, match="sequence_number"):
        await log.append("run_started", {"sequence_number": 99})
    assert log_path.read_bytes() == b""
    assert not log.poisoned
    rec = await log.append("run_started")
    await log.aclose()
    assert rec.sequence_number == 1


async def test_two_appenders_in_one_process_interleave_without_reuse(
    log_path: Path, scan: Scan
) -> None:
    """Two open logs on one file (runner and kill switch) alternate; numbers stay contiguous."""
    runner = await AuditLog.open(log_path, run_id="run", config_hash="c")
    killer = await AuditLog.open(log_path, run_id="kill", config_hash="c")
    got = []
    for i in range(6):
        log = runner if i % 3 else killer
        got.append((await log.append("order_status", {"i": i})).sequence_number)
    await runner.aclose()
    await killer.aclose()
    assert got == [1, 2, 3, 4, 5, 6]
    assert scan(log_path).records == 6
    assert [r["run_id"] for r in _lines(log_path)] == ["kill", "run", "run"] * 2


async def test_torn_tail_written_by_another_writer_poisons_the_appender(log_path: Path) -> None:
    """If another writer left a torn line, the next append fails and writes nothing."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    await log.append("run_started")
    with log_path.open("ab") as f:
        f.write(b'{"event":"kill_req')
    before = log_path.read_bytes()
    with pytest.raises(AuditWriteError, match="torn tail"):
        await log.append("order_intent")
    assert log.poisoned
    with pytest.raises(AuditWriteError, match="poisoned"):
        await log.append("order_intent")
    await log.aclose()
    assert log_path.read_bytes() == before


async def test_replaced_log_file_is_detected(log_path: Path) -> None:
    """If the path is renamed away and recreated, the appender refuses to continue."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    await log.append("run_started")
    log_path.rename(log_path.with_name("old.jsonl"))
    log_path.write_bytes(b"")
    with pytest.raises(AuditWriteError, match="another file"):
        await log.append("order_intent")
    await log.aclose()


async def test_closed_log_refuses_appends(log_path: Path) -> None:
    """After aclose an append raises AuditWriteError; aclose is idempotent."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    await log.aclose()
    await log.aclose()
    with pytest.raises(AuditWriteError, match="closed"):
        await log.append("run_started")


async def test_statistics_count_records_and_bytes(log_path: Path) -> None:
    """records_written and bytes_written match the file; latency has one sample per append."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    for i in range(4):
        await log.append("order_status", {"i": i})
    stats = log.statistics()
    await log.aclose()
    assert stats.records_written == 4
    assert stats.bytes_written == log_path.stat().st_size
    assert stats.append_latency.count == 4
    assert len(stats.append_latency.samples_ms) == 4
    assert stats.append_latency.max_ms >= stats.append_latency.p50_ms >= 0
    assert not stats.poisoned
    assert dict(stats.write_errors) == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another user")
async def test_foreign_directory_open_to_others_is_refused_not_changed(tmp_path: Path) -> None:
    """A group/other-accessible log directory owned by another user is refused, mode untouched."""
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o775)
    os.chown(directory, 65534, 65534)
    with pytest.raises(AuditPathError, match="belongs to uid 65534"):
        await AuditLog.open(directory / "audit.jsonl", run_id="r", config_hash="c")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o775
    assert list(directory.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another user")
async def test_foreign_log_file_open_to_others_is_refused(tmp_path: Path) -> None:
    """A group/other-readable log file owned by another user is refused, mode untouched."""
    directory = tmp_path / "logs"
    directory.mkdir(mode=0o700)
    path = directory / "audit.jsonl"
    path.write_bytes(b"")
    path.chmod(0o644)
    os.chown(path, 65534, 65534)
    with pytest.raises(AuditPathError, match="belongs to uid 65534"):
        await AuditLog.open(path, run_id="r", config_hash="c")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


async def test_relative_path_survives_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log opened by a relative path keeps appending to the same file after a chdir."""
    monkeypatch.chdir(tmp_path)
    log = await AuditLog.open(Path("logs/audit.jsonl"), run_id="r", config_hash="c")
    monkeypatch.chdir("/")
    await log.append("run_started")
    await log.aclose()
    assert log.path == tmp_path / "logs" / "audit.jsonl"
    assert len((tmp_path / "logs" / "audit.jsonl").read_bytes().splitlines()) == 1
