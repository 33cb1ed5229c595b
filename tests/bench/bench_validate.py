"""Validator throughput on a generated 1,000,000-record log, as a ratio to a bare json.loads loop.

Run: ``python tests/bench/bench_validate.py [RECORDS] [HOSTILE_N]`` (e.g. ``200000`` for a quicker
run). Both loops read the same file in the same process; the figure that matters is the ratio
(validator time / bare parse time). The hostile shapes (``HOSTILE_N`` unmatched ancestor results
after as many intents; as many repeats after as many sequence gaps; 20,000 by default) are timed
for the validator and the reader against the same bare loop over their bytes.
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
from test_validate_linear import ancestor_unmatched, gaps_then_repeats

from rebalancer.audit.reader import parse_log
from rebalancer.audit.validate import validate_bytes, validate_file


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


def hostile(n: int) -> None:
    """Time the hostile shapes: validator and reader against a bare parse of the same bytes."""
    for name, make in (("ancestor unmatched results", ancestor_unmatched),
                       ("repeats after sequence gaps", gaps_then_repeats)):
        data = make(n)
        lines = data.splitlines()

        def bare_bytes(_: object, lines: list[bytes] = lines) -> None:
            for line in lines:
                json.loads(line)

        t_bare = best(bare_bytes, Path(), 2)
        t_val = best(lambda _, data=data: validate_bytes(data), Path(), 2)
        t_read = best(lambda _, data=data: parse_log(data), Path(), 2)
        print(f"{name:28s} n={n:,} ({len(lines):,} lines): bare {t_bare:.3f} s, "
              f"validator {t_val:.3f} s ({t_val / t_bare:.2f}x), "
              f"reader {t_read:.3f} s ({t_read / t_bare:.2f}x)")


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
    hostile(int(sys.argv[2]) if len(sys.argv) > 2 else 20_000)


if __name__ == "__main__":
    main()
