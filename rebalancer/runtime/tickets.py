"""Per-order bookkeeping of the order phase: the mutable ticket of each order and the frozen
results the run reports.

Fill accounting keeps two figures apart and never adds one to the other: the shares of the
distinct executions seen (de-duplicated by ``exec_id``) and the broker's own cumulative figure
(from status updates, lookups and cancel verification). The order's filled quantity is the
larger of the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import anyio
import structlog

from rebalancer.model import PlannedOrder
from rebalancer.order_fsm import IllegalTransition, OrderEvent, OrderState, apply

log = structlog.get_logger(__name__)

DONE_STATES = frozenset(
    {OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.NOT_SENT}
)
_PRICE = Decimal("0.0001")


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderResult:
    """Where one order of the plan ended."""

    client_order_id: str
    symbol: str
    side: str
    quantity: int
    filled: int
    avg_price: Decimal | None
    state: OrderState
    order_id: int | None
    note: str
    cancelled_by_stop: bool
    contradicted: bool = False
    """The broker reported an order the run had concluded was never sent."""

    @property
    def still_open(self) -> bool:
        """True when the order may still be working at the broker (or its fate is in doubt)."""
        return self.contradicted or self.state not in DONE_STATES


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResult:
    """Every order's outcome, in plan order."""

    orders: tuple[OrderResult, ...]

    def count(self, *states: OrderState) -> int:
        """How many orders ended in one of ``states``."""
        return sum(1 for o in self.orders if o.state in states)

    @property
    def submitted(self) -> int:
        """Orders that reached the broker."""
        return sum(1 for o in self.orders if o.order_id is not None)

    @property
    def fully_filled(self) -> int:
        """Orders filled in full."""
        return sum(1 for o in self.orders if o.filled >= o.quantity and not o.still_open)

    @property
    def partially_filled(self) -> int:
        """Orders that ended with some but not all shares filled."""
        return sum(1 for o in self.orders if 0 < o.filled < o.quantity and not o.still_open)

    @property
    def cancelled_unfilled(self) -> int:
        """Orders cancelled with nothing filled."""
        return sum(1 for o in self.orders if o.state is OrderState.CANCELLED and o.filled == 0)

    @property
    def failed(self) -> int:
        """Orders rejected or never sent."""
        return sum(
            1 for o in self.orders
            if o.state in (OrderState.REJECTED, OrderState.NOT_SENT) and not o.still_open
        )

    @property
    def unresolved(self) -> tuple[OrderResult, ...]:
        """Orders whose state at the broker could not be established."""
        return tuple(o for o in self.orders if o.still_open)

    @property
    def cancelled_by_stop(self) -> int:
        """Orders cancelled because a stop was requested."""
        return sum(1 for o in self.orders if o.cancelled_by_stop)


@dataclass(kw_only=True)
class Ticket:
    """Mutable state of one order, owned by its task and updated by the update pump."""

    order: PlannedOrder
    state: OrderState = OrderState.PLANNED
    order_id: int | None = None
    exec_ids: set[str] = field(default_factory=set)
    exec_filled: int = 0
    exec_value: Decimal = Decimal(0)
    broker_filled: int = 0
    broker_avg: Decimal | None = None
    note: str = ""
    cancelled_by_stop: bool = False
    terminal_recorded: bool = False
    contradicted: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)

    def poke(self) -> None:
        """Wake whoever waits on this ticket."""
        self.changed.set()
        self.changed = anyio.Event()

    def move(self, event: OrderEvent) -> None:
        """Apply an FSM event; an illegal one is logged and leaves the state as it was."""
        try:
            self.state = apply(self.state, event)
        except IllegalTransition as exc:
            log.warning("illegal_order_transition", client_order_id=self.order.client_order_id,
                        error=str(exc))

    def add_execution(self, exec_id: str, shares: int, price: Decimal) -> bool:
        """Count one execution; ``False`` for a repeat of an ``exec_id`` already counted."""
        if exec_id in self.exec_ids:
            return False
        self.exec_ids.add(exec_id)
        self.exec_filled += shares
        self.exec_value += price * shares
        return True

    def broker_reports(self, filled: int, avg_price: Decimal | None) -> None:
        """Take the broker's cumulative filled figure (it only ever grows)."""
        if filled > self.broker_filled:
            self.broker_filled = filled
            self.broker_avg = avg_price

    @property
    def filled(self) -> int:
        """Shares filled: the larger of the executions seen and the broker's figure."""
        return max(self.exec_filled, self.broker_filled)

    @property
    def avg_price(self) -> Decimal | None:
        """Average fill price from the figure that ``filled`` comes from."""
        if self.broker_filled > self.exec_filled and self.broker_avg is not None:
            return self.broker_avg.quantize(_PRICE)
        if self.exec_filled:
            return (self.exec_value / self.exec_filled).quantize(_PRICE)
        return None

    @property
    def done(self) -> bool:
        """True in a terminal state."""
        return self.state in DONE_STATES

    def result(self) -> OrderResult:
        """The frozen outcome."""
        return OrderResult(
            client_order_id=self.order.client_order_id,
            symbol=self.order.symbol,
            side=self.order.side.value,
            quantity=self.order.quantity,
            filled=self.filled,
            avg_price=self.avg_price,
            state=self.state,
            order_id=self.order_id,
            note=self.note,
            cancelled_by_stop=self.cancelled_by_stop,
            contradicted=self.contradicted,
        )
