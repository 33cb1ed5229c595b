"""The audit reader: records, runs, brackets and typed views over both formats."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fixtures.audit_logs import FIXTURES, LogBuilder, add_full_run, add_run_start

from rebalancer.audit.reader import (
    parse_log,
    parse_money,
    parse_shares,
    positions_view,
    read_log,
    split_lines,
)


def test_split_lines_numbers_lines_and_offsets() -> None:
    """Lines are split on newline only, numbered from 1, with byte offsets and termination."""
    lines = list(split_lines(b"a\rb\nc\n\nd"))
    assert [(r.line, r.offset, r.data, r.terminated) for r in lines] == [
        (1, 0, b"a\rb", True), (2, 4, b"c", True), (3, 6, b"", True), (4, 7, b"d", False)]


def test_fresh_log_groups_runs_and_pairs_brackets_by_op_id() -> None:
    """Two runs of ours become two Run views with every bracket complete."""
    b = LogBuilder()
    add_full_run(b, "run-a")
    add_full_run(b, "run-b")
    view = parse_log(b.data())
    assert view.format == "rebalancer"
    assert [r.run_id for r in view.runs] == ["run-a", "run-b"]
    assert all(r.is_run and r.completed for r in view.runs)
    assert view.incomplete_intents == ()
    run = view.runs[0]
    ops = [br.operation for br in run.brackets]
    assert ops == ["account_summary", "positions", "quotes", "place_order", "place_order",
                   "positions"]
    order = run.brackets[3]
    assert order.result is not None
    assert order.result.event == "order_submitted"
    assert order.client_order_id == "rb-run-a-0"
    assert order.ok is True
    assert view.last_run is view.runs[1]
    assert view.run("run-b") is view.runs[1]
    assert view.records[0].timestamp == datetime(2026, 12, 4, 20, 0, 0, 7000, tzinfo=UTC)


def test_diff_orders_and_fills_are_typed() -> None:
    """diff_computed rows become OrderLegs with Decimal limits; fills carry shares and price."""
    b = LogBuilder()
    add_full_run(b, "r1")
    run = parse_log(b.data()).runs[0]
    legs = run.diff_orders()
    assert [(leg.symbol, leg.side, leg.shares, leg.limit) for leg in legs] == [
        ("AAPL", "SELL", 20, Decimal("189.91")), ("GLD", "BUY", 15, Decimal("241.35"))]
    fills = run.fills()
    assert [(f.symbol, f.shares, f.price, f.client_order_id) for f in fills] == [
        ("AAPL", 20, Decimal("189.91"), "rb-r1-0"), ("GLD", 15, Decimal("241.35"), "rb-r1-1")]


def test_interleaved_invocation_forms_its_own_group() -> None:
    """Records of a kill invocation between a run's records form a group that is not a run."""
    b = LogBuilder()
    add_run_start(b, "run-a")
    b.add("kill_requested", "kill-1")
    b.add("diff_computed", "run-a", orders=[])
    view = parse_log(b.data())
    assert [(r.run_id, r.is_run) for r in view.runs] == [("run-a", True), ("kill-1", False)]
    assert [r.event for r in view.runs[0].records][-1] == "diff_computed"


