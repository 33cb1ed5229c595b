"""The one broker interface every implementation (simulated, Interactive Brokers) provides."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import datetime

    from brokers.types import (
        AccountSummary,
        Execution,
        OrderAck,
        OrderRequest,
        OrderSnapshot,
        OrderUpdate,
        Position,
        Quote,
    )


@runtime_checkable
class Broker(Protocol):
    """An async connection to one broker account.

    Errors are those of ``brokers.errors``. Reads raise ``BrokerUnavailable`` when they may be
    retried. Every method may be cancelled; cancelling a state-changing call leaves its outcome
    unknown (the caller records it as ambiguous and looks the order up afterwards).
    """

    @property
    def client_id(self) -> int:
        """The API client id of this connection; cancels are scoped to it."""
        ...

    async def connect(self) -> None:
        """Open the connection. Raises ``BrokerUnavailable`` when the broker cannot be reached."""
        ...

    async def close(self) -> None:
        """Close the connection. Idempotent; never raises for an already closed connection."""
        ...

    async def account_summary(self) -> AccountSummary:
        """Net liquidation, cash, buying power and currency of the configured account."""
        ...

    async def positions(self) -> tuple[Position, ...]:
        """Stock positions of the configured account only (no other accounts, no other types)."""
        ...

    async def quotes(self, symbols: Sequence[str]) -> tuple[Quote, ...]:
        """One quote per requested symbol, in the order asked.

        A symbol the broker does not know yields a quote with no prices rather than an error.
        """
        ...

    async def place_order(self, request: OrderRequest) -> OrderAck:
        """Send a limit order and wait for the broker's acknowledgement.

        Raises ``OrderRejected`` when refused, ``BrokerUnavailable`` when it was certainly not
        sent, and ``OutcomeUnknown`` when it may have reached the broker without an ack.
        """
        ...

    async def cancel_order(self, order_id: int) -> None:
        """Request the cancellation of one of this client's orders.

        Returns once the broker has accepted the request; the order's terminal status arrives
        through ``order_updates`` or is read with ``open_orders``/``completed_orders``.
        Raises ``OrderRejected`` when the order is unknown to this client or no longer
        cancellable (e.g. already filled), ``OutcomeUnknown`` when the request may have been lost.
        """
        ...

    async def open_orders(self) -> tuple[OrderSnapshot, ...]:
        """Every open order of the account, from every client id (ours and others')."""
        ...

    async def completed_orders(self, since: datetime) -> tuple[OrderSnapshot, ...]:
        """Orders of the account that reached a terminal state at or after ``since``."""
        ...

    async def executions(self, since: datetime) -> tuple[Execution, ...]:
        """Executions of the account at or after ``since``."""
        ...

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        """Status changes and fills of this client's orders from now on.

        The iterator ends (``StopAsyncIteration``) when the connection closes and raises
        ``BrokerUnavailable`` when the connection is lost. Updates may be repeated.
        """
        ...
