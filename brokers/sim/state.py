"""The simulated broker's shared state and its JSON form (the state file).

Mutable records, changed only inside one locked transaction (``brokers.sim.store``) by the
functions of ``brokers.sim.engine``. Times are integer microseconds since the Unix epoch in
memory and RFC 3339 UTC strings on disk; money is ``Decimal`` in memory and decimal strings on
disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from brokers.errors import BrokerProtocolError
from brokers.sim.market import Listing, Market
from brokers.types import OrderStatus, Side

FORMAT_VERSION = 1


def to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: the simulated broker works in aware UTC times")
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(t_us: int) -> datetime:
    """The aware UTC datetime of a microsecond count."""
    seconds, micros = divmod(t_us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def fmt_ts(t_us: int) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``."""
    d = from_us(t_us)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{d.microsecond:06d}Z"
    )


def parse_ts(text: str) -> int:
    """Inverse of ``fmt_ts`` (any RFC 3339 time with an offset is accepted)."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"time without a timezone: {text!r}")
    return to_us(when)


@dataclass(slots=True, kw_only=True)
class SimOrder:
    """One order at the simulated exchange, with its fill schedule fixed at placement."""

    perm_id: int
    order_id: int
    client_id: int
    client_order_id: str
    account_id: str
    symbol: str
    side: Side
    quantity: int
    limit_price: Decimal
    time_in_force: str
    status: OrderStatus
    placed_us: int
    updated_us: int
    schedule: list[tuple[int, int]] = field(default_factory=list)
    """(delay in µs after placement, shares) of each fill, in time order."""
    next_chunk: int = 0
    scan_us: int = 0
    """No instant before this can fill the next chunk (an optimisation only)."""
    cancel_us: int | None = None
    filled: int = 0
    notional: Decimal = Decimal(0)
    reject_code: int = 0
    message: str = ""

    @property
    def remaining(self) -> int:
        """Shares not filled (zero once terminal without fill is irrelevant: quantity - filled)."""
        return self.quantity - self.filled

    @property
    def avg_fill_price(self) -> Decimal | None:
        """Average execution price, or ``None`` before the first fill."""
        if not self.filled:
            return None
        return (self.notional / self.filled).quantize(Decimal("0.0001"))


@dataclass(slots=True, kw_only=True)
class SimExecution:
    """One fill."""

    exec_id: str
    perm_id: int
    quantity: int
    price: Decimal
    time_us: int
    commission: Decimal


@dataclass(slots=True, kw_only=True)
class SimEvent:
    """One change of an order, in the order the simulation produced it (``seq``)."""

    seq: int
    perm_id: int
    client_id: int
    time_us: int
    status: OrderStatus
    filled: int
    remaining: int
    avg_fill_price: Decimal | None
    exec_id: str | None = None
    message: str = ""


@dataclass(slots=True, kw_only=True)
class SimHolding:
    """A position: shares (negative = short) and average cost."""

    quantity: int
    avg_cost: Decimal


@dataclass(slots=True, kw_only=True)
class SimState:
    """Everything the simulated broker knows; one JSON document on disk."""

    account_id: str
    currency: str
    created_us: int
    clock_us: int
    market: Market
    commission_per_share: Decimal
    commission_min: Decimal
    cash: Decimal
    holdings: dict[str, SimHolding]
    orders: list[SimOrder] = field(default_factory=list)
    executions: list[SimExecution] = field(default_factory=list)
    events: list[SimEvent] = field(default_factory=list)
    submissions: dict[str, int] = field(default_factory=dict)
    next_perm_id: int = 100_001
    next_order_ids: dict[int, int] = field(default_factory=dict)

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event (0 when none)."""
        return self.events[-1].seq if self.events else 0


