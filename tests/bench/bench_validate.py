"""Validator throughput on a generated 1,000,000-record log, as a ratio to a bare json.loads loop.

Run: ``python tests/bench/bench_validate.py [RECORDS]``. Both loops read the same file in the
same process; the figure that matters is the ratio (validator time / bare parse time).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "audit"))

from fixtures.audit_logs import LogBuilder, add_full_run

from rebalancer.audit.validate import validate_file


def generate(path: Path, records: int) -> int:
    """Write complete runs (real hash chain) until ``records`` records; returns the count."""
    b = LogBuilder()
    n = 0
    runs = 0
    with path.open("wb") as out:
        while len(b.records) + n < records:
            runs += 1
            add_full_run(b, f"run-{runs:07d}")
            if len(b.lines) > 10_000:
                out.writelines(b.lines)
                n += len(b.lines)
                b.lines.clear()
                b.records.clear()
        out.writelines(b.lines)
        return n + len(b.lines)


def bare(path: Path) -> int:
    """The baseline: parse every line with json.loads and nothing else."""
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            json.loads(line)
            count += 1
    return count


def best(fn: Callable[[Path], object], path: Path, repeat: int) -> float:
    """Best wall time of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Generate, time both loops, print the figures."""
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.jsonl"
        t0 = time.perf_counter()
        written = generate(path, records)
        gen = time.perf_counter() - t0
        size = path.stat().st_size
        report = validate_file(path)
        assert report.valid, report.errors[:3]
        assert report.records == written
        t_bare = best(bare, path, 2)
        t_val = best(validate_file, path, 2)
    print(f"records          {written:,} ({size / 1e6:.1f} MB, generated in {gen:.1f} s)")
    print(f"runs             {report.runs:,}")
    print(f"bare json.loads  {t_bare:.2f} s  ({written / t_bare:,.0f} records/s)")
    print(f"validator        {t_val:.2f} s  ({written / t_val:,.0f} records/s)")
    print(f"ratio            {t_val / t_bare:.2f}x the bare parse loop")


if __name__ == "__main__":
    main()
