"""The simulated exchange: pure operations on a ``SimState`` at a given instant.

No I/O and no clock: the caller passes ``now_us``. Rules:

1. ``advance(state, now)`` materialises everything that happened up to ``now``: each working
   order's scheduled fill chunks, in time order. A chunk becomes due at placement time plus its
   seeded delay and fills at the first instant at or after that when the order is marketable
   (buy limit >= ask, sell limit <= bid), at the touch, so never worse than the limit.
2. A cancel takes effect ``cancel_delay`` after it is accepted; chunks due strictly before that
   instant still fill.
3. The schedule of an order is fixed at placement from (seed, perm id), so the same calls at the
   same times give the same fills whichever process materialises them, and whenever.
4. Every change of an order appends one ``SimEvent`` (a new execution carries its exec id).
   Events of all orders are materialised in time order (ties by perm id), so how often and
   when anyone looked does not change the outcome.
5. No session: DAY orders do not expire; an unmarketable order rests until it is cancelled or
   the quote moves (only with ``drift_bps`` > 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from brokers.sim.market import CENT, US_PER_MS, book, draw_int, fill_price, marketable, next_move
from brokers.sim.state import SimEvent, SimExecution, SimHolding, SimOrder, SimState
from brokers.types import OrderStatus, Side

if TYPE_CHECKING:
    from brokers.sim.settings import SimFaults, SimSettings
    from brokers.types import OrderRequest

MAX_SCAN_STEPS = 20_000
"""Quote intervals examined per order per advance; the scan resumes next time."""

# IB-like reject codes and texts.
CODE_NO_SECURITY = 200
CODE_REJECTED = 201
CODE_PRICE_BAND = 163
CODE_TICK = 110
CODE_ZERO_SIZE = 434
CODE_ACCOUNT = 321
CODE_CANCEL_NOT_FOUND = 10147
CODE_CANCEL_NOT_CANCELLABLE = 10148


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOutcome:
    """What a cancel request got: accepted, or refused with a code and text."""

    accepted: bool
    code: int = 0
    message: str = ""


def advance(state: SimState, now_us: int) -> bool:
    """Materialise fills and cancels up to ``now_us``, across all orders in time order (ties by
    perm id), so the result does not depend on how often anyone looked. True when anything
    changed."""
    pending: dict[int, tuple[int, int]] = {}
    by_perm: dict[int, SimOrder] = {}
    for order in state.orders:
        if not order.status.is_terminal:
            by_perm[order.perm_id] = order
            due = _next_event(state, order, now_us)
            if due is not None:
                pending[order.perm_id] = due
    changed = False
    while pending:
        perm_id = min(pending, key=lambda p: (pending[p][0], p))
        when, _kind = pending.pop(perm_id)
        order = by_perm[perm_id]
        _apply_event(state, order, when)
        changed = True
        if not order.status.is_terminal:
            due = _next_event(state, order, now_us)
            if due is not None:
                pending[perm_id] = due
    return changed


def place(
    state: SimState,
    request: OrderRequest,
    *,
    client_id: int,
    now_us: int,
    settings: SimSettings,
) -> SimOrder:
    """Record an order that reached the exchange: working, or rejected with a code."""
    key = request.client_order_id
    state.submissions[key] = state.submissions.get(key, 0) + 1
    perm_id = state.next_perm_id
    state.next_perm_id += 1
    order_id = state.next_order_ids.get(client_id, 1)
    state.next_order_ids[client_id] = order_id + 1
    order = SimOrder(
        perm_id=perm_id,
        order_id=order_id,
        client_id=client_id,
        client_order_id=request.client_order_id,
        account_id=request.account_id,
        symbol=request.symbol,
        side=request.side,
        quantity=request.quantity,
        limit_price=request.limit_price,
        time_in_force=request.time_in_force.value,
        status=OrderStatus.WORKING,
        placed_us=now_us,
        updated_us=now_us,
        scan_us=now_us,
    )
    refusal = _validate(state, request, settings.faults, now_us)
    state.orders.append(order)
    if refusal is not None:
        order.status = OrderStatus.REJECTED
        order.reject_code, order.message = refusal
        _emit(state, order, now_us, message=f"[{refusal[0]}] {refusal[1]}")
        return order
    order.schedule = _schedule(state.market.seed, perm_id, request.quantity, settings)
    _emit(state, order, now_us)
    return order


def cancel(
    state: SimState,
    order_id: int,
    *,
    client_id: int,
    now_us: int,
    cancel_delay_us: int,
    faults: SimFaults,
) -> CancelOutcome:
    """Request the cancellation of one of ``client_id``'s orders (IB scoping)."""
    order = next(
        (o for o in state.orders if o.order_id == order_id and o.client_id == client_id), None
    )
    if order is None:
        return CancelOutcome(
            accepted=False,
            code=CODE_CANCEL_NOT_FOUND,
            message=f"OrderId {order_id} that needs to be cancelled is not found for client "
            f"{client_id}",
        )
    if order.status.is_terminal:
        return _not_cancellable(order)
    if faults.cancel_races_fill:
        if faults.cancel_race_accepts:
            order.status = OrderStatus.PENDING_CANCEL
            order.updated_us = now_us
            _emit(state, order, now_us, message="cancel requested")
        top = book(state.market, order.symbol, now_us)
        price = (
            fill_price(order.side, top)
            if marketable(order.side, order.limit_price, top)
            else order.limit_price
        )
        _fill(state, order, order.remaining, price, now_us)
        if faults.cancel_race_accepts:
            return CancelOutcome(accepted=True)
        return _not_cancellable(order)
    if order.status is OrderStatus.PENDING_CANCEL:
        return CancelOutcome(accepted=True)
    order.status = OrderStatus.PENDING_CANCEL
    order.cancel_us = now_us + cancel_delay_us
    order.updated_us = now_us
    _emit(state, order, now_us, message="cancel requested")
    advance(state, now_us)
    return CancelOutcome(accepted=True)