def test_incomplete_intents_carry_operation_line_and_client_id() -> None:
    """An order intent without a result is listed with its operation, line and ids."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[])
    b.add("risk_check_passed", "r1", checks=[])
    op = b.intent("order_intent", "r1", client_order_id="rb-r1-0", symbol="SPY")
    view = parse_log(b.data())
    [item] = view.incomplete_intents
    assert (item.line, item.operation, item.op_id, item.client_order_id, item.run_id,
            item.symbol) == (len(b.lines), "place_order", op, "rb-r1-0", "r1", "SPY")
    assert view.runs[0].completed is False
    assert view.runs[0].incomplete[0].complete is False


def test_failed_result_reports_its_error_class() -> None:
    """A failure result is not ok and exposes rejected/ambiguous."""
    b = LogBuilder()
    add_run_start(b, "r1")
    op = b.intent("order_intent", "r1", client_order_id="c", symbol="SPY")
    b.result("order_failed", "r1", op, client_order_id="c", symbol="SPY", error_class="ambiguous",
             error_type="TimeoutError", error_message="no ack")
    bracket = parse_log(b.data()).brackets[-1]
    assert (bracket.ok, bracket.error_class) == (False, "ambiguous")


def test_torn_tail_is_kept_apart_from_records() -> None:
    """A cut last line is the torn tail, with the offset where the good bytes end."""
    b = LogBuilder()
    add_full_run(b, "r1")
    good = b.data()
    view = parse_log(good + b'{"event":"or')
    assert view.torn_tail is not None
    assert (view.torn_tail.line, view.torn_tail.offset, view.torn_tail.length) == (
        len(b.lines) + 1, len(good), 12)
    assert view.good_length == len(good)
    assert len(view.records) == len(b.lines)


def test_mid_file_damage_is_a_problem_not_a_torn_tail() -> None:
    """A bad line followed by records is a LineProblem; there is no torn tail."""
    view = parse_log(b'{"event":"a","ts":"2026-01-01T00:00:00Z"}\nxx\n'
                     b'{"event":"b","ts":"2026-01-01T00:00:00Z"}\n')
    assert view.torn_tail is None
    assert [(p.line, p.code) for p in view.problems] == [(2, "malformed_json")]


def test_ancestor_runs_start_at_run_started_and_pair_by_position() -> None:
    """The ancestor WAL log is one run; its order_failed pairs with the second order intent."""
    view = read_log(FIXTURES / "nanobook_wal_run.jsonl")
    assert view.format == "nanobook"
    [run] = view.runs
    assert run.run_id == "nanobook@1"
    assert run.completed
    orders = [br for br in run.brackets if br.operation == "place_order"]
    assert [(br.intent.symbol, br.result.event if br.result else None) for br in orders] == [
        ("AAPL", "order_submitted"), ("GLD", "order_failed")]
    assert orders[1].ok is False
    legs = run.diff_orders()
    assert [(leg.symbol, leg.side, leg.limit) for leg in legs] == [
        ("AAPL", "SELL", Decimal("189.91")), ("GLD", "BUY", Decimal("241.35"))]
    [fill] = run.fills()
    assert (fill.order_id, fill.shares, fill.price, fill.status) == (41, 20, Decimal("189.93"),
                                                                     "Filled")


def test_ancestor_mixed_file_has_an_old_and_a_new_run() -> None:
    """Old (no order_intent) and new runs each get their own Run; old results are orphans."""
    view = read_log(FIXTURES / "nanobook_mixed_format.jsonl")
    old, new = view.runs
    assert [r.event for r in old.orphan_results] == ["order_submitted"]
    assert old.brackets == ()
    assert [br.complete for br in new.brackets] == [True]
    assert new.diff_orders()[0].symbol == "VTI"


def test_ancestor_interrupted_run_lists_incomplete_order_and_cancel() -> None:
    """The incomplete XOM order intent and cancel intent are reported; SELL SHORT is a sell."""
    view = read_log(FIXTURES / "nanobook_interrupted.jsonl")
    assert [(i.line, i.operation, i.client_order_id) for i in view.incomplete_intents] == [
        (8, "place_order", "e1f2a3b4c5d64e7f8091a2b3c4d5e6f7"), (9, "cancel_order", None)]
    legs = view.runs[0].diff_orders()
    assert [(leg.action, leg.side, leg.limit) for leg in legs] == [
        ("BUY", "BUY", Decimal("151.07")), ("SELL SHORT", "SELL", Decimal("110"))]


def test_positions_view_reads_dollar_floats_and_decimal_strings() -> None:
    """Positions rows accept qty or shares, float or string avg_cost."""
    view = read_log(FIXTURES / "nanobook_wal_run.jsonl")
    snap = next(r for r in view.records if r.event == "positions_result")
    assert [(p.symbol, p.shares, p.avg_cost) for p in positions_view(snap)] == [
        ("AAPL", 120, Decimal("171.2")), ("TLT", 300, Decimal("88"))]


def test_quote_cents_are_read_as_dollars() -> None:
    """Keys ending in _cents are converted to Decimal dollars."""
    view = read_log(FIXTURES / "nanobook_wal_run.jsonl")
    record = next(r for r in view.records if r.event == "account_summary_result")
    assert record.money("equity") == Decimal("98765.43")
    assert record.money("cash") == Decimal("4210.5")
    assert record.money("missing") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("185.09", Decimal("185.09")), (185.09, Decimal("185.09")), (7, Decimal(7)),
     (" 0.10 ", Decimal("0.10")), (1e-7, Decimal("1E-7"))],
)
def test_parse_money_accepts_strings_ints_and_dollar_floats(value: object,
                                                            expected: Decimal) -> None:
    """Money reads exactly from decimal strings, ints and floats (via their shortest repr)."""
    assert parse_money(value) == expected


@pytest.mark.parametrize("value", [True, None, "abc", "NaN", float("inf"), [1]])
def test_parse_money_rejects_non_amounts(value: object) -> None:
    """Booleans, null, non-numbers and non-finite values are not money."""
    with pytest.raises(ValueError, match="money value"):
        parse_money(value)


def test_parse_shares_accepts_whole_numbers_only() -> None:
    """Shares may be ints, integral floats or integer strings; fractions are refused."""
    assert [parse_shares(v) for v in (12, 12.0, "12", "-3")] == [12, 12, 12, -3]
    for bad in (12.5, "1.5", True, None):
        with pytest.raises(ValueError, match="share count"):
            parse_shares(bad)


def test_order_trails_collect_leg_placement_fills_and_statuses() -> None:
    """Each planned order gets its leg, bracket, fills and final status, keyed by client id."""
    b = LogBuilder()
    add_full_run(b, "r1")
    trails = parse_log(b.data()).runs[0].orders()
    assert [(t.client_order_id, t.symbol, t.filled_shares, t.last_status) for t in trails] == [
        ("rb-r1-0", "AAPL", 20, "Filled"), ("rb-r1-1", "GLD", 15, "Filled")]
    first = trails[0]
    assert first.leg is not None
    assert first.leg.limit == Decimal("189.91")
    assert len(first.placements) == 1
    assert first.incomplete == ()
    assert first.placements[0].result is not None
    assert first.order_id == first.placements[0].result.fields["order_id"]


def test_order_trail_of_an_interrupted_order_shows_the_open_bracket() -> None:
    """An order intent without a result shows up as the trail's incomplete placement."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[{"client_order_id": "c1", "symbol": "TLT",
                                          "action": "BUY", "side": "BUY", "shares": 5,
                                          "limit": "88.00"}])
    b.add("risk_check_passed", "r1", checks=[])
    b.intent("order_intent", "r1", client_order_id="c1", symbol="TLT")
    b.add("order_filled", "r1", client_order_id="c1", symbol="TLT", order_id=9, exec_id="x1",
          shares=2, price="88.00")
    b.add("order_filled", "r1", client_order_id="c1", symbol="TLT", order_id=9, exec_id="x1",
          shares=2, price="88.00")
    [trail] = parse_log(b.data()).runs[0].orders()
    assert len(trail.incomplete) == 1
    assert trail.filled_shares == 2
    assert trail.order_id == 9


