"""Settings of the simulated broker: the ``[broker.sim]`` table of the config.

Each field carries its own limits; ``rebalancer.config`` parses the table strictly from these
dataclasses, so a new knob is added here and nowhere else. Every key has a default, so an empty
``[broker.sim]`` table gives the demo account and the demo quote universe
(``brokers.sim.defaults``).

Settings that shape the shared market (seed, universe, drift, starting account) are copied into
the state file when it is created; later processes read them from the file, so every process
sees one market even if their configs differ. Fill schedules are fixed per order at placement.
Fault switches act on the process that has them switched on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from brokers.sim.defaults import DEMO_HOLDINGS, DEMO_STARTING_CASH, DEMO_UNIVERSE
from rebalancer._tomlschema import setting


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSymbol:
    """One symbol of the simulated quote universe: its base mid price and its spread."""

    price: Decimal = setting(lo=0, lo_open=True)
    spread_bps: int = setting(4, lo=0, hi=10_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimPosition:
    """A starting position of the demo account."""

    symbol: str = setting(lo=1)
    quantity: int = setting()
    avg_cost: Decimal = setting(lo=0)


DEMO_POSITIONS: tuple[SimPosition, ...] = tuple(
    SimPosition(symbol=symbol, quantity=quantity, avg_cost=avg_cost)
    for symbol, quantity, avg_cost in DEMO_HOLDINGS
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimFaults:
    """Fault switches (``[broker.sim.faults]``). All off by default; each acts on the process
    whose config sets it (the market and the orders are shared, the faults are not).

    Codes follow IB: 200 no security definition, 201 order rejected, 163 price outside the
    percentage band, 110 price not a whole number of cents, 10147 cancel target not found for
    this client, 10148 order not cancellable (its state is in the text).
    """

    ack_latency_ms: int = setting(
        0, lo=0, hi=60_000, doc="place_order records the order, then waits this long to return"
    )
    """A caller that gives up during the wait does not know the outcome; the order works."""
    reject_symbols: tuple[str, ...] = ()
    """Orders in these symbols are refused (code 201) and recorded as REJECTED orders."""
    check_buying_power: bool = False
    """Refuse buys beyond free cash (cash minus working buys at their limits) and sells beyond
    the free position (held shares minus working sells), with code 201."""
    disconnect_at_request: int = setting(0, lo=0, doc="0 = never; n = the n-th request fails")
    """Requests are counted per ``SimBroker`` object from its construction (connect, close and
    update polls are not requests). The n-th raises ``BrokerUnavailable`` without reaching the
    broker; every call then fails the same way, and the update stream raises, until
    ``connect()`` is called again. It fires once."""
    lose_ack_for_symbols: tuple[str, ...] = ()
    """Orders in these symbols reach the market and work normally, but ``place_order`` raises
    ``OutcomeUnknown``; ``brokers.lookup.find_order`` finds them."""
    duplicate_callbacks: bool = False
    """``order_updates`` yields every status and fill update twice in a row."""
    cancel_races_fill: bool = False
    """A cancel of a working order finds it filled: the rest fills at once (at the touch when
    marketable, else at the limit) and the cancel is refused (code 10148, "state: Filled")."""
    cancel_race_accepts: bool = False
    """With ``cancel_races_fill``: the cancel is accepted (PENDING_CANCEL), yet the order ends
    FILLED."""
    stale_quote_symbols: tuple[str, ...] = ()
    """Quotes of these symbols carry a timestamp ``stale_quote_age_secs`` old."""
    stale_quote_age_secs: int = setting(3600, lo=1)
    delayed_quote_symbols: tuple[str, ...] = ()
    """Quotes of these symbols are marked ``MarketDataType.DELAYED``."""
    no_bid_ask_symbols: tuple[str, ...] = ()
    """Quotes of these symbols have no bid and no ask (only a last price)."""
    price_band_pct: Decimal = setting(
        Decimal("0"), lo=0, hi=100, doc="0 = no band; else limits farther from mid are refused"
    )
    """Limits more than this percentage away from the current mid are refused (code 163)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSettings:
    """The ``[broker.sim]`` table."""

    seed: int = setting(1, lo=0)
    state_file: Path = setting(Path("../var/sim/state.json"))
    starting_cash: Decimal = setting(DEMO_STARTING_CASH, lo=0)
    currency: str = setting("USD", lo=1)
    fill_delay_ms_min: int = setting(50, lo=0, hi=3_600_000)
    fill_delay_ms_max: int = setting(500, lo=0, hi=3_600_000)
    partial_fills: int = setting(
        1, lo=1, hi=100, doc="at most this many fills per order (the count is drawn per order)"
    )
    cancel_delay_ms: int = setting(
        0, lo=0, hi=3_600_000, doc="time from an accepted cancel to the order being cancelled"
    )
    drift_bps: int = setting(0, lo=0, hi=1000, doc="quotes wander within ± this around base")
    drift_interval_ms: int = setting(5000, lo=10, hi=86_400_000, doc="quotes move this often")
    commission_per_share: Decimal = setting(Decimal("0.0035"), lo=0, hi=10)
    commission_min: Decimal = setting(Decimal("0.35"), lo=0, hi=1000)
    exclusive_client_ids: bool = False
    """As at IB: a client id may be connected once at a time. A second ``connect`` with a
    client id in use raises ``BrokerUnavailable`` (code 326) until the first connection closes
    or its process dies."""
    builtin_universe: bool = True
    """Include the demo universe; ``symbols`` adds to it or overrides its entries."""
    symbols: dict[str, SimSymbol] = field(default_factory=dict)
    positions: tuple[SimPosition, ...] = DEMO_POSITIONS
    """Starting positions; defaults to the demo account. ``positions = []`` starts with none."""
    faults: SimFaults = field(default_factory=SimFaults)

    def universe(self) -> dict[str, SimSymbol]:
        """The quote universe this table describes (built-in demo symbols plus ``symbols``)."""
        merged: dict[str, SimSymbol] = {}
        if self.builtin_universe:
            for symbol, (price, spread) in DEMO_UNIVERSE.items():
                merged[symbol] = SimSymbol(price=price, spread_bps=spread)
        merged.update(self.symbols)
        return merged
