"""Frozen value types that cross the broker boundary.

Prices are ``Decimal`` dollars (never binary floats), quantities are integer shares, and every
timestamp is a timezone-aware UTC ``datetime``. These are the runtime's words, not any broker's:
each adapter translates its own vocabulary into them in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    """Direction of an order."""

    BUY = "BUY"
    SELL = "SELL"


class TimeInForce(StrEnum):
    """How long an order stays working."""

    DAY = "DAY"
    GTC = "GTC"


class MarketDataType(StrEnum):
    """Whether a quote is real-time. Anything but LIVE is unusable for trading decisions."""

    LIVE = "live"
    DELAYED = "delayed"
    FROZEN = "frozen"


class OrderStatus(StrEnum):
    """Order lifecycle as the runtime sees it.

    PENDING_SUBMIT: sent, not yet acknowledged; WORKING: acknowledged and resting (possibly
    partly filled); PENDING_CANCEL: a cancel was requested; FILLED, CANCELLED, REJECTED are
    terminal. A cancelled order may still carry fills (``filled > 0``).
    """

    PENDING_SUBMIT = "pending_submit"
    WORKING = "working"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        """True when no further fill or status change can happen."""
        return self in _TERMINAL


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSummary:
    """Headline numbers of one account, in its base currency."""

    account_id: str
    currency: str
    net_liquidation: Decimal
    cash: Decimal
    buying_power: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """A stock position in the configured account. ``quantity`` is negative for a short."""

    account_id: str
    symbol: str
    quantity: int
    avg_cost: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """Top of book for one symbol, stamped with the quote's own time (not the receipt time).

    Any price may be ``None`` when the broker has none; ``timestamp`` is ``None`` when the
    broker gave no time for the quote.
    """

    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    timestamp: datetime | None
    data_type: MarketDataType = MarketDataType.LIVE


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """A limit order to place. ``client_order_id`` is our key (IB ``orderRef``)."""

    client_order_id: str
    account_id: str
    symbol: str
    side: Side
    quantity: int
    limit_price: Decimal
    time_in_force: TimeInForce = TimeInForce.DAY


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAck:
    """The broker acknowledged an order: its order id (per client) and permanent id."""

    client_order_id: str
    order_id: int
    perm_id: int
    status: OrderStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSnapshot:
    """One order as the broker currently knows it (open or completed)."""

    client_order_id: str
    order_id: int
    perm_id: int
    client_id: int
    account_id: str
    symbol: str
    side: Side
    quantity: int
    limit_price: Decimal
    status: OrderStatus
    filled: int
    remaining: int
    avg_fill_price: Decimal | None
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One fill. ``exec_id`` is unique at the broker; a repeated report carries the same id."""

    exec_id: str
    client_order_id: str
    order_id: int
    perm_id: int
    account_id: str
    symbol: str
    side: Side
    quantity: int
    price: Decimal
    time: datetime
    commission: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdate:
    """A status change of an order, possibly carrying one new execution.

    ``filled``/``remaining`` are the broker's cumulative figures at the time of the update.
    Brokers may repeat updates (duplicate callbacks); consumers de-duplicate fills by
    ``execution.exec_id``.
    """

    client_order_id: str
    order_id: int
    perm_id: int
    status: OrderStatus
    filled: int
    remaining: int
    avg_fill_price: Decimal | None
    time: datetime
    execution: Execution | None = None
    message: str = ""
