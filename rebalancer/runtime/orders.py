"""Order execution: submit the plan's orders concurrently and follow each one until terminal.

One task group owns everything: an update pump that reads the broker's order updates and
dispatches them to tickets, and one task per order. Orders are submitted at most
``max_in_flight`` at a time; every broker request goes through the audit gateway (write-ahead
brackets) and the shared token bucket. An order not filled within the order timeout, or still
working when a stop is requested, is cancelled through the shared cancel path. An order whose
outcome is unknown is never resubmitted: it is looked up by ``client_order_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio
import structlog

from brokers.errors import BrokerError, BrokerUnavailable, OrderRejected, OutcomeUnknown
from brokers.lookup import find_order
from brokers.types import OrderRequest, OrderSnapshot, OrderStatus, OrderUpdate, TimeInForce
from rebalancer.model import PlannedOrder
from rebalancer.order_fsm import IllegalTransition, OrderEvent, OrderState, apply
from rebalancer.runtime.cancel import cancel_order_verified

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from rebalancer.audit.gateway import AuditedBroker
    from rebalancer.audit.writer import AuditLog

log = structlog.get_logger(__name__)

_DONE = frozenset(
    {OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.NOT_SENT}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionSettings:
    """Timeouts and bounds of the order phase (seconds)."""

    ack_timeout: float
    order_timeout: float
    cancel_timeout: float
    max_in_flight: int
    time_in_force: TimeInForce = TimeInForce.DAY
    settle_timeout: float = 5.0
    """How long an unacknowledged order is looked for before it is declared never sent."""


class StopRequest:
    """Set once when the run must stop submitting and cancel what is working."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.requested_at: float | None = None
        self.reason = ""

    def request(self, reason: str) -> None:
        """Ask the run to stop (idempotent)."""
        if not self.event.is_set():
            self.requested_at = anyio.current_time()
            self.reason = reason
            self.event.set()

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.event.is_set()


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

    @property
    def still_open(self) -> bool:
        """True when the order may still be working at the broker."""
        return self.state not in _DONE


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
        return sum(1 for o in self.orders if o.filled >= o.quantity)

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
        return self.count(OrderState.REJECTED, OrderState.NOT_SENT)

    @property
    def unresolved(self) -> tuple[OrderResult, ...]:
        """Orders whose state at the broker could not be established."""
        return tuple(o for o in self.orders if o.still_open)

    @property
    def cancelled_by_stop(self) -> int:
        """Orders cancelled because a stop was requested."""
        return sum(1 for o in self.orders if o.cancelled_by_stop)


