"""Broker interface, value types and implementations (simulated broker, Interactive Brokers).

Nothing here imports the ``rebalancer`` package: brokers are a layer below the runtime.
"""

from brokers.base import Broker
from brokers.errors import (
    BrokerError,
    BrokerProtocolError,
    BrokerUnavailable,
    OrderRejected,
    OutcomeUnknown,
)
from brokers.types import (
    AccountSummary,
    Execution,
    MarketDataType,
    OrderAck,
    OrderRequest,
    OrderSnapshot,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    Side,
    TimeInForce,
)

__all__ = [
    "AccountSummary",
    "Broker",
    "BrokerError",
    "BrokerProtocolError",
    "BrokerUnavailable",
    "Execution",
    "MarketDataType",
    "OrderAck",
    "OrderRejected",
    "OrderRequest",
    "OrderSnapshot",
    "OrderStatus",
    "OrderUpdate",
    "OutcomeUnknown",
    "Position",
    "Quote",
    "Side",
    "TimeInForce",
]
