"""Order execution: submit the plan's orders concurrently and follow each one until terminal.

One task group owns everything: an update pump that reads the broker's order updates and
dispatches them to tickets, and one task per order. At most ``max_in_flight`` orders are
working at once; every broker request goes through the audit gateway (write-ahead brackets)
and the shared token bucket. An order not filled within the order timeout, or still working
when a stop is requested, is cancelled through the shared cancel path. An order whose outcome
is unknown is never resubmitted: it is looked up by ``client_order_id``. If anything
unexpected breaks the order phase, every order known to be at the broker is cancelled through
the shared cancel path before the error goes up (an audit failure excepted: that is fail-stop).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import structlog

from brokers.errors import BrokerError, BrokerUnavailable, OrderRejected, OutcomeUnknown
from brokers.lookup import find_order
from brokers.types import OrderRequest, OrderSnapshot, OrderStatus, OrderUpdate, TimeInForce
from rebalancer.audit.errors import AuditError
from rebalancer.order_fsm import OrderEvent, OrderState
from rebalancer.runtime.cancel import cancel_order_verified
from rebalancer.runtime.tickets import ExecutionResult, OrderResult, Ticket

if TYPE_CHECKING:
    from datetime import datetime
    from decimal import Decimal

    from rebalancer.audit.gateway import AuditedBroker
    from rebalancer.audit.writer import AuditLog
    from rebalancer.model import PlannedOrder

__all__ = [
    "ExecutionResult",
    "ExecutionSettings",
    "OrderExecutor",
    "OrderResult",
    "StopRequest",
]

log = structlog.get_logger(__name__)

Pacer = Callable[[], Awaitable[None]]

_WORKING = frozenset(
    {OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED, OrderState.CANCEL_REQUESTED}
)
_DRAIN_SECS = 1.0
"""How long late executions are awaited after the last order ended."""


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
    pacing_timeout: float = 60.0
    """The longest wait for a pacing token before an order is withdrawn (never sent)."""


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


def _is_audit_failure(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_audit_failure(e) for e in exc.exceptions)
    return isinstance(exc, AuditError)


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
        pacer: Pacer | None = None,
    ) -> None:
        self._gw = gateway
        self._audit = audit
        self._account = account_id
        self._settings = settings
        self._stop = stop
        self._since = since
        self._progress = progress
        self._pacer = pacer
        self._tickets: dict[str, Ticket] = {}

    async def execute(
        self, orders: Sequence[PlannedOrder], *, sells_first: bool
    ) -> ExecutionResult:
        """Submit ``orders`` and follow each until terminal (or cancelled, or unresolved).

        With ``sells_first`` the buys start only after every sell has ended, so that sale
        proceeds are there to pay for them.
        """
        self._tickets = {o.client_order_id: Ticket(order=o) for o in orders}
        limiter = anyio.CapacityLimiter(self._settings.max_in_flight)
        sells = [o for o in orders if o.side.value == "SELL"]
        phases = [sells, [o for o in orders if o.side.value != "SELL"]] if sells_first else [
            list(orders)]
        async with anyio.create_task_group() as tg:
            await tg.start(self._pump)
            tg.start_soon(self._wake_on_stop)
            try:
                for phase in phases:
                    async with anyio.create_task_group() as orders_tg:
                        for order in phase:
                            orders_tg.start_soon(
                                self._follow, self._tickets[order.client_order_id], limiter
                            )
            except BaseException as exc:
                if not _is_audit_failure(exc):
                    await self._cancel_everything_open(f"order phase failed: {exc!r}")
                raise
            await self._drain()
            tg.cancel_scope.cancel()
        return ExecutionResult(orders=tuple(t.result() for t in self._tickets.values()))

    def _report(self, line: str) -> None:
        """One progress line, with the running count of the order phase."""
        tickets = self._tickets.values()
        done = sum(1 for t in tickets if t.done)
        working = sum(1 for t in tickets if t.state in _WORKING)
        filled = sum(1 for t in tickets if t.state is OrderState.FILLED)
        self._progress(f"{line:<58} [{filled} filled, {working} working, "
                       f"{done}/{len(self._tickets)} done]")

    async def _cancel_everything_open(self, why: str) -> None:
        """Last resort: cancel, through the shared path, every order known to be at the broker."""
        log.error("order_phase_failed", error=why)
        with anyio.CancelScope(shield=True):
            for ticket in self._tickets.values():
                if ticket.order_id is not None and not ticket.done:
                    try:
                        await self._cancel(ticket, reason="internal_error")
                    except Exception as exc:  # keep cancelling the others
                        log.error("emergency_cancel_failed",
                                  client_order_id=ticket.order.client_order_id, error=repr(exc))

    async def _drain(self) -> None:
        """Give executions reported after a terminal status a moment to arrive."""
        with anyio.move_on_after(_DRAIN_SECS):
            while True:
                behind = [t for t in self._tickets.values() if t.exec_filled < t.broker_filled]
                if not behind:
                    return
                await behind[0].changed.wait()

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
        elif ticket.state is OrderState.NOT_SENT and not ticket.contradicted:
            ticket.contradicted = True
            ticket.note = "reported by the broker after it was declared never sent: review"
            log.error("order_contradicts_lookup", client_order_id=update.client_order_id)
        execution = update.execution
        if execution is not None and ticket.add_execution(
            execution.exec_id, execution.quantity, execution.price
        ):
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
                    "cumulative_filled": ticket.exec_filled,
                    "status": (
                        "Filled" if ticket.exec_filled >= ticket.order.quantity else "PartialFill"
                    ),
                },
            )
            self._report(
                f"fill    {ticket.order.side.value:<4} {execution.quantity:>6} "
                f"{ticket.order.symbol:<6} @ {execution.price}  "
                f"({ticket.exec_filled}/{ticket.order.quantity})"
            )
        if update.status.is_terminal:
            await self._finish(ticket, update.status, update.filled, update.avg_fill_price,
                               source="update", message=update.message)
        else:
            ticket.broker_reports(update.filled, update.avg_fill_price)
        ticket.poke()

    async def _finish(
        self,
        ticket: Ticket,
        status: OrderStatus,
        broker_filled: int,
        avg_fill_price: Decimal | None,
        *,
        source: str,
        message: str = "",
    ) -> None:
        """Record a terminal broker status once (updates, lookups and cancels may all see it)."""
        ticket.broker_reports(broker_filled, avg_fill_price)
        if ticket.terminal_recorded:
            return
        ticket.terminal_recorded = True
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
        self._report(
            f"{status.value:<7} {ticket.order.side.value:<4} {ticket.order.quantity:>6} "
            f"{ticket.order.symbol:<6} filled {ticket.filled}/{ticket.order.quantity}"
        )

    # -- one order ------------------------------------------------------------------------

    async def _follow(self, ticket: Ticket, limiter: anyio.CapacityLimiter) -> None:
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
                reason = "graceful_shutdown" if self._stop.requested else "order_timeout"
                await self._cancel(ticket, reason=reason)

    async def _withdraw(self, ticket: Ticket, why: str) -> None:
        """The order was never handed to the broker: record it and stop following it."""
        ticket.note = f"not sent: {why}"
        ticket.move(OrderEvent.NOT_SENT)
        await self._audit.append("order_status", {
            "client_order_id": ticket.order.client_order_id, "symbol": ticket.order.symbol,
            "order_id": None, "status": "not_sent", "filled": 0,
            "remaining": ticket.order.quantity, "source": "runner", "reason": why,
        })

    async def _submit(self, ticket: Ticket) -> None:
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
        if self._pacer is not None:
            # The pacing wait is taken first, so the ack deadline below measures the broker.
            try:
                with anyio.fail_after(self._settings.pacing_timeout):
                    await self._pacer()
            except TimeoutError:
                await self._withdraw(ticket, "no pacing slot in time")
                return
        ticket.move(OrderEvent.INTENT_WRITTEN)
        try:
            with anyio.fail_after(self._settings.ack_timeout):
                ack = await self._gw.place_order(
                    request, action=order.action.value, paced=self._pacer is not None
                )
        except OrderRejected as exc:
            ticket.note = f"rejected: [{exc.code}] {exc.message}"
            ticket.move(OrderEvent.REJECTED)
            self._report(f"REJECT  {order.side.value:<4} {order.quantity:>6} {order.symbol:<6} "
                           f"{exc.message}")
            return
        except BrokerUnavailable as exc:
            ticket.note = f"not sent: {exc}"
            ticket.move(OrderEvent.NOT_SENT)
            self._report(f"FAILED  {order.side.value:<4} {order.quantity:>6} {order.symbol:<6} "
                           f"not sent: {exc}")
            return
        except (OutcomeUnknown, BrokerError, TimeoutError) as exc:
            # Any other broker failure is treated as "may have been sent": looked up, never
            # sent again.
            ticket.note = f"outcome unknown: {exc or 'no acknowledgement in time'}"
            if ticket.state is not OrderState.INTENT_WRITTEN:
                return  # updates already showed the order at the broker
            ticket.move(OrderEvent.OUTCOME_UNKNOWN)
            self._report(f"UNKNOWN {order.side.value:<4} {order.quantity:>6} {order.symbol:<6} "
                           "no acknowledgement; looking it up")
            return
        ticket.order_id = ack.order_id
        log.info("order_acknowledged", client_order_id=order.client_order_id,
                 symbol=order.symbol, order_id=ack.order_id)
        if ticket.state is OrderState.INTENT_WRITTEN:
            ticket.move(OrderEvent.ACKED)
        self._report(
            f"submit  {order.side.value:<4} {order.quantity:>6} {order.symbol:<6} "
            f"@ {order.limit_price}  (order {ack.order_id})"
        )

    async def _resolve(self, ticket: Ticket) -> None:
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
        else:
            ticket.broker_reports(snapshot.filled, snapshot.avg_fill_price)

    async def _cancel(self, ticket: Ticket, *, reason: str) -> None:
        if ticket.order_id is None:
            ticket.note = "cannot cancel: no broker order id known"
            return
        by_stop = reason == "graceful_shutdown"
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
