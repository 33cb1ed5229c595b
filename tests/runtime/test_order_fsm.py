"""The order lifecycle table, its real-world races, and the fill tracker's de-duplication."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.errors import RebalancerError
from rebalancer.exit_codes import ExitCode
from rebalancer.order_fsm import (
    OPEN_STATES,
    REAL_WORLD_TERMINAL_TRANSITIONS,
    TERMINAL_STATES,
    TRANSITIONS,
    UNRESOLVED_STATES,
    IllegalTransition,
    OrderBook,
    OrderEventKind,
    OrderState,
    OrderTracker,
    UnknownOrder,
    apply,
    can_apply,
    mermaid_diagram,
)

S = OrderState
E = OrderEventKind

ALL_PAIRS = [(state, event) for state in OrderState for event in OrderEventKind]


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda v: v.value)
def test_every_cell_of_the_table(state: OrderState, event: OrderEventKind) -> None:
    """Each (state, event) either yields the table's entry or raises IllegalTransition."""
    row = TRANSITIONS[state]
    if event in row:
        assert apply(state, event) is row[event]
        assert can_apply(state, event)
    else:
        with pytest.raises(IllegalTransition) as info:
            apply(state, event)
        assert (info.value.state, info.value.event) == (state, event)
        assert not can_apply(state, event)


def test_table_has_a_row_for_every_state() -> None:
    """Every state has a row, even the ones that accept nothing."""
    assert set(TRANSITIONS) == set(OrderState)


def test_table_is_read_only() -> None:
    """The exported table cannot be modified by a caller."""
    with pytest.raises(TypeError):
        TRANSITIONS[S.FILLED][E.ACKED] = S.SUBMITTED  # type: ignore[index]


def test_illegal_transition_is_a_rebalancer_error_with_a_clear_message() -> None:
    """IllegalTransition maps to manual review and names state and event."""
    with pytest.raises(RebalancerError) as info:
        apply(S.REJECTED, E.FILL)
    assert info.value.exit_code is ExitCode.MANUAL_REVIEW
    assert str(info.value) == "order state rejected: event fill is not possible"


def test_terminal_rows_are_exactly_the_documented_real_world_ones() -> None:
    """A terminal state accepts only the events listed in REAL_WORLD_TERMINAL_TRANSITIONS."""
    assert set(REAL_WORLD_TERMINAL_TRANSITIONS) == TERMINAL_STATES
    for state in TERMINAL_STATES:
        assert dict(TRANSITIONS[state]) == dict(REAL_WORLD_TERMINAL_TRANSITIONS[state])
        assert all(target in TERMINAL_STATES for target in TRANSITIONS[state].values())
    assert dict(TRANSITIONS[S.REJECTED]) == {}
    assert dict(TRANSITIONS[S.NOT_SENT]) == {}


def test_state_sets_partition_the_states() -> None:
    """Every state except PLANNED is exactly one of open, unresolved or terminal."""
    groups = [OPEN_STATES, UNRESOLVED_STATES, TERMINAL_STATES]
    assert sum(len(g) for g in groups) == len(set().union(*groups))
    assert set().union(*groups) == set(OrderState) - {S.PLANNED}
    assert all(state.is_terminal == (state in TERMINAL_STATES) for state in OrderState)


def _reachable(start: OrderState) -> set[OrderState]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()].values():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_reachable_from_planned() -> None:
    """No state of the enum is dead: each can be reached from PLANNED."""
    assert _reachable(S.PLANNED) == set(OrderState)


@pytest.mark.parametrize("state", sorted(set(OrderState) - TERMINAL_STATES), ids=str)
def test_every_live_state_can_finish(state: OrderState) -> None:
    """From every non-terminal state some path leads to a terminal state (no traps)."""
    assert _reachable(state) & TERMINAL_STATES


