"""The broker contract: one set of async checks that every ``Broker`` implementation passes.

Run against the simulated broker in CI (``test_sim_contract.py``) and, later, against the
Interactive Brokers adapter (paper account or simulated gateway). A check talks to the broker
only through the ``Broker`` protocol; broker time is moved by the caller's ``advance`` (a
manual clock for the simulation, a real sleep for a live connection).

Import it as ``from broker_contract import check_broker`` from a test module in this directory.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import anyio

from brokers.base import Broker
from brokers.errors import OrderRejected
from brokers.lookup import find_order
from brokers.types import (
    Execution,
    OrderRequest,
    OrderSnapshot,
    OrderStatus,
    OrderUpdate,
    Side,
)

MakeBroker = Callable[[], Awaitable[Broker]]
Advance = Callable[[float], Awaitable[None]]

CENT = Decimal("0.01")
_counter = itertools.count(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractEnv:
    """What the checks need to know about the broker under test.

    ``make_broker`` returns a new, not yet connected broker of client id A;
    ``make_other_client`` (optional) one of another client id on the same account;
    ``advance(seconds)`` lets that much broker time pass; ``symbol`` is a liquid symbol the
    account may buy one share of; ``since`` bounds completed-order and execution queries.
    """

    make_broker: MakeBroker
    advance: Advance
    account_id: str
    make_other_client: MakeBroker | None = None
    symbol: str = "SPY"
    unknown_symbol: str = "ZZZQX"
    step_secs: float = 0.5
    max_wait_secs: float = 60.0
    update_timeout_secs: float = 10.0
    since: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    tag: str = "contract"


def new_client_order_id(env: ContractEnv) -> str:
    """A client order id unique within this process."""
    return f"{env.tag}-{datetime.now(UTC):%H%M%S%f}-{next(_counter)}"


async def check_broker(
    make_broker: MakeBroker,
    *,
    advance: Advance,
    account_id: str,
    make_other_client: MakeBroker,
    symbol: str = "SPY",
) -> None:
    """Run every contract check against one implementation.

    ``make_other_client`` is required: without a second client id the cancel-scoping rule
    could not be checked, and a check that silently passes is worse than none.
    """
    env = ContractEnv(
        make_broker=make_broker,
        advance=advance,
        account_id=account_id,
        make_other_client=make_other_client,
        symbol=symbol,
    )
    for check in ALL_CHECKS:
        await check(env)


async def _connected(env: ContractEnv, make: MakeBroker | None = None) -> Broker:
    broker = await (make or env.make_broker)()
    assert isinstance(broker, Broker), "the implementation does not satisfy the Broker protocol"
    await broker.connect()
    return broker


async def _wait_for(
    env: ContractEnv, probe: Callable[[], Awaitable[OrderSnapshot | None]]
) -> OrderSnapshot | None:
    """Advance broker time step by step until ``probe`` returns a terminal snapshot."""
    waited = 0.0
    last = await probe()
    while (last is None or not last.status.is_terminal) and waited < env.max_wait_secs:
        await env.advance(env.step_secs)
        waited += env.step_secs
        last = await probe()
    return last


async def check_connect_close(env: ContractEnv) -> None:
    """connect() then close() twice: closing is idempotent and never raises."""
    broker = await _connected(env)
    assert isinstance(broker.client_id, int)
    await broker.close()
    await broker.close()


async def check_account_and_positions(env: ContractEnv) -> None:
    """The summary and the positions belong to the configured account, in Decimal and int."""
    broker = await _connected(env)
    try:
        summary = await broker.account_summary()
        assert summary.account_id == env.account_id
        assert summary.currency
        for value in (summary.net_liquidation, summary.cash, summary.buying_power):
            assert isinstance(value, Decimal)
        assert summary.net_liquidation > 0
        positions = await broker.positions()
        symbols = [p.symbol for p in positions]
        assert len(symbols) == len(set(symbols)), "one position per symbol"
        for p in positions:
            assert p.account_id == env.account_id
            assert isinstance(p.quantity, int)
            assert p.quantity != 0
            assert isinstance(p.avg_cost, Decimal)
    finally:
        await broker.close()


async def check_quotes(env: ContractEnv) -> None:
    """Quotes come back one per symbol in the order asked; an unknown symbol has no prices."""
    broker = await _connected(env)
    try:
        asked = [env.unknown_symbol, env.symbol]
        quotes = await broker.quotes(asked)
        assert [q.symbol for q in quotes] == asked
        unknown, known = quotes
        assert unknown.bid is None
        assert unknown.ask is None
        assert known.bid is not None
        assert known.ask is not None
        assert isinstance(known.bid, Decimal)
        assert isinstance(known.ask, Decimal)
        assert 0 < known.bid <= known.ask
        assert known.timestamp is not None
        assert known.timestamp.utcoffset() is not None
    finally:
        await broker.close()


async def _refused(call: Awaitable[object], what: str) -> OrderRejected:
    """Await ``call``; it must raise ``OrderRejected`` (returned), else the check fails."""
    try:
        await call
    except OrderRejected as exc:
        return exc
    raise AssertionError(f"{what} must be refused with OrderRejected")


async def _touch(broker: Broker, symbol: str) -> tuple[Decimal, Decimal]:
    (quote,) = await broker.quotes([symbol])
    assert quote.bid is not None
    assert quote.ask is not None
    return quote.bid, quote.ask


def _request(
    env: ContractEnv, side: Side, limit: Decimal, *, symbol: str | None = None
) -> OrderRequest:
    return OrderRequest(
        client_order_id=new_client_order_id(env),
        account_id=env.account_id,
        symbol=symbol or env.symbol,
        side=side,
        quantity=1,
        limit_price=limit,
    )


async def check_marketable_order_fills(env: ContractEnv) -> None:
    """A marketable buy is acknowledged, fills at its limit or better, and is reported as
    executions (unique exec ids), as order updates, and through find_order."""
    broker = await _connected(env)
    try:
        updates = broker.order_updates()
        _bid, ask = await _touch(broker, env.symbol)
        limit = (ask * Decimal("1.01")).quantize(CENT, rounding=ROUND_UP)
        request = _request(env, Side.BUY, limit)
        ack = await broker.place_order(request)
        assert ack.client_order_id == request.client_order_id
        assert ack.status in {OrderStatus.PENDING_SUBMIT, OrderStatus.WORKING, OrderStatus.FILLED}
        coid = request.client_order_id

        async def probe() -> OrderSnapshot | None:
            return await find_order(broker, coid, since=env.since)

        final = await _wait_for(env, probe)
        assert final is not None, "the order cannot be found by client_order_id"
        assert final.status is OrderStatus.FILLED
        assert (final.order_id, final.perm_id) == (ack.order_id, ack.perm_id)
        assert final.filled == 1
        assert final.remaining == 0
        assert final.client_id == broker.client_id
        assert final.avg_fill_price is not None
        assert final.avg_fill_price <= limit
        fills = [e for e in await broker.executions(env.since) if e.client_order_id == coid]
        assert sum(e.quantity for e in fills) == 1
        assert len({e.exec_id for e in fills}) == len(fills)
        assert all(e.price <= limit and e.perm_id == ack.perm_id for e in fills)
        assert all(o.client_order_id != coid for o in await broker.open_orders())
        seen = await _collect_updates(env, updates, coid)
        assert {e.exec_id for e in seen} == {e.exec_id for e in fills}
    finally:
        await broker.close()


async def _collect_updates(
    env: ContractEnv, updates: AsyncIterator[OrderUpdate], coid: str
) -> list[Execution]:
    """Read updates until the order's terminal status; the distinct executions reported."""
    executions: dict[str, Execution] = {}
    with anyio.fail_after(env.update_timeout_secs):
        async for update in updates:
            if update.client_order_id != coid:
                continue
            if update.execution is not None:
                executions[update.execution.exec_id] = update.execution
            if update.status.is_terminal and update.filled == sum(
                e.quantity for e in executions.values()
            ):
                break
    return list(executions.values())


