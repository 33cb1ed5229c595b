"""The simulated market: fills, schedules, cancels, accounting, determinism, the state file."""

from __future__ import annotations

import fcntl
import os
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from simkit import ACCOUNT, broker, order, settings

from brokers.errors import BrokerProtocolError, BrokerUnavailable, OrderRejected
from brokers.lookup import find_order
from brokers.sim import ManualClock, SimBroker, read_sim_state
from brokers.sim.market import Listing, Market, book, marketable
from brokers.sim.state import to_us
from brokers.types import OrderStatus, Side

SINCE = ManualClock().now() - timedelta(days=1)


async def _scenario(path: Path) -> bytes:
    """A fixed sequence of calls at fixed times; returns the state file's bytes."""
    clock = ManualClock()
    cfg = settings(path, seed=42, partial_fills=5, fill_delay_ms_min=100, fill_delay_ms_max=9000,
                   drift_bps=20, drift_interval_ms=700)
    a = broker(cfg, clock, client_id=1)
    b = broker(cfg, clock, client_id=2)
    await a.connect()
    await b.connect()
    await a.place_order(order("rb1-a", "AAPL", quantity=50, limit="190.10"))
    clock.advance(0.3)
    await b.place_order(order("rb1-b", "XOM", side=Side.SELL, quantity=40, limit="109.95"))
    clock.advance(2.1)
    ack = await a.place_order(order("rb1-c", "NVDA", quantity=30, limit="120.05"))
    clock.advance(1.7)
    await a.cancel_order(ack.order_id)
    clock.advance(20)
    await a.positions()
    return path.read_bytes()


async def test_same_seed_and_calls_give_byte_identical_state(tmp_path: Path) -> None:
    """Two runs of the same calls at the same times produce identical state files."""
    first = await _scenario(tmp_path / "one.json")
    second = await _scenario(tmp_path / "two.json")
    assert first == second
    assert b'"exec_id":"sim.00100001.01"' in first


async def test_partial_fills_follow_the_schedule_and_never_beat_the_limit(tmp_path: Path) -> None:
    """An order split into partial fills fills progressively with time, each at or below its
    limit, and cash and position move by exactly the fills and commissions."""
    clock = ManualClock()
    cfg = settings(tmp_path / "s.json", partial_fills=4, fill_delay_ms_min=1000,
                   fill_delay_ms_max=20_000, seed=3)
    b = broker(cfg, clock)
    await b.connect()
    before = await b.account_summary()
    await b.place_order(order("rb1-part", "TLT", quantity=101, limit="93.00"))
    progress = []
    for _ in range(21):
        snap = await find_order(b, "rb1-part", since=SINCE)
        assert snap is not None
        progress.append(snap.filled)
        clock.advance(1)
    assert progress == sorted(progress)
    assert progress[0] == 0
    assert progress[-1] == 101
    assert len(set(progress)) > 2, "fills arrived in several parts"
    fills = [e for e in await b.executions(SINCE) if e.client_order_id == "rb1-part"]
    assert sum(e.quantity for e in fills) == 101
    assert all(e.price <= Decimal("93.00") for e in fills)
    after = await b.account_summary()
    spent = sum(e.quantity * e.price + (e.commission or 0) for e in fills)
    assert before.cash - after.cash == spent
    (tlt,) = [p for p in await b.positions() if p.symbol == "TLT"]
    assert tlt.quantity == 101


def test_market_is_a_pure_function_of_seed_symbol_and_time() -> None:
    """Quotes are the same for the same (seed, symbol, time), constant within an interval,
    and stay within the drift band around the base price."""
    market = Market(seed=5, drift_bps=50, drift_interval_us=1_000_000,
                    listings={"X": Listing(price=Decimal("100.00"), spread_bps=4)})
    t0 = to_us(ManualClock().now())
    mids = {book(market, "X", t0 + k * 1_000_000).mid for k in range(200)}
    assert book(market, "X", t0) == book(market, "X", t0 + 999_999 - t0 % 1_000_000)
    assert len(mids) > 20
    assert all(Decimal("99.50") <= m <= Decimal("100.50") for m in mids)


