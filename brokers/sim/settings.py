"""Settings of the simulated broker: the ``[broker.sim]`` table of the config.

Each field carries its own limits; ``rebalancer.config`` parses the table strictly from these
dataclasses, so a new knob is added here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from rebalancer._tomlschema import setting


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSymbol:
    """One symbol of the simulated quote universe."""

    price: Decimal = setting(lo=0, lo_open=True)
    spread_bps: int = setting(10, lo=0, hi=10_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimPosition:
    """A starting position of the demo account."""

    symbol: str = setting(lo=1)
    quantity: int = setting()
    avg_cost: Decimal = setting(lo=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimFaults:
    """Fault switches. All off by default."""

    ack_latency_ms: int = setting(0, lo=0, hi=60_000)
    reject_symbols: tuple[str, ...] = ()
    disconnect_at_request: int = setting(0, lo=0, doc="0 = never; n = the n-th request fails")
    lose_ack_for_symbols: tuple[str, ...] = ()
    duplicate_callbacks: bool = False
    cancel_races_fill: bool = False
    stale_quote_symbols: tuple[str, ...] = ()
    stale_quote_age_secs: int = setting(3600, lo=1)
    delayed_quote_symbols: tuple[str, ...] = ()
    no_bid_ask_symbols: tuple[str, ...] = ()
    price_band_pct: Decimal = setting(Decimal("0"), lo=0, hi=100, doc="0 = no band")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSettings:
    """The ``[broker.sim]`` table."""

    seed: int = setting(1, lo=0)
    state_file: Path = setting(Path("../var/sim/state.json"))
    starting_cash: Decimal = setting(Decimal("250000"), lo=0)
    currency: str = setting("USD", lo=1)
    fill_delay_ms_min: int = setting(50, lo=0, hi=3_600_000)
    fill_delay_ms_max: int = setting(500, lo=0, hi=3_600_000)
    partial_fills: int = setting(1, lo=1, hi=100, doc="fills an order is split into")
    symbols: dict[str, SimSymbol] = field(default_factory=dict)
    positions: tuple[SimPosition, ...] = ()
    faults: SimFaults = field(default_factory=SimFaults)