def _not_cancellable(order: SimOrder) -> CancelOutcome:
    state_name = {
        OrderStatus.FILLED: "Filled",
        OrderStatus.CANCELLED: "Cancelled",
        OrderStatus.REJECTED: "Inactive",
    }.get(order.status, order.status.value)
    return CancelOutcome(
        accepted=False,
        code=CODE_CANCEL_NOT_CANCELLABLE,
        message=f"OrderId {order.order_id} that needs to be cancelled cannot be cancelled, "
        f"state: {state_name}.",
    )


def reserved(state: SimState) -> tuple[Decimal, dict[str, int]]:
    """Cash held by working buys (at their limits) and shares held by working sells."""
    cash = Decimal(0)
    shares: dict[str, int] = {}
    for o in state.orders:
        if o.status.is_terminal:
            continue
        if o.side is Side.BUY:
            cash += o.remaining * o.limit_price
        else:
            shares[o.symbol] = shares.get(o.symbol, 0) + o.remaining
    return cash, shares


def _validate(
    state: SimState, request: OrderRequest, faults: SimFaults, now_us: int
) -> tuple[int, str] | None:
    if request.account_id != state.account_id:
        return CODE_ACCOUNT, f"Error validating request: unknown account {request.account_id!r}"
    if request.quantity <= 0:
        return CODE_ZERO_SIZE, "The order size must be positive."
    if request.symbol not in state.market.listings:
        return CODE_NO_SECURITY, f"No security definition has been found for {request.symbol!r}"
    limit = request.limit_price
    if limit <= 0 or limit != limit.quantize(CENT):
        return CODE_TICK, f"The price {limit} does not conform to the minimum price variation"
    if request.symbol in faults.reject_symbols:
        return CODE_REJECTED, f"Order rejected - reason: simulated rejection of {request.symbol}"
    if faults.price_band_pct > 0:
        mid = book(state.market, request.symbol, now_us).mid
        if abs(limit - mid) * 100 > mid * faults.price_band_pct:
            return CODE_PRICE_BAND, (
                f"The price {limit} is more than {faults.price_band_pct}% away from the "
                f"market ({mid})"
            )
    if faults.check_buying_power:
        held_cash, held_shares = reserved(state)
        if request.side is Side.BUY:
            free = state.cash - held_cash
            if request.quantity * limit > free:
                return CODE_REJECTED, (
                    f"Order rejected - reason: insufficient buying power "
                    f"(needs {request.quantity * limit}, free {free})"
                )
        else:
            held = state.holdings.get(request.symbol)
            free_shares = (held.quantity if held else 0) - held_shares.get(request.symbol, 0)
            if request.quantity > free_shares:
                return CODE_REJECTED, (
                    f"Order rejected - reason: insufficient position to sell "
                    f"({request.quantity} > {free_shares} free shares)"
                )
    return None


