"""Frozen value types of the pure core: the target, the plan (diff output) and the risk report.

Broker-facing values (positions, quotes, orders) live in ``brokers.types``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from brokers.types import Side

CLIENT_ORDER_PREFIX = "rb1-"
"""Every ``client_order_id`` (IB ``orderRef``) this program sends starts with this prefix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetWeight:
    """One target line: a fraction of net liquidation (negative = short)."""

    symbol: str
    weight: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetConstraints:
    """Per-target limits; each may only tighten the config's ``[risk]`` value."""

    max_position_pct: Decimal | None = None
    max_leverage: Decimal | None = None
    min_trade_usd: Decimal | None = None
    max_trade_usd: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A validated target file."""

    targets: tuple[TargetWeight, ...]
    metadata_id: str | None
    constraints: TargetConstraints
    timestamp: datetime | None
    window_id: str
    """Hex SHA-256 of the canonical target content and scope: the rebalance window's identity."""
    source: Path | None = None


class OrderAction(StrEnum):
    """What an order does to the position (the ancestor's vocabulary, kept for the audit log)."""

    BUY = "BUY"
    SELL = "SELL"
    SELL_SHORT = "SELL SHORT"
    BUY_COVER = "BUY COVER"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedOrder:
    """One order of the plan, in integer shares and ``Decimal`` dollars."""

    client_order_id: str
    symbol: str
    side: Side
    action: OrderAction
    quantity: int
    limit_price: Decimal
    reference_price: Decimal
    """The price the diff sized the order with (mid of the book)."""
    notional: Decimal
    """``quantity × limit_price``."""
    current_quantity: int
    target_quantity: int
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedTrade:
    """A trade the diff did not turn into an order, and why."""

    symbol: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The diff's output: sells before buys, then the trades it left out."""

    orders: tuple[PlannedOrder, ...]
    skipped: tuple[SkippedTrade, ...] = ()


class CheckStatus(StrEnum):
    """Outcome of one risk check. Only FAIL blocks the run."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskCheck:
    """One risk check with a human-readable detail."""

    name: str
    status: CheckStatus
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskReport:
    """Every check that ran, in order."""

    checks: tuple[RiskCheck, ...]

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(c.status is not CheckStatus.FAIL for c in self.checks)
