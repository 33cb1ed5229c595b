"""``AuditedBroker``: the only way the runtime reaches a broker.

Every call that asks the broker something or changes broker state is wrapped in a write-ahead
bracket (``rebalancer.audit.bracket``): its intent is durable before the request leaves, its
result (or failure class) is durable before the caller sees the answer. The raw broker is a
private attribute; the runtime holds only this object, so no broker call can bypass the log.

``order_updates()`` is passed through unbracketed: reading the update stream changes nothing at
the broker (the runtime records fills and status changes itself as ``order_filled`` /
``order_status``). ``connect``/``close`` manage the connection only.

An optional ``pacer`` (an async ``acquire()``, e.g. a shared token bucket) is awaited before
every broker request, after the intent is durable. If the wait itself fails or is cancelled
(a ``fail_after`` around the call expiring while paced), the request was never sent, and the
result is recorded as ``rejected`` with ``not_sent: true`` rather than ``ambiguous``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from brokers.base import Broker
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
    from rebalancer.audit.bracket import Bracket, Classifier
    from rebalancer.audit.writer import AuditLog

Pacer = Callable[[], Awaitable[None]]
"""Awaited before every broker request (after the intent is durable)."""


class AuditedBroker:
    """A broker whose every request is bracketed by durable intent and result records."""

    __slots__ = ("__broker", "_classify", "_log", "_pacer")

    def __init__(
        self,
        broker: Broker,
        log: AuditLog,
        *,
        pacer: Pacer | None = None,
        classify: Classifier | None = None,
    ) -> None:
        """Wrap ``broker``; the caller must drop its own reference to the raw broker."""
        self.__broker = broker
        self._log = log
        self._pacer = pacer
        self._classify = classify

    @property
    def log(self) -> AuditLog:
        """The audit log every bracket is written to."""
        return self._log

    @property
    def client_id(self) -> int:
        """The broker connection's API client id."""
        return self.__broker.client_id

    async def connect(self) -> None:
        """Open the broker connection (not bracketed: it changes no account state)."""
        await self.__broker.connect()

    async def close(self) -> None:
        """Close the broker connection."""
        await self.__broker.close()

    async def _pace(self, bracket: Bracket) -> None:
        """Wait for the pacer; failing here (timeout, cancel) means the request was never sent."""
        if self._pacer is None:
            return
        try:
            await self._pacer()
        except BaseException:
            bracket.not_sent = True
            raise

    # -- reads ------------------------------------------------------------------------------

    async def account_summary(self) -> AccountSummary:
        """Bracketed ``account_summary`` (result: equity, cash, buying power, currency)."""
        async with self._log.bracket("account_summary", {}, classify=self._classify) as b:
            await self._pace(b)
            summary = await self.__broker.account_summary()
            b.result = {
                "equity": summary.net_liquidation,
                "cash": summary.cash,
                "buying_power": summary.buying_power,
                "currency": summary.currency,
                "account_id": summary.account_id,
            }
        return summary

    async def positions(self) -> tuple[Position, ...]:
        """Bracketed ``positions`` (result: ``positions`` [{symbol, qty, avg_cost}])."""
        async with self._log.bracket("positions", {}, classify=self._classify) as b:
            await self._pace(b)
            positions = await self.__broker.positions()
            b.result = {
                "positions": [
                    {"symbol": p.symbol, "qty": p.quantity, "avg_cost": p.avg_cost}
                    for p in positions
                ]
            }
        return positions

    async def quotes(self, symbols: Sequence[str]) -> tuple[Quote, ...]:
        """Bracketed ``quotes`` (intent: symbols; result: one row per quote)."""
        wanted = list(symbols)
        async with self._log.bracket(
            "quotes", {"symbols": wanted}, classify=self._classify
        ) as b:
            await self._pace(b)
            quotes = await self.__broker.quotes(wanted)
            b.result = {
                "quotes": [
                    {
                        "symbol": q.symbol,
                        "bid": q.bid,
                        "ask": q.ask,
                        "last": q.last,
                        "timestamp": q.timestamp,
                        "data_type": q.data_type,
                    }
                    for q in quotes
                ]
            }
        return quotes

    async def open_orders(self) -> tuple[OrderSnapshot, ...]:
        """Bracketed ``open_orders`` (result: ``orders``)."""
        async with self._log.bracket("open_orders", {}, classify=self._classify) as b:
            await self._pace(b)
            orders = await self.__broker.open_orders()
            b.result = {"orders": [_snapshot_row(o) for o in orders]}
        return orders

    async def completed_orders(self, since: datetime) -> tuple[OrderSnapshot, ...]:
        """Bracketed ``completed_orders`` (intent: since; result: ``orders``)."""
        async with self._log.bracket(
            "completed_orders", {"since": since}, classify=self._classify
        ) as b:
            await self._pace(b)
            orders = await self.__broker.completed_orders(since)
            b.result = {"orders": [_snapshot_row(o) for o in orders]}
        return orders

    async def executions(self, since: datetime) -> tuple[Execution, ...]:
        """Bracketed ``executions`` (intent: since; result: ``executions``)."""
        async with self._log.bracket(
            "executions", {"since": since}, classify=self._classify
        ) as b:
            await self._pace(b)
            fills = await self.__broker.executions(since)
            b.result = {"executions": [_execution_row(e) for e in fills]}
        return fills

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        """The broker's update stream, passed through (reading it changes no broker state)."""
        return self.__broker.order_updates()

    # -- state changes ----------------------------------------------------------------------

    async def place_order(
        self, request: OrderRequest, *, action: str | None = None, paced: bool = False
    ) -> OrderAck:
        """Bracketed ``place_order``: ``order_intent`` → ``order_submitted`` / ``order_failed``.

        ``action`` (``BUY``/``SELL``/``SELL SHORT``/``BUY COVER``) is recorded when given.
        ``paced=True`` says the caller already took this request's pacing token, so that a
        deadline it puts around this call measures the broker alone, never the pacing queue.
        """
        intent: dict[str, Any] = {
            "client_order_id": request.client_order_id,
            "symbol": request.symbol,
            "side": request.side,
            "shares": request.quantity,
            "limit": request.limit_price,
            "time_in_force": request.time_in_force,
            "account": request.account_id,
        }
        if action is not None:
            intent["action"] = action
        async with self._log.bracket("place_order", intent, classify=self._classify) as b:
            if not paced:
                await self._pace(b)
            ack = await self.__broker.place_order(request)
            b.result = {"order_id": ack.order_id, "perm_id": ack.perm_id, "status": ack.status}
        return ack

    async def cancel_order(
        self, order_id: int, *, client_order_id: str, symbol: str, reason: str
    ) -> None:
        """Bracketed ``cancel_order``: ``cancel_intent`` → ``cancel_result``."""
        intent: Mapping[str, Any] = {
            "order_id": order_id,
            "client_order_id": client_order_id,
            "symbol": symbol,
            "reason": reason,
        }
        async with self._log.bracket("cancel_order", intent, classify=self._classify) as b:
            await self._pace(b)
            await self.__broker.cancel_order(order_id)
            b.result = {"status": "cancel_requested"}


def _snapshot_row(o: OrderSnapshot) -> dict[str, Any]:
    return {
        "client_order_id": o.client_order_id,
        "order_id": o.order_id,
        "perm_id": o.perm_id,
        "client_id": o.client_id,
        "symbol": o.symbol,
        "side": o.side,
        "shares": o.quantity,
        "limit": o.limit_price,
        "status": o.status,
        "filled": o.filled,
        "remaining": o.remaining,
        "avg_fill_price": o.avg_fill_price,
        "updated_at": o.updated_at,
    }


def _execution_row(e: Execution) -> dict[str, Any]:
    return {
        "exec_id": e.exec_id,
        "client_order_id": e.client_order_id,
        "order_id": e.order_id,
        "perm_id": e.perm_id,
        "symbol": e.symbol,
        "side": e.side,
        "shares": e.quantity,
        "price": e.price,
        "time": e.time,
        "commission": e.commission,
    }
