"""Two processes appending to one log at once: no interleaving, no reused numbers, intact chain."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from rebalancer.audit.records import scan_log, verify_record_hash

PER_WRITER = 5_000

# Sizes: mostly 100 B-2 KB, every 97th record 64 KB, every 1000th record 1 MB
# (5 per writer), so both ends of the range are exercised without gigabytes of I/O.
WRITER = r"""
import sys, anyio
from rebalancer.audit.writer import AuditLog

path, run_id, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def size(i):
    if i % 1000 == 999:
        return 1 << 20
    if i % 97 == 0:
        return 64 << 10
    return 100 + (i * 7919) % 1900

async def main():
    log = await AuditLog.open(path, run_id=run_id, config_hash="c")
    import os, time
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(count):
        await log.append("stress", {"i": i, "writer": run_id, "blob": "x" * size(i)})
    await log.aclose()

anyio.run(main)
"""


@pytest.mark.slow
def test_two_processes_append_concurrently_without_interleaving(tmp_path: Path) -> None:
    """Two writers x 5,000 records (100 B to 1 MB): every line parses, numbers and chain intact."""
    path = tmp_path / "logs" / "audit.jsonl"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(PER_WRITER), str(go)],
            stderr=subprocess.PIPE,
        )
        for name in ("runner", "killswitch")
    ]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=110)
        assert proc.returncode == 0, err.decode()
    data = path.read_bytes()
    rows = [json.loads(line) for line in data.split(b"\n")[:-1]]
    assert data.endswith(b"\n")
    assert len(rows) == 2 * PER_WRITER
    assert [r["sequence_number"] for r in rows] == list(range(1, 2 * PER_WRITER + 1))
    assert all(verify_record_hash(r) for r in rows)
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(rows))
    for name in ("runner", "killswitch"):
        mine = [r["i"] for r in rows if r["writer"] == name]
        assert mine == list(range(PER_WRITER))
    assert max(len(r["blob"]) for r in rows) == 1 << 20
    scan = scan_log(data)
    assert scan.records == 2 * PER_WRITER
    assert scan.torn_offset is None
    # Both writers really interleaved (the test is about concurrency, not two serial runs).
    switches = sum(1 for a, b in pairwise(rows) if a["writer"] != b["writer"])
    assert switches > 10
