"""The appender under the tail rule: what it refuses on open and when catching up with a peer."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.audit_logs import LogBuilder, add_full_run

from rebalancer.audit.errors import AuditCorruptError, AuditWriteError, TornTailError
from rebalancer.audit.writer import AuditLog


def _write(path: Path, data: bytes) -> bytes:
    """Write ``data`` as a 0600 log in a fresh 0700 directory."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    return data


def _full_run() -> bytes:
    b = LogBuilder()
    add_full_run(b, "run-1")
    return b.data()


@pytest.mark.parametrize("extra", [b"\n", b" \n", b"\r\n"])
async def test_open_refuses_a_trailing_blank_line_as_corruption(
    log_path: Path, extra: bytes
) -> None:
    """A blank newline-terminated last line is damage (not a torn tail) and is left alone."""
    data = _write(log_path, _full_run() + extra)
    with pytest.raises(AuditCorruptError, match=r"blank|whitespace"):
        await AuditLog.open(log_path, run_id="r", config_hash="c")
    assert log_path.read_bytes() == data


async def test_open_refuses_a_non_canonical_record(log_path: Path) -> None:
    """A record re-spelled to equal values (hash still verifying over them) is corruption."""
    good = _full_run()
    assert good.count(b'"approved":true') == 1
    bad = good.replace(b'"approved":true', b'"approved" :true')
    _write(log_path, bad)
    with pytest.raises(AuditCorruptError, match="canonical"):
        await AuditLog.open(log_path, run_id="r", config_hash="c")


async def test_open_refuses_a_duplicate_key(log_path: Path) -> None:
    """A record with a repeated key, whatever its values, is corruption."""
    good = _full_run()
    first_line_end = good.index(b"\n")
    line = good[:first_line_end].replace(b"{", b'{"event":"order_submitted",', 1)
    _write(log_path, line + good[first_line_end:])
    with pytest.raises(AuditCorruptError, match="line 1"):
        await AuditLog.open(log_path, run_id="r", config_hash="c")


async def test_catch_up_refuses_a_peer_line_that_is_not_canonical(log_path: Path) -> None:
    """Bytes another writer added that are not canonical records poison our next append."""
    log = await AuditLog.open(log_path, run_id="a", config_hash="c")
    await log.append("run_started")
    peer = await AuditLog.open(log_path, run_id="b", config_hash="c")
    rec = await peer.append("order_status", {"ratio": 1e-05})
    await peer.aclose()
    data = log_path.read_bytes()
    assert data.count(b"1e-05") == 1
    log_path.write_bytes(data.replace(b"1e-05", b"1E-05"))
    with pytest.raises(AuditWriteError, match="canonical"):
        await log.append("run_completed")
    assert log.poisoned
    assert log_path.stat().st_size == rec.offset + rec.size
    await log.aclose()


async def test_catch_up_refuses_a_peer_record_without_its_newline(log_path: Path) -> None:
    """A complete peer record lacking its newline is a torn tail: the append fails, no write."""
    log = await AuditLog.open(log_path, run_id="a", config_hash="c")
    await log.append("run_started")
    peer = await AuditLog.open(log_path, run_id="b", config_hash="c")
    await peer.append("order_status")
    await peer.aclose()
    cut = log_path.read_bytes()[:-1]
    log_path.write_bytes(cut)
    with pytest.raises(AuditWriteError, match="torn"):
        await log.append("run_completed")
    assert log_path.read_bytes() == cut
    await log.aclose()
    with pytest.raises(TornTailError, match="complete"):
        await AuditLog.open(log_path, run_id="c", config_hash="c")
