"""The lifecycle of one order as a transition table, and a per-order fill tracker.

Pure: no I/O, no clock. The runtime feeds what it learns about an order (audit results, broker
callbacks, lookups) in as ``OrderEventKind`` values; ``apply`` returns the next ``OrderState``
or raises ``IllegalTransition``. An illegal transition is never "impossible", it is a
contradiction between what we believed and what we were told, so the caller's answer to it is
manual review, not a guess.

Rules of the table:

1. A planned order reaches the broker only through ``INTENT_WRITTEN``: the intent record is
   on disk before the broker call starts. ``withdrawn`` ends an order the runtime decided not
   to send (shutdown, skipped queue) and is only legal before the broker call started.
2. The broker's answer to a submission is ``acked`` (working), ``rejected`` (definitive: the
   order did not take effect) or ``outcome_unknown`` (timeout, disconnect, cancellation of
   the call): the order goes to ``UNKNOWN`` and is never resent blindly. It leaves
   ``UNKNOWN`` through a lookup by ``client_order_id`` (``lookup_*``) or through a late
   report from the broker (ack, fill, reject, cancel), which proves where it is.
3. ``lookup_not_found`` is accepted only where the order might never have left us
   (``INTENT_WRITTEN`` after a crash, ``UNKNOWN``) and ends it as ``NOT_SENT``. An order the
   broker acknowledged cannot later be "not found": that raises.
4. ``fill`` is a partial execution and ``fill_complete`` the execution that completes the
   order. Duplicate executions are removed by the consumer (by ``exec_id``, see
   ``OrderTracker.record_fill``) before they reach the table, so every ``fill`` is new.
5. Real-world races are legal: a fill may arrive before the ack, after ``outcome_unknown``,
   after ``cancel_requested`` (the cancel raced the fill) and even after the cancel was
   confirmed (an execution report delayed behind the cancel confirmation); a cancel may be
   refused because the order already finished.
6. Duplicate status reports are harmless: ``acked`` on a working order, a repeated
   ``cancel_requested`` (kill retries) and a lookup that agrees with what we know keep the
   state.
7. The terminal states are ``FILLED``, ``CANCELLED``, ``REJECTED`` and ``NOT_SENT``. Their only
   outgoing transitions are the real-world ones in ``REAL_WORLD_TERMINAL_TRANSITIONS``, and
   each of them leads to a terminal state again: once finished, an order stays finished.
   ``REJECTED`` and ``NOT_SENT`` accept nothing: a report about such an order means our
   belief was wrong and someone must look.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from rebalancer.errors import RebalancerError
from rebalancer.exit_codes import ExitCode


class OrderState(StrEnum):
    """Where one order of a run stands, as far as the runtime knows."""

    PLANNED = "planned"
    """In the plan; nothing written, nothing sent."""
    INTENT_WRITTEN = "intent_written"
    """The intent record is durable; the broker call is about to start or in flight."""
    SUBMITTED = "submitted"
    """Acknowledged by the broker and working, nothing filled yet."""
    PARTIALLY_FILLED = "partially_filled"
    """Working, with some shares filled."""
    CANCEL_REQUESTED = "cancel_requested"
    """We asked the broker to cancel it and have no final answer yet."""
    FILLED = "filled"
    """Completely filled (terminal)."""
    CANCELLED = "cancelled"
    """Cancelled, possibly after partial fills (terminal)."""
    REJECTED = "rejected"
    """The broker refused it; it never worked (terminal)."""
    UNKNOWN = "unknown"
    """The outcome of a broker call is ambiguous; the order must be looked up."""
    NOT_SENT = "not_sent"
    """Proven never to have reached the broker (lookup), or withdrawn before the call (terminal)."""

    @property
    def is_terminal(self) -> bool:
        """True for FILLED, CANCELLED, REJECTED and NOT_SENT."""
        return self in TERMINAL_STATES


class OrderEventKind(StrEnum):
    """Something the runtime learned about an order."""

    INTENT_WRITTEN = "intent_written"
    """The ``order_intent`` record was durably written."""
    WITHDRAWN = "withdrawn"
    """The runtime decided not to send the order, before any broker call started."""
    ACKED = "acked"
    """The broker acknowledged the order (or reported it working again)."""
    REJECTED = "rejected"
    """The broker refused the order definitively."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """A broker call about the order ended without a usable answer (timeout, disconnect)."""
    FILL = "fill"
    """A new execution that leaves shares unfilled."""
    FILL_COMPLETE = "fill_complete"
    """A new execution, or a status, saying the order is completely filled."""
    CANCEL_REQUESTED = "cancel_requested"
    """The ``cancel_intent`` record was written and the cancel is being sent."""
    CANCELLED = "cancelled"
    """The broker confirmed the order is cancelled (ours or its own, e.g. expiry)."""
    CANCEL_REFUSED = "cancel_refused"
    """The broker refused our cancel: the order was no longer cancellable."""
    LOOKUP_FOUND_WORKING = "lookup_found_working"
    """A lookup by ``client_order_id`` found the order working, nothing filled."""
    LOOKUP_FOUND_PARTIALLY_FILLED = "lookup_found_partially_filled"
    """A lookup found the order working with some shares filled."""
    LOOKUP_FOUND_FILLED = "lookup_found_filled"
    """A lookup found the order completely filled."""
    LOOKUP_FOUND_CANCELLED = "lookup_found_cancelled"
    """A lookup found the order cancelled (possibly with fills)."""
    LOOKUP_FOUND_REJECTED = "lookup_found_rejected"
    """A lookup found the order refused by the broker."""
    LOOKUP_NOT_FOUND = "lookup_not_found"
    """After the settle period, no open order, completed order or execution carries the id."""

    # Aliases (same members, other names) used by ``rebalancer.runtime.orders``.
    PARTIAL_FILL = "fill"
    """Alias of ``FILL``."""
    FILLED = "fill_complete"
    """Alias of ``FILL_COMPLETE``: the broker's final status says filled."""
    SKIPPED = "withdrawn"
    """Alias of ``WITHDRAWN``: the order was left out (stop requested) before any call."""
    NOT_SENT = "withdrawn"
    """Alias of ``WITHDRAWN``: the broker call failed before anything was sent."""
    LOOKUP_FOUND = "lookup_found_working"
    """Alias of ``LOOKUP_FOUND_WORKING``; a terminal status found by the lookup follows."""