async def check_resting_order_cancel(env: ContractEnv) -> None:
    """A buy far below the market rests as an open order of this client; cancelling it leaves a
    cancelled, unfilled order; cancelling again is refused."""
    broker = await _connected(env)
    try:
        bid, _ask = await _touch(broker, env.symbol)
        limit = max(CENT, (bid / 2).quantize(CENT, rounding=ROUND_DOWN))
        request = _request(env, Side.BUY, limit)
        ack = await broker.place_order(request)
        await env.advance(env.step_secs)
        (resting,) = [
            o for o in await broker.open_orders() if o.client_order_id == request.client_order_id
        ]
        assert resting.status in {OrderStatus.WORKING, OrderStatus.PENDING_SUBMIT}
        assert resting.client_id == broker.client_id
        assert (resting.filled, resting.remaining) == (0, 1)
        assert resting.limit_price == limit
        await broker.cancel_order(ack.order_id)

        async def probe() -> OrderSnapshot | None:
            return await find_order(broker, request.client_order_id, since=env.since)

        final = await _wait_for(env, probe)
        assert final is not None
        assert final.status is OrderStatus.CANCELLED
        assert final.filled == 0
        completed = [
            o
            for o in await broker.completed_orders(env.since)
            if o.client_order_id == request.client_order_id
        ]
        assert [o.status for o in completed] == [OrderStatus.CANCELLED]
        await _refused(broker.cancel_order(ack.order_id), "cancelling a cancelled order")
    finally:
        await broker.close()


