"""Benchmark: audit append latency (write + fdatasync) against a bare os.write + fdatasync loop.

Run: ``python tests/bench/bench_append.py [--records N] [--dir DIR]``. Prints p50/p99/max for

- ``bare``: ``os.write`` of a ~300-byte line + ``os.fdatasync`` (the floor on this disk);
- ``append_sync``: ``AuditLog.append_sync`` (lock, tail check, encode, write, fdatasync);
- ``append``: ``await AuditLog.append`` (the same, run in a worker thread by anyio);

and each one's ratio to ``bare``, measured in the same run, in interleaved rounds so that disk
noise hits every series alike. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from rebalancer.audit.writer import AuditLog

PAYLOAD = {
    "client_order_id": "rb1-20261204-0001-abcdef12",
    "symbol": "AAPL",
    "side": "BUY",
    "shares": 25,
    "limit": "185.10",
    "time_in_force": "DAY",
    "account": "DU1234567",
}


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _bare(path: Path, n: int, line: bytes, out: list[float]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            if os.write(fd, line) != len(line):
                raise OSError("short write")
            os.fdatasync(fd)
            out.append((time.perf_counter() - t0) * 1000.0)
    finally:
        os.close(fd)


def _append_sync(log: AuditLog, n: int, out: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        log.append_sync("order_intent", PAYLOAD)
        out.append((time.perf_counter() - t0) * 1000.0)


async def _append(log: AuditLog, n: int, out: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        await log.append("order_intent", PAYLOAD)
        out.append((time.perf_counter() - t0) * 1000.0)


async def _main(records: int, rounds: int, base: Path) -> None:
    directory = base / "bench-logs"
    log = await AuditLog.open(directory / "audit.jsonl", run_id="bench", config_hash="c")
    probe = log.append_sync("order_intent", PAYLOAD)
    line = b"x" * (probe.size - 1) + b"\n"
    line_len = len(line)
    series: dict[str, list[float]] = {"bare": [], "append_sync": [], "append": []}
    per_round = max(1, records // rounds)
    for _ in range(rounds):
        _bare(directory / "bare.jsonl", per_round, line, series["bare"])
        _append_sync(log, per_round, series["append_sync"])
        await _append(log, per_round, series["append"])
    await log.aclose()
    floor = statistics.median(series["bare"])
    floor99 = _pct(series["bare"], 0.99)
    print(f"records per series: {per_round * rounds}, line ~{line_len} B, dir {directory}")
    heads = ("p50 ms", "p99 ms", "max ms", "p50/bare", "p99/bare")
    print(f"{'series':<12} " + " ".join(f"{h:>9}" for h in heads))
    for name, samples in series.items():
        p50, p99 = statistics.median(samples), _pct(samples, 0.99)
        print(
            f"{name:<12} {p50:9.3f} {p99:9.3f} {max(samples):9.3f} "
            f"{p50 / floor:9.2f} {p99 / floor99:9.2f}"
        )


def main() -> None:
    """Parse arguments and run the benchmark in a temporary directory (or ``--dir``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None, help="directory on the disk to test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        anyio.run(_main, args.records, args.rounds, Path(tmp))


if __name__ == "__main__":
    main()
