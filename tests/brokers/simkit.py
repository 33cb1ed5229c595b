"""Helpers shared by the simulated-broker tests (imported as ``simkit``)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokers.sim import ManualClock, SimBroker
from brokers.sim.settings import SimFaults, SimSettings
from brokers.types import OrderRequest, Side

ACCOUNT = "DEMO1"


def settings(state_file: Path, *, faults: dict[str, Any] | None = None, **kw: Any) -> SimSettings:
    """Sim settings on ``state_file`` with some fields and fault switches changed."""
    base = SimSettings(state_file=state_file, **kw)
    return replace(base, faults=SimFaults(**(faults or {})))


def broker(
    cfg: SimSettings, clock: ManualClock, *, client_id: int = 1, **kw: Any
) -> SimBroker:
    """A simulated broker of ``client_id`` on the manual clock, polling fast."""
    kw.setdefault("poll_interval", 0.002)
    return SimBroker(cfg, account_id=ACCOUNT, client_id=client_id, clock=clock, **kw)


def order(
    coid: str,
    symbol: str = "AAPL",
    *,
    side: Side = Side.BUY,
    quantity: int = 10,
    limit: str | Decimal = "200.00",
) -> OrderRequest:
    """A limit order request for the demo account."""
    return OrderRequest(
        client_order_id=coid,
        account_id=ACCOUNT,
        symbol=symbol,
        side=side,
        quantity=quantity,
        limit_price=Decimal(limit),
    )