@pytest.mark.parametrize(
    ("events", "final"),
    [
        ([E.INTENT_WRITTEN, E.ACKED, E.FILL, E.FILL_COMPLETE], S.FILLED),
        ([E.INTENT_WRITTEN, E.REJECTED], S.REJECTED),
        ([E.WITHDRAWN], S.NOT_SENT),
        ([E.INTENT_WRITTEN, E.WITHDRAWN], S.NOT_SENT),
        # cancel races fill: the fill wins
        ([E.INTENT_WRITTEN, E.ACKED, E.CANCEL_REQUESTED, E.FILL, E.FILL_COMPLETE], S.FILLED),
        # the cancel result (refused) arrives after the fill completed the order
        ([E.INTENT_WRITTEN, E.ACKED, E.CANCEL_REQUESTED, E.FILL_COMPLETE, E.CANCEL_REFUSED],
         S.FILLED),
        # partial fill, then cancelled: cancelled with fills
        ([E.INTENT_WRITTEN, E.ACKED, E.FILL, E.CANCEL_REQUESTED, E.FILL, E.CANCELLED],
         S.CANCELLED),
        # an execution reported after the cancel confirmation
        ([E.INTENT_WRITTEN, E.ACKED, E.CANCEL_REQUESTED, E.CANCELLED, E.FILL], S.CANCELLED),
        # submission timed out, then the broker's fill shows up
        ([E.INTENT_WRITTEN, E.OUTCOME_UNKNOWN, E.FILL, E.FILL_COMPLETE], S.FILLED),
        ([E.INTENT_WRITTEN, E.OUTCOME_UNKNOWN, E.LOOKUP_NOT_FOUND], S.NOT_SENT),
        ([E.INTENT_WRITTEN, E.OUTCOME_UNKNOWN, E.LOOKUP_FOUND_WORKING, E.CANCEL_REQUESTED,
          E.CANCELLED], S.CANCELLED),
        # recovery: an intent without a result is looked up
        ([E.INTENT_WRITTEN, E.LOOKUP_FOUND_PARTIALLY_FILLED], S.PARTIALLY_FILLED),
        # a refused cancel sends the order to lookup
        ([E.INTENT_WRITTEN, E.ACKED, E.CANCEL_REQUESTED, E.CANCEL_REFUSED,
          E.LOOKUP_FOUND_CANCELLED], S.CANCELLED),
        # duplicate ack and repeated cancel (kill retries) keep the state
        ([E.INTENT_WRITTEN, E.ACKED, E.ACKED, E.CANCEL_REQUESTED, E.CANCEL_REQUESTED],
         S.CANCEL_REQUESTED),
    ],
)
def test_real_world_sequences(events: list[OrderEventKind], final: OrderState) -> None:
    """Sequences that happen at a real broker are all legal and end where expected."""
    state = S.PLANNED
    for event in events:
        state = apply(state, event)
    assert state is final


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.PLANNED, E.ACKED),  # nothing is sent before its intent is on disk
        (S.SUBMITTED, E.LOOKUP_NOT_FOUND),  # an acked order cannot vanish
        (S.SUBMITTED, E.WITHDRAWN),  # too late to withdraw once the broker has it
        (S.UNKNOWN, E.CANCEL_REQUESTED),  # look it up first
        (S.NOT_SENT, E.FILL),  # a fill for an order we declared never sent
        (S.FILLED, E.CANCELLED),  # a filled order cannot be cancelled
        (S.FILLED, E.LOOKUP_FOUND_CANCELLED),  # the lookup contradicts the log
        (S.REJECTED, E.ACKED),
    ],
)
def test_contradictions_raise(state: OrderState, event: OrderEventKind) -> None:
    """Events that contradict what we know raise instead of being absorbed."""
    with pytest.raises(IllegalTransition):
        apply(state, event)


@given(
    start=st.sampled_from(list(OrderState)),
    events=st.lists(st.sampled_from(list(OrderEventKind)), max_size=30),
)
def test_random_sequences_follow_the_table_or_raise_illegal_transition(
    start: OrderState, events: list[OrderEventKind]
) -> None:
    """Any event sequence follows the table step by step or stops at IllegalTransition."""
    state = start
    was_terminal = state.is_terminal
    for event in events:
        expected = TRANSITIONS[state].get(event)
        if expected is None:
            with pytest.raises(IllegalTransition) as info:
                apply(state, event)
            assert (info.value.state, info.value.event) == (state, event)
            break
        nxt = apply(state, event)
        assert nxt is expected
        if was_terminal:
            assert nxt.is_terminal  # once finished, always finished
            assert event in REAL_WORLD_TERMINAL_TRANSITIONS[state]
        state = nxt
        was_terminal = state.is_terminal


def test_mermaid_diagram_lists_every_transition() -> None:
    """The generated runbook diagram carries one edge per (state, target) pair of the table."""
    diagram = mermaid_diagram()
    assert diagram.startswith("stateDiagram-v2\n")
    for state, row in TRANSITIONS.items():
        for event, target in row.items():
            edge = next(
                line for line in diagram.splitlines()
                if line.strip().startswith(f"{state.name} --> {target.name}:")
            )
            assert event.value in edge


def test_tracker_counts_each_exec_id_once() -> None:
    """A repeated execution id changes nothing and is reported as not new."""
    tracker = OrderTracker(client_order_id="rb1-a", quantity=100, state=S.SUBMITTED)
    tracker, new1 = tracker.record_fill("e1", 40)
    same, new2 = tracker.record_fill("e1", 40)
    assert (new1, new2) == (True, False)
    assert same is tracker
    assert (tracker.state, tracker.filled, tracker.remaining) == (S.PARTIALLY_FILLED, 40, 60)
    assert tracker.exec_ids == frozenset({"e1"})