def _schedule(
    seed: int, perm_id: int, quantity: int, settings: SimSettings
) -> list[tuple[int, int]]:
    chunks = draw_int(seed, 1, max(1, min(settings.partial_fills, quantity)), "chunks", perm_id)
    delays = sorted(
        draw_int(seed, settings.fill_delay_ms_min, settings.fill_delay_ms_max, "delay", perm_id, i)
        for i in range(chunks)
    )
    base, extra = divmod(quantity, chunks)
    return [(d * US_PER_MS, base + (1 if i < extra else 0)) for i, d in enumerate(delays)]


_FILL, _CANCEL = 0, 1


def _next_event(state: SimState, order: SimOrder, now_us: int) -> tuple[int, int] | None:
    """The order's next fill or cancel at or before ``now_us``: (time, kind), or ``None``."""
    market = state.market
    if order.next_chunk < len(order.schedule):
        due = order.placed_us + order.schedule[order.next_chunk][0]
        start = max(order.scan_us, due)
        horizon = now_us if order.cancel_us is None else min(now_us, order.cancel_us - 1)
        t = start
        for _ in range(MAX_SCAN_STEPS):
            if t > horizon:
                break
            if marketable(order.side, order.limit_price, book(market, order.symbol, t)):
                return t, _FILL
            t = next_move(market, t) if market.drift_bps else horizon + 1
        if t > start:
            order.scan_us = t  # nothing before t can fill this chunk: skip it next time
        if t <= horizon:
            # Scan budget spent before the horizon: a fill may still come before the cancel,
            # so the cancel waits until a later call has scanned up to it (same outcome
            # however often the state is looked at).
            return None
    if order.cancel_us is not None and order.cancel_us <= now_us:
        return order.cancel_us, _CANCEL
    return None


def _apply_event(state: SimState, order: SimOrder, when: int) -> None:
    if order.cancel_us is not None and when >= order.cancel_us:
        order.status = OrderStatus.CANCELLED
        order.updated_us = when
        _emit(state, order, when, message="cancelled")
        return
    shares = order.schedule[order.next_chunk][1]
    price = fill_price(order.side, book(state.market, order.symbol, when))
    _fill(state, order, shares, price, when)


def _fill(state: SimState, order: SimOrder, shares: int, price: Decimal, t_us: int) -> None:
    if shares <= 0:
        return
    index = sum(1 for e in state.executions if e.perm_id == order.perm_id) + 1
    commission = max(state.commission_min, state.commission_per_share * shares).quantize(CENT)
    execution = SimExecution(
        exec_id=f"sim.{order.perm_id:08d}.{index:02d}",
        perm_id=order.perm_id,
        quantity=shares,
        price=price,
        time_us=t_us,
        commission=commission,
    )
    state.executions.append(execution)
    order.filled += shares
    order.notional += shares * price
    order.next_chunk += 1
    order.scan_us = t_us
    order.updated_us = t_us
    if order.filled >= order.quantity:
        order.status = OrderStatus.FILLED
        order.next_chunk = len(order.schedule)
    signed = shares if order.side is Side.BUY else -shares
    state.cash -= signed * price + commission
    _apply_to_holding(state, order.symbol, signed, price)
    _emit(state, order, t_us, exec_id=execution.exec_id)


def _apply_to_holding(state: SimState, symbol: str, signed: int, price: Decimal) -> None:
    held = state.holdings.get(symbol) or SimHolding(quantity=0, avg_cost=Decimal(0))
    old, new = held.quantity, held.quantity + signed
    if new == 0:
        state.holdings.pop(symbol, None)
        return
    if old == 0 or (old > 0) == (signed > 0):
        avg = (abs(old) * held.avg_cost + abs(signed) * price) / abs(new)
    elif (old > 0) != (new > 0):
        avg = price
    else:
        avg = held.avg_cost
    state.holdings[symbol] = SimHolding(quantity=new, avg_cost=avg.quantize(Decimal("0.0001")))


def _emit(
    state: SimState, order: SimOrder, t_us: int, *, exec_id: str | None = None, message: str = ""
) -> None:
    state.events.append(
        SimEvent(
            seq=state.last_seq + 1,
            perm_id=order.perm_id,
            client_id=order.client_id,
            time_us=t_us,
            status=order.status,
            filled=order.filled,
            remaining=order.remaining,
            avg_fill_price=order.avg_fill_price,
            exec_id=exec_id,
            message=message,
        )
    )