def dump_state(state: SimState) -> bytes:
    """The canonical JSON bytes of a state."""
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "account_id": state.account_id,
        "currency": state.currency,
        "created_at": fmt_ts(state.created_us),
        "clock": fmt_ts(state.clock_us),
        "market": {
            "seed": state.market.seed,
            "drift_bps": state.market.drift_bps,
            "drift_interval_ms": state.market.drift_interval_us // 1000,
            "listings": {
                s: {"price": str(x.price), "spread_bps": x.spread_bps}
                for s, x in sorted(state.market.listings.items())
            },
        },
        "commission_per_share": str(state.commission_per_share),
        "commission_min": str(state.commission_min),
        "cash": str(state.cash),
        "holdings": {
            s: {"quantity": h.quantity, "avg_cost": str(h.avg_cost)}
            for s, h in sorted(state.holdings.items())
        },
        "orders": [_dump_order(o) for o in state.orders],
        "executions": [
            {
                "exec_id": e.exec_id,
                "perm_id": e.perm_id,
                "quantity": e.quantity,
                "price": str(e.price),
                "time": fmt_ts(e.time_us),
                "commission": str(e.commission),
            }
            for e in state.executions
        ],
        "events": [
            {
                "seq": ev.seq,
                "perm_id": ev.perm_id,
                "client_id": ev.client_id,
                "time": fmt_ts(ev.time_us),
                "status": ev.status.value,
                "filled": ev.filled,
                "remaining": ev.remaining,
                "avg_fill_price": None if ev.avg_fill_price is None else str(ev.avg_fill_price),
                "exec_id": ev.exec_id,
                "message": ev.message,
            }
            for ev in state.events
        ],
        "submissions": dict(sorted(state.submissions.items())),
        "next_perm_id": state.next_perm_id,
        "next_order_ids": {str(k): v for k, v in sorted(state.next_order_ids.items())},
    }
    # Compact on purpose: the C encoder is used only without indentation (pretty-print the
    # file with ``python -m json.tool`` to read it).
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def _dump_order(o: SimOrder) -> dict[str, Any]:
    return {
        "perm_id": o.perm_id,
        "order_id": o.order_id,
        "client_id": o.client_id,
        "client_order_id": o.client_order_id,
        "account_id": o.account_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "quantity": o.quantity,
        "limit_price": str(o.limit_price),
        "time_in_force": o.time_in_force,
        "status": o.status.value,
        "placed_at": fmt_ts(o.placed_us),
        "updated_at": fmt_ts(o.updated_us),
        "schedule_ms": [[delay // 1000, shares] for delay, shares in o.schedule],
        "next_chunk": o.next_chunk,
        "scan_at": fmt_ts(o.scan_us),
        "cancel_at": None if o.cancel_us is None else fmt_ts(o.cancel_us),
        "filled": o.filled,
        "notional": str(o.notional),
        "reject_code": o.reject_code,
        "message": o.message,
    }


def load_state(raw: bytes, *, source: str) -> SimState:
    """Parse a state file; ``BrokerProtocolError`` naming the file when it cannot be read."""
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise TypeError(f"the document is a {type(doc).__name__}, not an object")
        if doc.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported format {doc.get('format')!r}")
        market = doc["market"]
        state = SimState(
            account_id=str(doc["account_id"]),
            currency=str(doc["currency"]),
            created_us=parse_ts(doc["created_at"]),
            clock_us=parse_ts(doc["clock"]),
            market=Market(
                seed=int(market["seed"]),
                drift_bps=int(market["drift_bps"]),
                drift_interval_us=int(market["drift_interval_ms"]) * 1000,
                listings={
                    s: Listing(price=Decimal(x["price"]), spread_bps=int(x["spread_bps"]))
                    for s, x in market["listings"].items()
                },
            ),
            commission_per_share=Decimal(doc["commission_per_share"]),
            commission_min=Decimal(doc["commission_min"]),
            cash=Decimal(doc["cash"]),
            holdings={
                s: SimHolding(quantity=int(h["quantity"]), avg_cost=Decimal(h["avg_cost"]))
                for s, h in doc["holdings"].items()
            },
            orders=[_load_order(o) for o in doc["orders"]],
            executions=[
                SimExecution(
                    exec_id=e["exec_id"],
                    perm_id=int(e["perm_id"]),
                    quantity=int(e["quantity"]),
                    price=Decimal(e["price"]),
                    time_us=parse_ts(e["time"]),
                    commission=Decimal(e["commission"]),
                )
                for e in doc["executions"]
            ],
            events=[
                SimEvent(
                    seq=int(ev["seq"]),
                    perm_id=int(ev["perm_id"]),
                    client_id=int(ev["client_id"]),
                    time_us=parse_ts(ev["time"]),
                    status=OrderStatus(ev["status"]),
                    filled=int(ev["filled"]),
                    remaining=int(ev["remaining"]),
                    avg_fill_price=None
                    if ev["avg_fill_price"] is None
                    else Decimal(ev["avg_fill_price"]),
                    exec_id=ev["exec_id"],
                    message=str(ev["message"]),
                )
                for ev in doc["events"]
            ],
            submissions={str(k): int(v) for k, v in doc["submissions"].items()},
            next_perm_id=int(doc["next_perm_id"]),
            next_order_ids={int(k): int(v) for k, v in doc["next_order_ids"].items()},
        )
    except (ValueError, KeyError, TypeError, ArithmeticError, AttributeError) as exc:
        raise BrokerProtocolError(
            f"simulated broker state file {source} is damaged: {exc}"
        ) from None
    _check_ranges(state, source)
    return state


def _check_ranges(state: SimState, source: str) -> None:
    """Values that parse but cannot be used later (a zero interval divides by zero)."""
    market = state.market
    problems = []
    if market.drift_interval_us <= 0:
        problems.append("market.drift_interval_ms must be positive")
    if market.drift_bps < 0:
        problems.append("market.drift_bps must not be negative")
    problems += [f"listing {s}: price must be positive and finite"
                 for s, x in market.listings.items() if not (x.price.is_finite() and x.price > 0)]
    if not state.cash.is_finite():
        problems.append("cash must be finite")
    if problems:
        raise BrokerProtocolError(
            f"simulated broker state file {source} is damaged: {'; '.join(problems)}"
        )


def _load_order(o: dict[str, Any]) -> SimOrder:
    return SimOrder(
        perm_id=int(o["perm_id"]),
        order_id=int(o["order_id"]),
        client_id=int(o["client_id"]),
        client_order_id=str(o["client_order_id"]),
        account_id=str(o["account_id"]),
        symbol=str(o["symbol"]),
        side=Side(o["side"]),
        quantity=int(o["quantity"]),
        limit_price=Decimal(o["limit_price"]),
        time_in_force=str(o["time_in_force"]),
        status=OrderStatus(o["status"]),
        placed_us=parse_ts(o["placed_at"]),
        updated_us=parse_ts(o["updated_at"]),
        schedule=[(int(d) * 1000, int(q)) for d, q in o["schedule_ms"]],
        next_chunk=int(o["next_chunk"]),
        scan_us=parse_ts(o["scan_at"]),
        cancel_us=None if o["cancel_at"] is None else parse_ts(o["cancel_at"]),
        filled=int(o["filled"]),
        notional=Decimal(o["notional"]),
        reject_code=int(o["reject_code"]),
        message=str(o["message"]),
    )