OrderEvent = OrderEventKind
"""Alias of ``OrderEventKind``."""


class IllegalTransition(RebalancerError):
    """Raised by ``apply`` when an event contradicts the order's state (see the rules)."""

    exit_code = ExitCode.MANUAL_REVIEW

    def __init__(self, state: OrderState, event: OrderEventKind) -> None:
        self.state = state
        self.event = event
        super().__init__(f"order state {state.value}: event {event.value} is not possible")


class UnknownOrder(RebalancerError):
    """Raised by ``OrderBook`` when an event names a ``client_order_id`` it does not track."""

    exit_code = ExitCode.MANUAL_REVIEW

    def __init__(self, client_order_id: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(f"no order with client_order_id {client_order_id!r} in this run")


_S = OrderState
_E = OrderEventKind

_LOOKUP_RESULTS: Final[Mapping[OrderEventKind, OrderState]] = {
    _E.LOOKUP_FOUND_WORKING: _S.SUBMITTED,
    _E.LOOKUP_FOUND_PARTIALLY_FILLED: _S.PARTIALLY_FILLED,
    _E.LOOKUP_FOUND_FILLED: _S.FILLED,
    _E.LOOKUP_FOUND_CANCELLED: _S.CANCELLED,
    _E.LOOKUP_FOUND_REJECTED: _S.REJECTED,
    _E.LOOKUP_NOT_FOUND: _S.NOT_SENT,
}

_LIVE_ROWS: dict[OrderState, dict[OrderEventKind, OrderState]] = {
    _S.PLANNED: {
        _E.INTENT_WRITTEN: _S.INTENT_WRITTEN,
        _E.WITHDRAWN: _S.NOT_SENT,
    },
    _S.INTENT_WRITTEN: {
        _E.WITHDRAWN: _S.NOT_SENT,
        _E.ACKED: _S.SUBMITTED,
        _E.REJECTED: _S.REJECTED,
        _E.OUTCOME_UNKNOWN: _S.UNKNOWN,
        # The broker may report executions or an immediate cancel before the ack arrives.
        _E.FILL: _S.PARTIALLY_FILLED,
        _E.FILL_COMPLETE: _S.FILLED,
        _E.CANCELLED: _S.CANCELLED,
        # Recovery: an intent without a result is looked up like an ambiguous outcome.
        **_LOOKUP_RESULTS,
    },
    _S.SUBMITTED: {
        _E.ACKED: _S.SUBMITTED,
        _E.REJECTED: _S.REJECTED,
        _E.OUTCOME_UNKNOWN: _S.UNKNOWN,
        _E.FILL: _S.PARTIALLY_FILLED,
        _E.FILL_COMPLETE: _S.FILLED,
        _E.CANCEL_REQUESTED: _S.CANCEL_REQUESTED,
        _E.CANCELLED: _S.CANCELLED,
        _E.LOOKUP_FOUND_WORKING: _S.SUBMITTED,
        _E.LOOKUP_FOUND_PARTIALLY_FILLED: _S.PARTIALLY_FILLED,
        _E.LOOKUP_FOUND_FILLED: _S.FILLED,
        _E.LOOKUP_FOUND_CANCELLED: _S.CANCELLED,
    },
    _S.PARTIALLY_FILLED: {
        _E.ACKED: _S.PARTIALLY_FILLED,
        _E.OUTCOME_UNKNOWN: _S.UNKNOWN,
        _E.FILL: _S.PARTIALLY_FILLED,
        _E.FILL_COMPLETE: _S.FILLED,
        _E.CANCEL_REQUESTED: _S.CANCEL_REQUESTED,
        _E.CANCELLED: _S.CANCELLED,
        # "Working" does not undo the fills we already counted.
        _E.LOOKUP_FOUND_WORKING: _S.PARTIALLY_FILLED,
        _E.LOOKUP_FOUND_PARTIALLY_FILLED: _S.PARTIALLY_FILLED,
        _E.LOOKUP_FOUND_FILLED: _S.FILLED,
        _E.LOOKUP_FOUND_CANCELLED: _S.CANCELLED,
    },
    _S.CANCEL_REQUESTED: {
        _E.ACKED: _S.CANCEL_REQUESTED,
        _E.OUTCOME_UNKNOWN: _S.UNKNOWN,
        # The cancel races the fill: partial fills keep the cancel pending, a complete fill wins.
        _E.FILL: _S.CANCEL_REQUESTED,
        _E.FILL_COMPLETE: _S.FILLED,
        _E.CANCEL_REQUESTED: _S.CANCEL_REQUESTED,
        _E.CANCELLED: _S.CANCELLED,
        # A refused cancel means the order is probably finished, but not how: look it up.
        _E.CANCEL_REFUSED: _S.UNKNOWN,
        _E.LOOKUP_FOUND_WORKING: _S.CANCEL_REQUESTED,
        _E.LOOKUP_FOUND_PARTIALLY_FILLED: _S.CANCEL_REQUESTED,
        _E.LOOKUP_FOUND_FILLED: _S.FILLED,
        _E.LOOKUP_FOUND_CANCELLED: _S.CANCELLED,
    },
    _S.UNKNOWN: {
        _E.OUTCOME_UNKNOWN: _S.UNKNOWN,
        # Late reports from the broker prove the order reached it.
        _E.ACKED: _S.SUBMITTED,
        _E.REJECTED: _S.REJECTED,
        _E.FILL: _S.PARTIALLY_FILLED,
        _E.FILL_COMPLETE: _S.FILLED,
        _E.CANCELLED: _S.CANCELLED,
        # The answer to a cancel whose call timed out; the lookup still decides.
        _E.CANCEL_REFUSED: _S.UNKNOWN,
        **_LOOKUP_RESULTS,
    },
}

_TERMINAL_ROWS: dict[OrderState, dict[OrderEventKind, OrderState]] = {
    _S.FILLED: {
        # The execution report arrives after the status that already said "filled".
        _E.FILL: _S.FILLED,
        _E.FILL_COMPLETE: _S.FILLED,
        # Our cancel lost the race and the broker refuses it.
        _E.CANCEL_REFUSED: _S.FILLED,
        _E.LOOKUP_FOUND_FILLED: _S.FILLED,
    },
    _S.CANCELLED: {
        # An execution that happened before the cancel, reported after its confirmation.
        _E.FILL: _S.CANCELLED,
        _E.FILL_COMPLETE: _S.FILLED,
        _E.LOOKUP_FOUND_FILLED: _S.FILLED,
        # Both the cancel result and the status callback confirm; a repeated cancel is refused.
        _E.CANCELLED: _S.CANCELLED,
        _E.CANCEL_REFUSED: _S.CANCELLED,
        _E.LOOKUP_FOUND_CANCELLED: _S.CANCELLED,
    },
    _S.REJECTED: {},
    _S.NOT_SENT: {},
}


def _freeze(
    rows: Mapping[OrderState, Mapping[OrderEventKind, OrderState]],
) -> Mapping[OrderState, Mapping[OrderEventKind, OrderState]]:
    return MappingProxyType({state: MappingProxyType(dict(row)) for state, row in rows.items()})


REAL_WORLD_TERMINAL_TRANSITIONS: Final[Mapping[OrderState, Mapping[OrderEventKind, OrderState]]] = (
    _freeze(_TERMINAL_ROWS)
)
"""The only events a finished order accepts; every one of them leads to a terminal state."""


TRANSITIONS: Final[Mapping[OrderState, Mapping[OrderEventKind, OrderState]]] = _freeze(
    {**_LIVE_ROWS, **_TERMINAL_ROWS}
)
"""``TRANSITIONS[state][event]`` is the next state; a missing entry is an illegal transition."""

TERMINAL_STATES: Final[frozenset[OrderState]] = frozenset(
    {_S.FILLED, _S.CANCELLED, _S.REJECTED, _S.NOT_SENT}
)
"""States after which nothing more can happen to the order at the broker."""

OPEN_STATES: Final[frozenset[OrderState]] = frozenset(
    {_S.SUBMITTED, _S.PARTIALLY_FILLED, _S.CANCEL_REQUESTED}
)
"""States in which the order is known to be working at the broker (a shutdown cancels them)."""

UNRESOLVED_STATES: Final[frozenset[OrderState]] = frozenset({_S.INTENT_WRITTEN, _S.UNKNOWN})
"""States in which the order may or may not be at the broker; only a lookup settles it."""


def apply(state: OrderState, event: OrderEventKind) -> OrderState:
    """The state after ``event``.

    Raises:
        IllegalTransition: the event contradicts the state (see the module's rules).
    """
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition(state, event) from None


def can_apply(state: OrderState, event: OrderEventKind) -> bool:
    """True when ``apply(state, event)`` would not raise."""
    return event in TRANSITIONS[state]


def mermaid_diagram() -> str:
    """The table as a Mermaid ``stateDiagram-v2`` for the runbook (generated, never hand-drawn)."""
    lines = ["stateDiagram-v2", f"    [*] --> {_S.PLANNED.name}"]
    for state, row in TRANSITIONS.items():
        targets: dict[OrderState, list[str]] = {}
        for event, target in row.items():
            targets.setdefault(target, []).append(event.value)
        for target, events in targets.items():
            lines.append(f"    {state.name} --> {target.name}: {', '.join(events)}")
    lines.extend(f"    {state.name} --> [*]" for state in OrderState if state in TERMINAL_STATES)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderTracker:
    """What the runtime knows about one order: its state and the executions counted so far.

    ``quantity`` is the number of shares ordered. Executions enter only through
    ``record_fill``, which counts each ``exec_id`` once and moves the state.
    """

    client_order_id: str
    quantity: int
    state: OrderState = OrderState.PLANNED
    filled: int = 0
    exec_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def remaining(self) -> int:
        """Shares not filled yet (never negative)."""
        return max(self.quantity - self.filled, 0)

    @property
    def overfilled(self) -> bool:
        """True when the executions add up to more than was ordered: a case for manual review."""
        return self.filled > self.quantity

    def apply(self, event: OrderEventKind) -> OrderTracker:
        """This tracker after ``event`` (raises ``IllegalTransition``).

        Fills go through ``record_fill`` instead, so that duplicates are counted once.
        """
        return replace(self, state=apply(self.state, event))

    def record_fill(self, exec_id: str, shares: int) -> tuple[OrderTracker, bool]:
        """Count one execution; return the new tracker and whether the execution was new.

        A repeated ``exec_id`` returns ``(self, False)`` and changes nothing. A new one adds
        ``shares`` and applies ``fill_complete`` when the order is now completely filled,
        ``fill`` otherwise.

        Raises:
            ValueError: ``shares`` is not positive or ``exec_id`` is empty.
            IllegalTransition: the state cannot take a fill (e.g. ``REJECTED``).
        """
        if not exec_id:
            raise ValueError("exec_id must not be empty")
        if shares <= 0:
            raise ValueError(f"an execution must have a positive share count, got {shares}")
        if exec_id in self.exec_ids:
            return self, False
        filled = self.filled + shares
        event = _E.FILL_COMPLETE if filled >= self.quantity else _E.FILL
        state = apply(self.state, event)
        return (
            replace(self, state=state, filled=filled, exec_ids=self.exec_ids | {exec_id}),
            True,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderBookStats:
    """How many orders of the run are in each state."""

    total: int
    by_state: Mapping[OrderState, int]
    open: int
    unresolved: int
    terminal: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderBook:
    """The trackers of one run, by ``client_order_id``; every update returns a new book."""

    orders: Mapping[str, OrderTracker] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, trackers: Iterable[OrderTracker]) -> OrderBook:
        """A book holding ``trackers`` (raises ``ValueError`` on a repeated id)."""
        orders: dict[str, OrderTracker] = {}
        for tracker in trackers:
            if tracker.client_order_id in orders:
                raise ValueError(f"duplicate client_order_id {tracker.client_order_id!r}")
            orders[tracker.client_order_id] = tracker
        return cls(orders=MappingProxyType(orders))

    def __getitem__(self, client_order_id: str) -> OrderTracker:
        try:
            return self.orders[client_order_id]
        except KeyError:
            raise UnknownOrder(client_order_id) from None

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self.orders

    def __len__(self) -> int:
        return len(self.orders)

    def _with(self, tracker: OrderTracker) -> OrderBook:
        return OrderBook(orders=MappingProxyType({**self.orders, tracker.client_order_id: tracker}))

    def add(self, tracker: OrderTracker) -> OrderBook:
        """A book with ``tracker`` added (raises ``ValueError`` if its id is already tracked)."""
        if tracker.client_order_id in self.orders:
            raise ValueError(f"duplicate client_order_id {tracker.client_order_id!r}")
        return self._with(tracker)

    def apply(self, client_order_id: str, event: OrderEventKind) -> OrderBook:
        """A book with ``event`` applied to one order (``UnknownOrder``, ``IllegalTransition``)."""
        return self._with(self[client_order_id].apply(event))

    def record_fill(
        self, client_order_id: str, exec_id: str, shares: int
    ) -> tuple[OrderBook, bool]:
        """Count one execution of one order; see ``OrderTracker.record_fill``."""
        tracker, is_new = self[client_order_id].record_fill(exec_id, shares)
        return (self._with(tracker) if is_new else self), is_new

    def in_states(self, states: frozenset[OrderState]) -> tuple[OrderTracker, ...]:
        """The trackers whose state is one of ``states``, in insertion order."""
        return tuple(t for t in self.orders.values() if t.state in states)

    def statistics(self) -> OrderBookStats:
        """Counts per state, for status output and the runtime's health check."""
        by_state = {state: 0 for state in OrderState}
        for tracker in self.orders.values():
            by_state[tracker.state] += 1
        return OrderBookStats(
            total=len(self.orders),
            by_state=MappingProxyType(by_state),
            open=sum(by_state[s] for s in OPEN_STATES),
            unresolved=sum(by_state[s] for s in UNRESOLVED_STATES),
            terminal=sum(by_state[s] for s in TERMINAL_STATES),
        )