@dataclass(kw_only=True)
class _Ticket:
    """Mutable state of one order, owned by its task and updated by the pump."""

    order: PlannedOrder
    state: OrderState = OrderState.PLANNED
    order_id: int | None = None
    filled: int = 0
    fill_value: Decimal = Decimal(0)
    exec_ids: set[str] = field(default_factory=set)
    note: str = ""
    cancelled_by_stop: bool = False
    terminal_recorded: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)

    def poke(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def move(self, event: OrderEvent) -> None:
        try:
            self.state = apply(self.state, event)
        except IllegalTransition as exc:
            log.warning(
                "illegal_order_transition",
                client_order_id=self.order.client_order_id,
                error=str(exc),
            )

    @property
    def done(self) -> bool:
        return self.state in _DONE

    def result(self) -> OrderResult:
        avg = (self.fill_value / self.filled).quantize(Decimal("0.0001")) if self.filled else None
        return OrderResult(
            client_order_id=self.order.client_order_id,
            symbol=self.order.symbol,
            side=self.order.side.value,
            quantity=self.order.quantity,
            filled=self.filled,
            avg_price=avg,
            state=self.state,
            order_id=self.order_id,
            note=self.note,
            cancelled_by_stop=self.cancelled_by_stop,
        )


_STATUS_EVENT = {
    OrderStatus.FILLED: OrderEvent.FILLED,
    OrderStatus.CANCELLED: OrderEvent.CANCELLED,
    OrderStatus.REJECTED: OrderEvent.REJECTED,
}


def _lookup_event(snapshot: OrderSnapshot) -> OrderEvent:
    """The FSM event for what a lookup found."""
    if snapshot.status is OrderStatus.FILLED:
        return OrderEvent.LOOKUP_FOUND_FILLED
    if snapshot.status is OrderStatus.CANCELLED:
        return OrderEvent.LOOKUP_FOUND_CANCELLED
    if snapshot.status is OrderStatus.REJECTED:
        return OrderEvent.LOOKUP_FOUND_REJECTED
    if snapshot.filled > 0:
        return OrderEvent.LOOKUP_FOUND_PARTIALLY_FILLED
    return OrderEvent.LOOKUP_FOUND_WORKING


class OrderExecutor:
    """Runs the order phase of one run."""

    def __init__(
        self,
        *,
        gateway: AuditedBroker,
        audit: AuditLog,
        account_id: str,
        settings: ExecutionSettings,
        stop: StopRequest,
        since: datetime,
        progress: Callable[[str], None],
    ) -> None:
        self._gw = gateway
        self._audit = audit
        self._account = account_id
        self._settings = settings
        self._stop = stop
        self._since = since
        self._progress = progress
        self._tickets: dict[str, _Ticket] = {}

    async def execute(
        self, orders: Sequence[PlannedOrder], *, sells_first: bool
    ) -> ExecutionResult:
        """Submit ``orders`` and follow each until terminal (or cancelled, or unresolved).

        With ``sells_first`` the buys start only after every sell has ended, so that sale
        proceeds are there to pay for them.
        """
        self._tickets = {o.client_order_id: _Ticket(order=o) for o in orders}
        limiter = anyio.CapacityLimiter(self._settings.max_in_flight)
        async with anyio.create_task_group() as tg:
            await tg.start(self._pump)
            tg.start_soon(self._wake_on_stop)
            phases = (
                [[o for o in orders if o.side.value == "SELL"],
                 [o for o in orders if o.side.value != "SELL"]]
                if sells_first
                else [list(orders)]
            )
            for phase in phases:
                async with anyio.create_task_group() as orders_tg:
                    for order in phase:
                        orders_tg.start_soon(self._follow, self._tickets[order.client_order_id],
                                             limiter)
            tg.cancel_scope.cancel()
        return ExecutionResult(orders=tuple(t.result() for t in self._tickets.values()))

    # -- the pump: broker order updates → tickets -------------------------------------------

    async def _pump(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                    ) -> None:
        updates = self._gw.order_updates()
        task_status.started()
        try:
            async for update in updates:
                await self._on_update(update)
        except BrokerError as exc:
            # The stream is gone; tickets fall back to lookups when they time out.
            log.warning("order_updates_lost", error=str(exc))

    async def _wake_on_stop(self) -> None:
        await self._stop.event.wait()
        for ticket in self._tickets.values():
            ticket.poke()

    async def _on_update(self, update: OrderUpdate) -> None:
        ticket = self._tickets.get(update.client_order_id)
        if ticket is None:
            return
        if ticket.order_id is None:
            ticket.order_id = update.order_id
        # Any update proves the order reached the broker, even before place_order returned
        # (acknowledgement latency) or after it failed with an unknown outcome.
        if ticket.state is OrderState.INTENT_WRITTEN:
            ticket.move(OrderEvent.ACKED)
        elif ticket.state is OrderState.UNKNOWN:
            ticket.move(OrderEvent.LOOKUP_FOUND_WORKING)
        execution = update.execution
        if execution is not None and execution.exec_id not in ticket.exec_ids:
            ticket.exec_ids.add(execution.exec_id)
            ticket.filled += execution.quantity
            ticket.fill_value += execution.price * execution.quantity
            ticket.move(OrderEvent.PARTIAL_FILL)
            await self._audit.append(
                "order_filled",
                {
                    "client_order_id": ticket.order.client_order_id,
                    "symbol": ticket.order.symbol,
                    "order_id": update.order_id,
                    "exec_id": execution.exec_id,
                    "shares": execution.quantity,
                    "price": str(execution.price),
                    "cumulative_filled": ticket.filled,
                    "status": "Filled" if ticket.filled >= ticket.order.quantity else "PartialFill",
                },
            )
            self._progress(
                f"fill    {ticket.order.side.value:<4} {execution.quantity:>6} "
                f"{ticket.order.symbol:<6} @ {execution.price}  "
                f"({ticket.filled}/{ticket.order.quantity})"
            )
        if update.status.is_terminal:
            await self._finish(ticket, update.status, update.filled, update.avg_fill_price,
                               source="update", message=update.message)
        ticket.poke()

    async def _finish(
        self,
        ticket: _Ticket,
        status: OrderStatus,
        broker_filled: int,
        avg_fill_price: Decimal | None,
        *,
        source: str,
        message: str = "",
    ) -> None:
        """Record a terminal broker status once (updates, lookups and cancels may all see it)."""
        if ticket.terminal_recorded:
            return
        ticket.terminal_recorded = True
        if broker_filled > ticket.filled:
            # The broker's cumulative figure is ahead of the executions we saw.
            missing = broker_filled - ticket.filled
            price = avg_fill_price if avg_fill_price is not None else ticket.order.limit_price
            ticket.fill_value += price * missing
            ticket.filled = broker_filled
        if not ticket.done:
            ticket.move(_STATUS_EVENT[status])
        if message:
            ticket.note = message
        await self._audit.append(
            "order_status",
            {
                "client_order_id": ticket.order.client_order_id,
                "symbol": ticket.order.symbol,
                "order_id": ticket.order_id,
                "status": status.value,
                "filled": ticket.filled,
                "remaining": max(ticket.order.quantity - ticket.filled, 0),
                "source": source,
            },
        )
        self._progress(
            f"{status.value:<7} {ticket.order.side.value:<4} {ticket.order.quantity:>6} "
            f"{ticket.order.symbol:<6} filled {ticket.filled}/{ticket.order.quantity}"
        )

    # -- one order ------------------------------------------------------------------------

    async def _follow(self, ticket: _Ticket, limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            if self._stop.requested:
                ticket.note = "not submitted: stop requested"
                ticket.move(OrderEvent.SKIPPED)
                return
            # The submission is shielded: a stop lets the call in flight complete.
            with anyio.CancelScope(shield=True):
                await self._submit(ticket)
            if ticket.state is OrderState.UNKNOWN:
                await self._resolve(ticket)
            if ticket.done or ticket.state is OrderState.UNKNOWN:
                return
            with anyio.move_on_after(self._settings.order_timeout):
                while not ticket.done and not self._stop.requested:
                    await ticket.changed.wait()
            if not ticket.done:
                await self._cancel(ticket)

    async def _submit(self, ticket: _Ticket) -> None:
        order = ticket.order
        request = OrderRequest(
            client_order_id=order.client_order_id,
            account_id=self._account,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            limit_price=order.limit_price,
            time_in_force=self._settings.time_in_force,
        )
        ticket.move(OrderEvent.INTENT_WRITTEN)
        try:
            with anyio.fail_after(self._settings.ack_timeout):
                ack = await self._gw.place_order(request, action=order.action.value)
        except OrderRejected as exc:
            ticket.note = f"rejected: [{exc.code}] {exc.message}"
            ticket.move(OrderEvent.REJECTED)
            self._progress(f"REJECT  {order.side.value:<4} {order.quantity:>6} {order.symbol:<6} "
                           f"{exc.message}")
            return
        except BrokerUnavailable as exc:
            ticket.note = f"not sent: {exc}"
            ticket.move(OrderEvent.NOT_SENT)
            self._progress(f"FAILED  {order.side.value:<4} {order.quantity:>6} {order.symbol:<6} "
                           f"not sent: {exc}")
            return
        except (OutcomeUnknown, TimeoutError) as exc:
            ticket.note = f"outcome unknown: {exc or 'no acknowledgement in time'}"
            if ticket.state is not OrderState.INTENT_WRITTEN:
                return  # updates already showed the order at the broker
            ticket.move(OrderEvent.OUTCOME_UNKNOWN)
            self._progress(f"UNKNOWN {order.side.value:<4} {order.quantity:>6} {order.symbol:<6} "
                           "no acknowledgement; looking it up")
            return
        ticket.order_id = ack.order_id
        log.info("order_acknowledged", client_order_id=order.client_order_id,
                 symbol=order.symbol, order_id=ack.order_id)
        if ticket.state is OrderState.INTENT_WRITTEN:
            ticket.move(OrderEvent.ACKED)
        self._progress(
            f"submit  {order.side.value:<4} {order.quantity:>6} {order.symbol:<6} "
            f"@ {order.limit_price}  (order {ack.order_id})"
        )

    async def _resolve(self, ticket: _Ticket) -> None:
        """Find an order whose submission outcome is unknown; never resubmit it."""
        snapshot: OrderSnapshot | None = None
        looked_up = False
        with anyio.move_on_after(self._settings.settle_timeout):
            while ticket.state is OrderState.UNKNOWN:
                try:
                    with anyio.fail_after(self._settings.ack_timeout):
                        snapshot = await find_order(
                            self._gw, ticket.order.client_order_id, since=self._since
                        )
                    looked_up = True
                except (BrokerError, TimeoutError) as exc:
                    log.warning("order_lookup_failed", client_order_id=ticket.order.client_order_id,
                                error=str(exc))
                if snapshot is not None:
                    break
                await anyio.sleep(0.25)
        if ticket.state is not OrderState.UNKNOWN:
            return  # the update stream showed the order while we were looking
        if snapshot is None:
            if not looked_up:
                ticket.note = "outcome unknown and the broker could not be asked: manual review"
                return
            ticket.note = "never reached the broker (not found by client_order_id)"
            ticket.move(OrderEvent.LOOKUP_NOT_FOUND)
            await self._audit.append(
                "order_status",
                {
                    "client_order_id": ticket.order.client_order_id,
                    "symbol": ticket.order.symbol,
                    "order_id": None,
                    "status": "not_sent",
                    "filled": 0,
                    "remaining": ticket.order.quantity,
                    "source": "lookup",
                },
            )
            return
        ticket.order_id = snapshot.order_id
        ticket.note = "found at the broker after an unknown outcome"
        ticket.move(_lookup_event(snapshot))
        if snapshot.status.is_terminal:
            await self._finish(ticket, snapshot.status, snapshot.filled, snapshot.avg_fill_price,
                               source="lookup")

    async def _cancel(self, ticket: _Ticket) -> None:
        assert ticket.order_id is not None  # a ticket waits only after an ack or a lookup hit
        by_stop = self._stop.requested
        reason = "graceful_shutdown" if by_stop else "order_timeout"
        ticket.move(OrderEvent.CANCEL_REQUESTED)
        outcome = await cancel_order_verified(
            self._gw,
            order_id=ticket.order_id,
            client_order_id=ticket.order.client_order_id,
            symbol=ticket.order.symbol,
            reason=reason,
            since=self._since,
            timeout_secs=self._settings.cancel_timeout,
        )
        final = outcome.final
        log.info("order_cancel", client_order_id=ticket.order.client_order_id, reason=reason,
                 verified=outcome.verified, filled=outcome.filled,
                 request_error=outcome.request_error)
        if final is not None and final.status.is_terminal:
            await self._finish(ticket, final.status, final.filled, final.avg_fill_price,
                               source="cancel")
        if ticket.done:
            ticket.cancelled_by_stop = by_stop and ticket.state is OrderState.CANCELLED
        else:
            ticket.note = outcome.request_error or "cancel could not be verified"
