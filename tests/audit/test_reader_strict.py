"""Reader: the writer's torn-tail rule, strict parsing of our lines, hostile field values."""

from __future__ import annotations

import json

import pytest
from fixtures.audit_logs import LogBuilder, add_full_run, add_run_start

from rebalancer.audit.reader import OpenQueue, Record, parse_log


def _log() -> LogBuilder:
    b = LogBuilder()
    add_full_run(b, "r1")
    return b


@pytest.mark.parametrize("tail", [b"garbage\n", b"\n", b"  \n", b"[1]\n", b"\x00\x00\n"])
def test_newline_terminated_junk_at_the_end_is_a_problem_not_a_torn_tail(tail: bytes) -> None:
    """A bad last line that ends in a newline is a LineProblem; the file has no torn tail."""
    b = _log()
    view = parse_log(b.data() + tail)
    assert view.torn_tail is None
    assert [(p.line, p.offset) for p in view.problems] == [(len(b.lines) + 1, len(b.data()))]
    assert view.good_length == len(b.data()) + len(tail)


def test_only_the_bytes_after_the_last_newline_are_torn() -> None:
    """Junk lines then an unterminated fragment: the lines are problems, the fragment is torn."""
    b = _log()
    good = b.data()
    view = parse_log(good + b"junk\n\x00\x00")
    assert [p.line for p in view.problems] == [len(b.lines) + 1]
    assert view.torn_tail is not None
    assert (view.torn_tail.offset, view.torn_tail.length) == (len(good) + 5, 2)
    assert view.torn_tail.reason == "NUL bytes after the last record"
    assert not view.torn_tail.complete


def test_complete_unterminated_record_is_read_and_marked_complete() -> None:
    """A sound last record lacking only its newline is a record and a complete torn tail."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.intent("open_orders_intent", "r1")
    data = b.data()[:-1]
    view = parse_log(data)
    assert view.torn_tail is not None
    assert view.torn_tail.complete
    assert view.torn_tail.offset == len(data) - len(b.lines[-1]) + 1
    assert len(view.records) == len(b.lines)
    assert [i.operation for i in view.incomplete_intents] == ["open_orders"]


def test_unterminated_record_that_does_not_chain_is_not_read() -> None:
    """A fragment numbered out of turn is a plain torn tail, not a record."""
    b = _log()
    first = b.lines[0]
    view = parse_log(b.data() + first[:-1])
    assert view.torn_tail is not None
    assert not view.torn_tail.complete
    assert len(view.records) == len(b.lines)


def test_first_line_without_newline_is_complete_only_as_record_one() -> None:
    """A file holding one unterminated record: complete when it is sequence 1 after genesis."""
    b = _log()
    view = parse_log(b.lines[0][:-1])
    assert view.torn_tail is not None
    assert view.torn_tail.complete
    assert len(view.records) == 1
    view = parse_log(b.lines[1][:-1])
    assert view.torn_tail is not None
    assert not view.torn_tail.complete
    assert view.records == ()


def test_duplicate_keys_and_nan_are_problems_for_our_lines_only() -> None:
    """A line of ours with a repeated key or NaN is not a record; ancestor lines stay lenient."""
    b = _log()
    b.lines[2] = b.lines[2].replace(b"{", b'{"event":"x",', 1)
    b.lines[4] = b.lines[4].replace(b'"latency_ms":12', b'"latency_ms":NaN')
    view = parse_log(b.data())
    assert [(p.line, p.code) for p in view.problems] == [(3, "malformed_json"),
                                                          (5, "malformed_json")]
    assert "duplicate key" in view.problems[0].message
    ancestor = parse_log(b'{"event":"a","event":"b","ts":"2026-01-01T00:00:00Z","x":NaN}\n')
    assert ancestor.problems == ()
    assert ancestor.records[0].event == "b"


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                "\u0662026-12-04T20:00:00Z", "2026-13-01T00:00:00Z"])
def test_timestamps_out_of_range_read_as_none(ts: str) -> None:
    """A ts that cannot become an aware UTC datetime is None, never an OverflowError."""
    record = Record(line=1, offset=0, format="nanobook", fields={"event": "x", "ts": ts})
    assert record.timestamp is None


@pytest.mark.parametrize("value", ["1e999999999", "-1e999999999"])
def test_cents_that_overflow_read_as_none(value: str) -> None:
    """A cents amount whose dollar value overflows the decimal context is None."""
    record = Record(line=1, offset=0, format="nanobook", fields={"limit_price_cents": value})
    assert record.money("limit_price_cents") is None


class _Item:
    def __init__(self, name: str) -> None:
        self.name = name
        self.done = False


def test_open_queue_prefers_the_symbol_then_the_oldest() -> None:
    """Order results take the oldest open intent with their symbol, else the oldest of the
    operation; other operations pair by position only."""
    queue: OpenQueue[_Item] = OpenQueue()
    a, b, c, d = _Item("a"), _Item("b"), _Item("c"), _Item("d")
    queue.add(a, "place_order", "AAPL")
    queue.add(b, "place_order", "MSFT")
    queue.add(c, "place_order", "MSFT")
    queue.add(d, "positions", None)
    assert queue.match("place_order", "MSFT") is b
    assert queue.match("place_order", "TLT") is a
    assert queue.match("place_order", None) is c
    assert queue.match("place_order", "MSFT") is None
    assert queue.match("quotes", None) is None
    assert queue.remaining() == [d]
    assert queue.match("positions", "AAPL") is d
    assert queue.remaining() == []


def test_ancestor_trails_match_on_symbol_and_take_the_client_id_once() -> None:
    """Cid-less records join the first trail of their symbol; a record with a client id joins
    the first trail of its symbol that has none yet, else starts its own."""
    ts = "2026-01-01T00:00:00Z"
    rows = [{"symbol": "AAPL", "shares": 5, "side": "BUY"},
            {"symbol": "AAPL", "shares": 3, "side": "BUY"}]
    records: list[dict[str, object]] = [
        {"event": "run_started"}, {"event": "positions_fetched"},
        {"event": "diff_computed", "orders": rows}, {"event": "risk_check_passed"},
        {"event": "order_filled", "symbol": "AAPL", "client_order_id": "c1", "filled": 5},
        {"event": "order_filled", "symbol": "AAPL", "client_order_id": "c2", "filled": 3},
        {"event": "order_filled", "symbol": "AAPL", "client_order_id": "c3", "filled": 1},
        {"event": "order_filled", "symbol": "AAPL", "filled": 2},
    ]
    data = b"".join(json.dumps({**r, "ts": ts}).encode() + b"\n" for r in records)
    trails = parse_log(data).runs[0].orders()
    assert [(t.client_order_id, t.symbol, len(t.fills)) for t in trails] == [
        ("c1", "AAPL", 2), ("c2", "AAPL", 1), ("c3", "AAPL", 1)]