async def test_unmarketable_order_rests_until_the_quote_moves(tmp_path: Path) -> None:
    """A buy below the ask rests; it fills at the first quote move that makes it marketable,
    at that quote's ask (never above its limit)."""
    clock = ManualClock()
    cfg = settings(tmp_path / "s.json", drift_bps=50, drift_interval_ms=1000, seed=11,
                   fill_delay_ms_min=0, fill_delay_ms_max=0)
    b = broker(cfg, clock)
    await b.connect()
    limit = Decimal("190.00")
    state = read_sim_state(b.state_file)
    assert state is not None
    market = state.state.market
    start = to_us(clock.now())
    steps = [marketable(Side.BUY, limit, book(market, "AAPL", start + k * 1_000_000))
             for k in range(120)]
    first = steps.index(True)
    assert first > 0, "pick a seed where the order starts out unmarketable"
    await b.place_order(order("rb1-rest", limit=str(limit)))
    clock.advance(first - 0.5)
    snap = await find_order(b, "rb1-rest", since=SINCE)
    assert snap is not None
    assert snap.status is OrderStatus.WORKING
    clock.advance(1)
    snap = await find_order(b, "rb1-rest", since=SINCE)
    assert snap is not None
    assert snap.status is OrderStatus.FILLED
    (fill,) = [e for e in await b.executions(SINCE) if e.client_order_id == "rb1-rest"]
    boundary = (start // 1_000_000 + first) * 1_000_000
    assert to_us(fill.time) == boundary
    assert fill.price == book(market, "AAPL", boundary).ask
    assert fill.price <= limit


async def test_orders_progress_while_no_process_is_attached(tmp_path: Path) -> None:
    """Fills happen at placement time plus the schedule even if nobody looks; a later client
    sees them with their original times."""
    clock = ManualClock()
    cfg = settings(tmp_path / "s.json", fill_delay_ms_min=2000, fill_delay_ms_max=2000)
    a = broker(cfg, clock)
    await a.connect()
    placed_at = clock.now()
    await a.place_order(order("rb1-away", quantity=3))
    await a.close()
    clock.advance(3600)
    later = broker(cfg, clock, client_id=9)
    await later.connect()
    snap = await find_order(later, "rb1-away", since=SINCE)
    assert snap is not None
    assert snap.status is OrderStatus.FILLED
    assert snap.updated_at == placed_at + timedelta(seconds=2)


async def test_cancel_is_scoped_to_the_placing_client(tmp_path: Path) -> None:
    """Another client's cancel is refused with 10147 and the order keeps working; the owner's
    cancel succeeds and the order ends CANCELLED with no fill."""
    clock = ManualClock()
    cfg = settings(tmp_path / "s.json")
    owner, other = broker(cfg, clock, client_id=1), broker(cfg, clock, client_id=2)
    await owner.connect()
    await other.connect()
    ack = await owner.place_order(order("rb1-mine", limit="150.00"))
    with pytest.raises(OrderRejected) as info:
        await other.cancel_order(ack.order_id)
    assert info.value.code == 10147
    assert "not found" in info.value.message
    (still,) = await other.open_orders()
    assert (still.client_id, still.status) == (1, OrderStatus.WORKING)
    await owner.cancel_order(ack.order_id)
    snap = await find_order(other, "rb1-mine", since=SINCE)
    assert snap is not None
    assert (snap.status, snap.filled) == (OrderStatus.CANCELLED, 0)


async def test_order_ids_are_per_client_and_perm_ids_global(tmp_path: Path) -> None:
    """Each client numbers its orders from 1; permanent ids are unique across clients."""
    clock = ManualClock()
    cfg = settings(tmp_path / "s.json")
    a, b = broker(cfg, clock, client_id=1), broker(cfg, clock, client_id=2)
    await a.connect()
    await b.connect()
    acks = [await a.place_order(order("rb1-1")), await b.place_order(order("rb1-2")),
            await a.place_order(order("rb1-3"))]
    assert [x.order_id for x in acks] == [1, 1, 2]
    assert len({x.perm_id for x in acks}) == 3


async def test_fills_due_before_a_delayed_cancel_still_happen(tmp_path: Path) -> None:
    """During the cancel delay the order is PENDING_CANCEL and chunks due meanwhile fill; it
    ends CANCELLED with those fills."""
    clock = ManualClock()
    # Seed 5 splits this order into 9 fills, 34 shares of them due in the first 10 s.
    cfg = settings(tmp_path / "s.json", cancel_delay_ms=10_000, partial_fills=10,
                   fill_delay_ms_min=1000, fill_delay_ms_max=30_000, seed=5)
    b = broker(cfg, clock)
    await b.connect()
    ack = await b.place_order(order("rb1-slowcancel", quantity=100))
    await b.cancel_order(ack.order_id)
    snap = await find_order(b, "rb1-slowcancel", since=SINCE)
    assert snap is not None
    assert snap.status is OrderStatus.PENDING_CANCEL
    clock.advance(60)
    snap = await find_order(b, "rb1-slowcancel", since=SINCE)
    assert snap is not None
    assert snap.status is OrderStatus.CANCELLED
    assert snap.filled == 34
    assert snap.remaining == 66


async def test_a_clock_behind_the_state_never_moves_time_back(tmp_path: Path) -> None:
    """A process whose clock is behind the state's works at the state's time (monotonic)."""
    ahead = ManualClock()
    cfg = settings(tmp_path / "s.json")
    a = broker(cfg, ahead)
    await a.connect()
    ahead.advance(100)
    await a.place_order(order("rb1-t"))
    behind = broker(cfg, ManualClock(), client_id=2)
    await behind.connect()
    await behind.place_order(order("rb1-late"))
    snap = await find_order(behind, "rb1-late", since=SINCE)
    assert snap is not None
    assert snap.updated_at == ahead.now()


async def test_state_file_is_created_with_its_directory(tmp_path: Path) -> None:
    """connect() creates the missing directories, the state file and its lock file."""
    path = tmp_path / "var" / "sim" / "state.json"
    b = broker(settings(path), ManualClock())
    await b.connect()
    assert path.is_file()
    assert (path.parent / "state.json.lock").is_file()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_damaged_state_file_is_reported_with_its_path(tmp_path: Path) -> None:
    """A state file that is not the simulator's JSON raises BrokerProtocolError naming it."""
    path = tmp_path / "s.json"
    path.write_text("{not json")
    b = broker(settings(path), ManualClock())
    with pytest.raises(BrokerProtocolError, match=str(path)):
        await b.connect()


async def test_lock_wait_is_bounded(tmp_path: Path) -> None:
    """While another process holds the lock, a call gives up with BrokerUnavailable."""
    path = tmp_path / "s.json"
    b = broker(settings(path), ManualClock(), lock_timeout=0.05)
    await b.connect()
    fd = os.open(path.with_name("s.json.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(BrokerUnavailable, match="locked"):
            await b.account_summary()
    finally:
        os.close(fd)
    assert (await b.account_summary()).account_id == ACCOUNT


async def test_state_of_another_account_is_refused(tmp_path: Path) -> None:
    """A state file created for one account cannot be used as another account."""
    path = tmp_path / "s.json"
    await broker(settings(path), ManualClock()).connect()
    stranger = SimBroker(settings(path), account_id="U999", clock=ManualClock())
    with pytest.raises(BrokerUnavailable, match="DEMO1"):
        await stranger.connect()


async def test_calls_before_connect_are_refused(tmp_path: Path) -> None:
    """A broker that was never connected refuses requests with BrokerUnavailable."""
    b = broker(settings(tmp_path / "s.json"), ManualClock())
    with pytest.raises(BrokerUnavailable):
        await b.positions()


async def test_demo_account_and_universe(tmp_path: Path) -> None:
    """The default demo account holds ten positions and cash of about $250,000 in all, and
    every pinned demo symbol is quoted between $20 and $1,000."""
    b = broker(settings(tmp_path / "s.json"), ManualClock())
    await b.connect()
    summary = await b.account_summary()
    assert Decimal(240_000) < summary.net_liquidation < Decimal(260_000)
    assert len(await b.positions()) == 10
    pinned = ["AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "JPM",
              "XOM", "JNJ", "PG", "SPY", "TLT", "GLD", "VTI"]
    for q in await b.quotes(pinned):
        assert q.bid is not None
        assert q.ask is not None
        assert Decimal(20) <= q.bid < q.ask <= Decimal(1000)


async def test_each_client_sees_the_others_writes_and_a_deleted_state(tmp_path: Path) -> None:
    """A client's cached state is refreshed after another client writes, and a state file
    deleted by hand starts over from the demo account."""
    clock = ManualClock()
    path = tmp_path / "s.json"
    a, b = broker(settings(path), clock, client_id=1), broker(settings(path), clock, client_id=2)
    await a.connect()
    await b.connect()
    assert await a.open_orders() == ()
    await b.place_order(order("rb1-b", limit="150.00"))
    assert [o.client_order_id for o in await a.open_orders()] == ["rb1-b"]
    path.unlink()
    assert await a.open_orders() == ()
    assert (await a.account_summary()).cash == Decimal("40000.00")


async def test_exclusive_client_ids_refuse_a_second_connection(tmp_path: Path) -> None:
    """With exclusive client ids, a second connect with an id in use fails with 326 until the
    first connection closes; other ids are unaffected."""
    cfg = replace(settings(tmp_path / "s.json"), exclusive_client_ids=True)
    clock = ManualClock()
    first, second, other = broker(cfg, clock), broker(cfg, clock), broker(cfg, clock, client_id=2)
    await first.connect()
    with pytest.raises(BrokerUnavailable, match=r"\[326\] client id 1"):
        await second.connect()
    await other.connect()
    await first.close()
    await second.connect()
    assert (await second.account_summary()).account_id == ACCOUNT