async def check_cancel_unknown_order(env: ContractEnv) -> None:
    """Cancelling an order id this client never used is refused with a broker code."""
    broker = await _connected(env)
    try:
        refusal = await _refused(broker.cancel_order(987_654_321), "cancel of an unknown id")
        assert isinstance(refusal.code, int)
        assert refusal.code > 0
    finally:
        await broker.close()


async def check_unknown_symbol_rejected(env: ContractEnv) -> None:
    """An order in a symbol the broker does not know is refused definitively."""
    broker = await _connected(env)
    try:
        request = _request(env, Side.BUY, Decimal("10.00"), symbol=env.unknown_symbol)
        refusal = await _refused(broker.place_order(request), "an unknown symbol")
        assert refusal.code > 0
        assert all(o.client_order_id != request.client_order_id for o in await broker.open_orders())
    finally:
        await broker.close()


async def check_cancel_scoped_to_client(env: ContractEnv) -> None:
    """Another client id sees our open order but cannot cancel it; we can."""
    if env.make_other_client is None:
        raise AssertionError("cancel scoping cannot be checked without make_other_client")
    mine = await _connected(env)
    other = await _connected(env, env.make_other_client)
    try:
        assert other.client_id != mine.client_id
        bid, _ask = await _touch(mine, env.symbol)
        request = _request(env, Side.BUY, max(CENT, (bid / 2).quantize(CENT, rounding=ROUND_DOWN)))
        ack = await mine.place_order(request)
        await env.advance(env.step_secs)
        coid = request.client_order_id
        seen = [o for o in await other.open_orders() if o.client_order_id == coid]
        assert len(seen) == 1
        assert seen[0].client_id == mine.client_id
        await _refused(other.cancel_order(ack.order_id), "a cancel from another client id")
        still = [o for o in await mine.open_orders() if o.client_order_id == coid]
        assert len(still) == 1
        assert not still[0].status.is_terminal
        await mine.cancel_order(ack.order_id)

        async def probe() -> OrderSnapshot | None:
            return await find_order(mine, request.client_order_id, since=env.since)

        final = await _wait_for(env, probe)
        assert final is not None
        assert final.status is OrderStatus.CANCELLED
    finally:
        await other.close()
        await mine.close()


async def check_updates_do_not_replay_history(env: ContractEnv) -> None:
    """A new update iterator starts from now: an order that already ended is not replayed."""
    broker = await _connected(env)
    try:
        _bid, ask = await _touch(broker, env.symbol)
        request = _request(env, Side.BUY, (ask * Decimal("1.01")).quantize(CENT, rounding=ROUND_UP))
        await broker.place_order(request)
        coid = request.client_order_id

        async def probe() -> OrderSnapshot | None:
            return await find_order(broker, coid, since=env.since)

        final = await _wait_for(env, probe)
        assert final is not None
        assert final.status is OrderStatus.FILLED
    finally:
        await broker.close()
    fresh = await _connected(env)
    try:
        replayed: list[OrderUpdate] = []
        with anyio.move_on_after(min(1.0, env.update_timeout_secs)):
            async for update in fresh.order_updates():
                if update.client_order_id == coid:
                    replayed.append(update)
        assert replayed == [], "a new iterator replayed updates of an order that had ended"
    finally:
        await fresh.close()


async def check_updates_end_on_close(env: ContractEnv) -> None:
    """The order-update iterator ends once the connection is closed."""
    broker = await _connected(env)
    updates = broker.order_updates()
    await broker.close()
    with anyio.fail_after(env.update_timeout_secs):
        async for _update in updates:
            pass


ALL_CHECKS: tuple[Callable[[ContractEnv], Awaitable[None]], ...] = (
    check_connect_close,
    check_account_and_positions,
    check_quotes,
    check_marketable_order_fills,
    check_resting_order_cancel,
    check_cancel_unknown_order,
    check_unknown_symbol_rejected,
    check_cancel_scoped_to_client,
    check_updates_do_not_replay_history,
    check_updates_end_on_close,
)