def test_tracker_completes_on_the_last_share() -> None:
    """The execution that reaches the ordered quantity moves the order to FILLED."""
    tracker = OrderTracker(client_order_id="rb1-a", quantity=100, state=S.CANCEL_REQUESTED)
    tracker, _ = tracker.record_fill("e1", 30)
    assert tracker.state is S.CANCEL_REQUESTED
    tracker, _ = tracker.record_fill("e2", 70)
    assert (tracker.state, tracker.filled, tracker.remaining) == (S.FILLED, 100, 0)
    assert not tracker.overfilled


def test_tracker_flags_overfill_without_losing_it() -> None:
    """Executions beyond the ordered quantity are counted and flagged for review."""
    tracker = OrderTracker(client_order_id="rb1-a", quantity=10, state=S.SUBMITTED)
    tracker, _ = tracker.record_fill("e1", 10)
    tracker, new = tracker.record_fill("e2", 5)
    assert new
    assert (tracker.state, tracker.filled, tracker.remaining) == (S.FILLED, 15, 0)
    assert tracker.overfilled


def test_tracker_refuses_a_fill_on_a_rejected_order() -> None:
    """A new execution for a rejected order raises and leaves the tracker unchanged."""
    tracker = OrderTracker(client_order_id="rb1-a", quantity=10, state=S.REJECTED)
    with pytest.raises(IllegalTransition):
        tracker.record_fill("e1", 5)
    assert tracker.filled == 0


@pytest.mark.parametrize(("exec_id", "shares"), [("", 5), ("e1", 0), ("e1", -3)])
def test_tracker_rejects_malformed_executions(exec_id: str, shares: int) -> None:
    """An empty execution id or a non-positive share count is a programming error."""
    tracker = OrderTracker(client_order_id="rb1-a", quantity=10, state=S.SUBMITTED)
    with pytest.raises(ValueError, match=r"exec_id|positive"):
        tracker.record_fill(exec_id, shares)


@given(
    fills=st.lists(
        st.tuples(st.sampled_from([f"e{i}" for i in range(8)]), st.integers(1, 30)),
        max_size=40,
    )
)
def test_tracker_filled_equals_sum_of_distinct_executions(fills: list[tuple[str, int]]) -> None:
    """Whatever the duplicates, the filled count is the sum over first sightings of each id."""
    tracker = OrderTracker(client_order_id="rb1-a", quantity=1_000, state=S.SUBMITTED)
    first: dict[str, int] = {}
    for exec_id, shares in fills:
        tracker, is_new = tracker.record_fill(exec_id, shares)
        assert is_new == (exec_id not in first)
        first.setdefault(exec_id, shares)
    assert tracker.filled == sum(first.values())
    assert tracker.exec_ids == frozenset(first)


def test_book_routes_events_and_counts_states() -> None:
    """The book applies events per client_order_id and reports counts per state."""
    book = OrderBook.of(
        OrderTracker(client_order_id=coid, quantity=10) for coid in ("rb1-a", "rb1-b", "rb1-c")
    )
    book = book.apply("rb1-a", E.INTENT_WRITTEN).apply("rb1-a", E.ACKED)
    book = book.apply("rb1-b", E.INTENT_WRITTEN).apply("rb1-b", E.OUTCOME_UNKNOWN)
    book, new = book.record_fill("rb1-a", "x1", 10)
    again, dup = book.record_fill("rb1-a", "x1", 10)
    assert (new, dup) == (True, False)
    assert again is book
    stats = book.statistics()
    assert (stats.total, stats.open, stats.unresolved, stats.terminal) == (3, 0, 1, 1)
    assert stats.by_state[S.FILLED] == 1
    assert stats.by_state[S.PLANNED] == 1
    assert [t.client_order_id for t in book.in_states(UNRESOLVED_STATES)] == ["rb1-b"]


def test_book_rejects_unknown_and_duplicate_ids() -> None:
    """An event for an id the book does not track raises UnknownOrder; ids are unique."""
    book = OrderBook().add(OrderTracker(client_order_id="rb1-a", quantity=1))
    with pytest.raises(UnknownOrder, match="rb1-zz"):
        book.apply("rb1-zz", E.ACKED)
    with pytest.raises(ValueError, match="duplicate"):
        book.add(OrderTracker(client_order_id="rb1-a", quantity=2))
    assert "rb1-a" in book
    assert len(book) == 1


def test_runtime_aliases_are_the_same_members() -> None:
    """The alias names used by the runtime are the table's members, not extra events."""
    from rebalancer.order_fsm import OrderEvent

    assert OrderEvent is OrderEventKind
    assert E.PARTIAL_FILL is E.FILL
    assert E.FILLED is E.FILL_COMPLETE
    assert E.SKIPPED is E.WITHDRAWN
    assert E.NOT_SENT is E.WITHDRAWN
    assert E.LOOKUP_FOUND is E.LOOKUP_FOUND_WORKING
    assert len(list(OrderEventKind)) == 16
