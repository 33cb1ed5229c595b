"""Find an order at the broker by our ``client_order_id`` (IB ``orderRef``).

Used whenever an order's fate is unknown (lost acknowledgement, crash, kill): the broker is the
authority. The search goes from the freshest source to the most durable one: open orders, then
completed orders, then executions. The order matters: an order that completes between the first
and the second query is still found by the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from brokers.types import Execution, OrderSnapshot, OrderStatus, Side

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime


class OrderSource(Protocol):
    """The part of a broker an order lookup needs (any ``Broker`` provides it)."""

    async def open_orders(self) -> tuple[OrderSnapshot, ...]:
        """Open orders of the account."""
        ...

    async def completed_orders(self, since: datetime) -> tuple[OrderSnapshot, ...]:
        """Orders that reached a terminal state at or after ``since``."""
        ...

    async def executions(self, since: datetime) -> tuple[Execution, ...]:
        """Fills at or after ``since``."""
        ...


class FoundIn(StrEnum):
    """Where the order was found."""

    OPEN = "open"
    COMPLETED = "completed"
    EXECUTIONS = "executions"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLookup:
    """The result of a successful lookup: the snapshot and where it came from.

    When found only in executions, the snapshot is rebuilt from the fills: the order is not
    open, so it is treated as terminal; ``quantity`` = ``filled`` = the executed shares,
    ``remaining`` = 0, ``status`` = FILLED, ``limit_price`` = the worst execution price,
    ``client_id`` = -1 (unknown). ``executions`` holds those fills.
    """

    snapshot: OrderSnapshot
    found_in: FoundIn
    executions: tuple[Execution, ...] = ()


async def lookup_order(
    broker: OrderSource, client_order_id: str, *, since: datetime
) -> OrderLookup | None:
    """Search open orders, completed orders, then executions; ``None`` when not found.

    When several orders carry the same ``client_order_id`` (IB does not enforce uniqueness), an
    open one wins, then the one with the highest permanent id. Broker errors propagate.
    """
    found = _newest(o for o in await broker.open_orders() if o.client_order_id == client_order_id)
    if found is not None:
        return OrderLookup(snapshot=found, found_in=FoundIn.OPEN)
    found = _newest(
        o for o in await broker.completed_orders(since) if o.client_order_id == client_order_id
    )
    if found is not None:
        return OrderLookup(snapshot=found, found_in=FoundIn.COMPLETED)
    fills = tuple(e for e in await broker.executions(since) if e.client_order_id == client_order_id)
    if not fills:
        return None
    perm_id = max(e.perm_id for e in fills)
    fills = tuple(e for e in fills if e.perm_id == perm_id)
    return OrderLookup(
        snapshot=_from_executions(fills), found_in=FoundIn.EXECUTIONS, executions=fills
    )


async def find_order(
    broker: OrderSource, client_order_id: str, *, since: datetime
) -> OrderSnapshot | None:
    """The broker's view of the order with this ``client_order_id``, or ``None``.

    See ``lookup_order`` for the search order and ``OrderLookup`` for a snapshot rebuilt from
    executions alone.
    """
    result = await lookup_order(broker, client_order_id, since=since)
    return None if result is None else result.snapshot


def _newest(candidates: Iterable[OrderSnapshot]) -> OrderSnapshot | None:
    orders = list(candidates)
    if not orders:
        return None
    return max(orders, key=lambda o: (not o.status.is_terminal, o.perm_id))


def _from_executions(fills: tuple[Execution, ...]) -> OrderSnapshot:
    first = fills[0]
    shares = sum(e.quantity for e in fills)
    notional = sum((e.quantity * e.price for e in fills), Decimal(0))
    prices = [e.price for e in fills]
    worst = max(prices) if first.side is Side.BUY else min(prices)
    return OrderSnapshot(
        client_order_id=first.client_order_id,
        order_id=first.order_id,
        perm_id=first.perm_id,
        client_id=-1,
        account_id=first.account_id,
        symbol=first.symbol,
        side=first.side,
        quantity=shares,
        limit_price=worst,
        status=OrderStatus.FILLED,
        filled=shares,
        remaining=0,
        avg_fill_price=(notional / shares).quantize(Decimal("0.0001")),
        updated_at=max(e.time for e in fills),
    )
