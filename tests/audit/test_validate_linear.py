"""Validator and reader stay linear on hostile logs (counted in traced lines, not seconds).

Each case is run at two sizes with ``sys.settrace`` counting executed Python lines: linear work
grows 4x when the input grows 4x, quadratic work 16x. The bound (6x) leaves room for constant
overheads and would fail by far for the old list scans. Wall-clock figures for the same shapes
are printed by ``tests/bench/bench_validate.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from rebalancer.audit.reader import parse_log
from rebalancer.audit.validate import validate_bytes

_TS = "2026-01-01T00:00:00Z"


def ancestor_unmatched(n: int) -> bytes:
    """An ancestor run with ``n`` order intents, then ``n`` results no intent's symbol matches."""
    lines = [b'{"event":"run_started","ts":"%s"}\n' % _TS.encode(),
             b'{"event":"risk_check_passed","ts":"%s"}\n' % _TS.encode()]
    lines += [json.dumps({"event": "order_intent", "ts": _TS, "symbol": f"S{i}"}).encode() + b"\n"
              for i in range(n)]
    lines += [json.dumps({"event": "order_submitted", "ts": _TS, "symbol": "NOPE"}).encode()
              + b"\n" for _ in range(n)]
    lines += [json.dumps({"event": "positions_intent", "ts": _TS}).encode() + b"\n"
              for _ in range(n)]
    lines += [json.dumps({"event": "quotes_result", "ts": _TS}).encode() + b"\n"
              for _ in range(n)]
    return b"".join(lines)


def _rec(seq: int) -> bytes:
    """A record of ours numbered ``seq`` (its hash is wrong: only numbering is looked at)."""
    return (b'{"config_hash":"c","event":"kill_requested","hash":"' + b"0" * 64
            + b'","prev_hash":"' + b"0" * 64 + b'","run_id":"k","sequence_number":%d,'
            b'"ts":"2026-01-01T00:00:00.000000Z"}\n' % seq)


def gaps_then_repeats(n: int) -> bytes:
    """``n`` records of ours numbered 1, 3, 5, ... (a gap before each), then ``n`` repeats of a
    number inside no gap (each is looked up among all gaps)."""
    return b"".join([_rec(2 * i + 1) for i in range(n)] + [_rec(5) for _ in range(n)])


def traced_lines(fn: Callable[[bytes], object], data: bytes) -> int:
    """Python lines executed by ``fn(data)``."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn(data)
    finally:
        sys.settrace(previous)
    return count


def _growth(fn: Callable[[bytes], object], make: Callable[[int], bytes]) -> float:
    return traced_lines(fn, make(1600)) / traced_lines(fn, make(400))


def test_ancestor_pairing_is_linear_in_the_validator() -> None:
    """Unmatched ancestor results cost the validator the same per record at any log size."""
    assert _growth(validate_bytes, ancestor_unmatched) < 6


def test_ancestor_pairing_is_linear_in_the_reader() -> None:
    """Unmatched ancestor results cost the reader the same per record at any log size."""
    assert _growth(parse_log, ancestor_unmatched) < 6


def test_out_of_order_lookups_among_many_gaps_are_not_linear_scans() -> None:
    """Numbers repeated after many sequence gaps are looked up by bisection, not a scan."""
    assert _growth(validate_bytes, gaps_then_repeats) < 6


def test_hostile_shapes_still_report_the_right_findings() -> None:
    """The queues pair as before: order results fall back to the oldest order intent, quotes
    results close no positions intent; repeats outside every gap are duplicates."""
    report = validate_bytes(ancestor_unmatched(50))
    assert [i.operation for i in report.incomplete_intents] == ["positions"] * 50
    view = parse_log(ancestor_unmatched(50))
    assert [i.line for i in view.incomplete_intents] == [
        i.line for i in report.incomplete_intents]
    codes = [e.code for e in validate_bytes(gaps_then_repeats(50)).errors]
    assert codes.count("sequence_duplicate") == 50
    assert codes.count("sequence_gap") == 49


def test_late_records_fill_their_gap_once() -> None:
    """A number skipped by a gap is out of order the first time it shows, a duplicate after."""
    seqs = [1, 10, 5, 5, 4, 6, 9, 2, 3, 7, 8, 8, 11, 20, 15]
    report = validate_bytes(b"".join(_rec(s) for s in seqs))
    found = [e.code for e in report.errors if e.code.startswith("sequence")]
    assert found == [
        "sequence_gap",  # 10 after 1: 2..9 missing
        "sequence_not_monotonic",  # 5
        "sequence_duplicate",  # 5 again
        "sequence_not_monotonic",  # 4
        "sequence_not_monotonic",  # 6
        "sequence_not_monotonic",  # 9
        "sequence_not_monotonic",  # 2
        "sequence_not_monotonic",  # 3
        "sequence_not_monotonic",  # 7
        "sequence_not_monotonic",  # 8
        "sequence_duplicate",  # 8 again
        "sequence_gap",  # 20 after 11
        "sequence_not_monotonic",  # 15
    ]


def ancestor_many_symbols(n: int) -> bytes:
    """An ancestor run whose plan and fills name ``n`` different symbols, without client ids."""
    rows = [{"symbol": f"S{i}", "shares": 1, "side": "BUY"} for i in range(n)]
    lines = [{"event": "run_started", "ts": _TS}, {"event": "positions_fetched", "ts": _TS},
             {"event": "diff_computed", "orders": rows, "ts": _TS},
             {"event": "risk_check_passed", "ts": _TS}]
    lines += [{"event": "order_filled", "symbol": f"S{i}", "filled": 1, "ts": _TS}
              for i in range(n)]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def test_order_trails_of_many_symbols_are_linear() -> None:
    """Matching fills to plan legs by symbol is a lookup, not a scan of all trails."""
    def trails(data: bytes) -> object:
        return parse_log(data).runs[0].orders()
    assert _growth(trails, ancestor_many_symbols) < 6