def test_ancestor_order_trails_match_fills_by_symbol() -> None:
    """Ancestor fills carry no client id; they join their order by symbol."""
    view = read_log(FIXTURES / "nanobook_wal_run.jsonl")
    trails = view.runs[0].orders()
    assert [(t.symbol, t.client_order_id, t.filled_shares, t.last_status) for t in trails] == [
        ("AAPL", "5d0c1f7a9be24461a3c08e2f71d4b6e0", 20, "Filled"),
        ("GLD", "a17e2c55d3904b0f8e6b19c4d2f03a88", 0, None)]
    assert [len(t.placements) for t in trails] == [1, 1]
    assert trails[1].placements[0].ok is False


def test_selective_read_keeps_only_the_named_runs(tmp_path) -> None:
    """read_log(run_ids=...) keeps the named runs; the format still reflects the whole file."""
    from rebalancer.audit.validate import validate_file

    b = LogBuilder()
    add_full_run(b, "old-1")
    add_run_start(b, "mid-2")
    b.intent("quotes_intent", "mid-2")
    add_full_run(b, "last-3")
    path = b.write(tmp_path / "audit.jsonl")
    report = validate_file(path)
    assert report.last_run_id == "last-3"
    keep = {report.last_run_id, *(i.run_id for i in report.incomplete_intents)}
    view = read_log(path, run_ids={k for k in keep if k is not None})
    assert [r.run_id for r in view.runs] == ["mid-2", "last-3"]
    assert [i.run_id for i in view.incomplete_intents] == ["mid-2"]
    assert all(r.run_id in ("mid-2", "last-3") for r in view.records)
    assert view.format == "rebalancer"
    assert view.size == len(b.data())


def test_selective_read_pairs_results_written_by_another_invocation() -> None:
    """A result recorded under a recover invocation still closes the kept run's intent."""
    b = LogBuilder()
    add_run_start(b, "r1")
    b.add("diff_computed", "r1", orders=[])
    b.add("risk_check_passed", "r1", checks=[])
    op = b.intent("order_intent", "r1", client_order_id="c1", symbol="SPY")
    b.result("order_failed", "recover-1", op, client_order_id="c1", symbol="SPY",
             error_class="rejected", error_type="NotFound", error_message="not at broker")
    view = parse_log(b.data(), run_ids={"r1"})
    bracket = view.runs[0].brackets[-1]
    assert bracket.operation == "place_order"
    assert bracket.result is not None
    assert bracket.result.run_id == "recover-1"
    assert view.incomplete_intents == ()
    assert [r.run_id for r in view.runs] == ["r1"]
