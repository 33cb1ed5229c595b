"""Each fault switch of the simulated broker provokes its documented behaviour."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from simkit import broker, order, settings

from brokers.errors import BrokerUnavailable, OrderRejected, OutcomeUnknown
from brokers.lookup import find_order
from brokers.sim import ManualClock, read_sim_state
from brokers.types import MarketDataType, OrderStatus, OrderUpdate, Side

SINCE = ManualClock().now() - timedelta(days=1)


def _submissions(path: Path, coid: str) -> int:
    view = read_sim_state(path)
    assert view is not None
    return view.submissions(coid)


async def test_ack_latency_waits_after_the_order_reached_the_market(tmp_path: Path) -> None:
    """With ack latency, place_order records the order first, then waits the latency."""
    state = tmp_path / "s.json"
    waits: list[float] = []
    seen_during_wait: list[int] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        view = read_sim_state(state)
        assert view is not None
        seen_during_wait.append(len(view.orders("rb1-lat")))

    b = broker(settings(state, faults={"ack_latency_ms": 250}), ManualClock(), sleep=sleep)
    await b.connect()
    ack = await b.place_order(order("rb1-lat"))
    assert ack.status is OrderStatus.WORKING
    assert waits == [0.25]
    assert seen_during_wait == [1]


async def test_ack_latency_cancelled_caller_leaves_a_working_order(tmp_path: Path) -> None:
    """A caller that gives up during the ack latency does not know, but the order exists."""
    state = tmp_path / "s.json"
    b = broker(settings(state, faults={"ack_latency_ms": 60_000}), ManualClock())
    await b.connect()
    with anyio.move_on_after(0.2) as scope:
        await b.place_order(order("rb1-slowack"))
    assert scope.cancelled_caught
    found = await find_order(b, "rb1-slowack", since=SINCE)
    assert found is not None
    assert found.status is OrderStatus.WORKING


async def test_reject_symbols_refuse_with_code_201_and_record_it(tmp_path: Path) -> None:
    """An order in a reject symbol raises OrderRejected(201) and shows as a rejected order."""
    state = tmp_path / "s.json"
    b = broker(settings(state, faults={"reject_symbols": ("MSFT",)}), ManualClock())
    await b.connect()
    with pytest.raises(OrderRejected) as info:
        await b.place_order(order("rb1-rej", "MSFT", limit="430.00"))
    assert info.value.code == 201
    assert info.value.client_order_id == "rb1-rej"
    found = await find_order(b, "rb1-rej", since=SINCE)
    assert found is not None
    assert found.status is OrderStatus.REJECTED
    assert _submissions(state, "rb1-rej") == 1
    assert await b.open_orders() == ()


async def test_unknown_symbol_is_rejected_with_code_200(tmp_path: Path) -> None:
    """A symbol outside the universe has no security definition (code 200)."""
    b = broker(settings(tmp_path / "s.json"), ManualClock())
    await b.connect()
    with pytest.raises(OrderRejected) as info:
        await b.place_order(order("rb1-unk", "NOPE"))
    assert info.value.code == 200


async def test_sub_penny_limit_is_rejected_with_code_110(tmp_path: Path) -> None:
    """A limit that is not a whole number of cents breaks the tick size (code 110)."""
    b = broker(settings(tmp_path / "s.json"), ManualClock())
    await b.connect()
    with pytest.raises(OrderRejected) as info:
        await b.place_order(order("rb1-tick", limit="190.005"))
    assert info.value.code == 110


async def test_insufficient_buying_power_rejects_buys_and_oversized_sells(tmp_path: Path) -> None:
    """With the buying-power check on, a buy beyond free cash and a sell beyond the free
    position are refused (201); an order within both is accepted."""
    b = broker(settings(tmp_path / "s.json", faults={"check_buying_power": True}), ManualClock())
    await b.connect()
    with pytest.raises(OrderRejected) as info:
        await b.place_order(order("rb1-big", "MSFT", quantity=100, limit="421.00"))  # $42,100
    assert info.value.code == 201
    assert "insufficient buying power" in info.value.message
    with pytest.raises(OrderRejected) as info:
        await b.place_order(order("rb1-short", "AAPL", side=Side.SELL, quantity=111, limit="189"))
    assert info.value.code == 201
    ack = await b.place_order(order("rb1-ok", "MSFT", quantity=90, limit="421.00"))
    assert ack.status is OrderStatus.WORKING
    with pytest.raises(OrderRejected):  # the working buy holds $37,890 of the $40,000
        await b.place_order(order("rb1-more", "TLT", quantity=30, limit="93.00"))


async def test_price_band_refuses_limits_far_from_the_market(tmp_path: Path) -> None:
    """A limit more than price_band_pct away from mid is refused with code 163."""
    b = broker(settings(tmp_path / "s.json", faults={"price_band_pct": 5}), ManualClock())
    await b.connect()
    with pytest.raises(OrderRejected) as info:
        await b.place_order(order("rb1-far", limit="210.00"))  # AAPL mid 190: +10.5 %
    assert info.value.code == 163
    ack = await b.place_order(order("rb1-near", limit="195.00"))
    assert ack.status is OrderStatus.WORKING


async def test_disconnect_at_nth_request(tmp_path: Path) -> None:
    """The n-th request raises BrokerUnavailable without being sent; every later call fails
    until connect(), and the update stream raises too."""
    state = tmp_path / "s.json"
    b = broker(settings(state, faults={"disconnect_at_request": 2}), ManualClock())
    await b.connect()
    updates = b.order_updates()
    await b.account_summary()
    with pytest.raises(BrokerUnavailable):
        await b.place_order(order("rb1-dc"))
    assert _submissions(state, "rb1-dc") == 0
    with pytest.raises(BrokerUnavailable):
        await b.positions()
    with pytest.raises(BrokerUnavailable):
        await anext(updates)
    await b.connect()
    ack = await b.place_order(order("rb1-dc"))
    assert ack.order_id == 1
    assert _submissions(state, "rb1-dc") == 1
    assert b.requests == 3


async def test_lost_ack_raises_outcome_unknown_but_the_order_works(tmp_path: Path) -> None:
    """A lost acknowledgement raises OutcomeUnknown; the order is at the broker and fills."""
    state = tmp_path / "s.json"
    clock = ManualClock()
    b = broker(settings(state, faults={"lose_ack_for_symbols": ("AAPL",)}), clock)
    await b.connect()
    with pytest.raises(OutcomeUnknown) as info:
        await b.place_order(order("rb1-lost"))
    assert info.value.client_order_id == "rb1-lost"
    found = await find_order(b, "rb1-lost", since=SINCE)
    assert found is not None
    assert found.status is OrderStatus.WORKING
    clock.advance(1)
    found = await find_order(b, "rb1-lost", since=SINCE)
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert _submissions(state, "rb1-lost") == 1


async def _read_updates(updates: object, count: int) -> list[OrderUpdate]:
    got: list[OrderUpdate] = []
    with anyio.fail_after(5):
        async for update in updates:  # type: ignore[attr-defined]
            got.append(update)
            if len(got) == count:
                break
    return got


async def test_duplicate_callbacks_repeat_every_update(tmp_path: Path) -> None:
    """With duplicate callbacks on, each status and fill update arrives twice in a row."""
    clock = ManualClock()
    b = broker(settings(tmp_path / "s.json", faults={"duplicate_callbacks": True}), clock)
    await b.connect()
    updates = b.order_updates()
    await b.place_order(order("rb1-dup"))
    clock.advance(1)
    got = await _read_updates(updates, 4)
    assert got[0] == got[1]
    assert got[2] == got[3]
    assert got[0].status is OrderStatus.WORKING
    assert got[2].status is OrderStatus.FILLED
    assert got[2].execution is not None


async def test_without_duplicates_each_update_arrives_once(tmp_path: Path) -> None:
    """Without the fault, the same order produces one working and one filled update."""
    clock = ManualClock()
    b = broker(settings(tmp_path / "s.json"), clock)
    await b.connect()
    updates = b.order_updates()
    await b.place_order(order("rb1-once"))
    clock.advance(1)
    got = await _read_updates(updates, 2)
    assert [u.status for u in got] == [OrderStatus.WORKING, OrderStatus.FILLED]


async def test_cancel_races_fill_and_is_refused(tmp_path: Path) -> None:
    """With the race on, the cancel finds the order filled: OrderRejected 10148, FILLED."""
    cfg = settings(
        tmp_path / "s.json",
        fill_delay_ms_min=60_000,
        fill_delay_ms_max=60_000,
        faults={"cancel_races_fill": True},
    )
    b = broker(cfg, ManualClock())
    await b.connect()
    ack = await b.place_order(order("rb1-race", quantity=7))
    with pytest.raises(OrderRejected) as info:
        await b.cancel_order(ack.order_id)
    assert info.value.code == 10148
    assert "Filled" in info.value.message
    found = await find_order(b, "rb1-race", since=SINCE)
    assert found is not None
    assert (found.status, found.filled, found.remaining) == (OrderStatus.FILLED, 7, 0)
    assert found.avg_fill_price is not None
    assert found.avg_fill_price <= Decimal("200.00")


async def test_cancel_race_accepted_still_ends_filled(tmp_path: Path) -> None:
    """With the accepting variant, the cancel returns normally but the order ends FILLED."""
    cfg = settings(
        tmp_path / "s.json",
        fill_delay_ms_min=60_000,
        fill_delay_ms_max=60_000,
        faults={"cancel_races_fill": True, "cancel_race_accepts": True},
    )
    b = broker(cfg, ManualClock())
    await b.connect()
    updates = b.order_updates()
    ack = await b.place_order(order("rb1-race2", quantity=5))
    await b.cancel_order(ack.order_id)
    got = await _read_updates(updates, 3)
    assert [u.status for u in got] == [
        OrderStatus.WORKING,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.FILLED,
    ]
    found = await find_order(b, "rb1-race2", since=SINCE)
    assert found is not None
    assert found.status is OrderStatus.FILLED


async def test_quote_faults_stale_delayed_and_missing_bid_ask(tmp_path: Path) -> None:
    """Stale symbols carry an old timestamp, delayed ones a DELAYED type, and no-bid-ask ones
    no bid and no ask (but a last price); other symbols stay live and fresh."""
    clock = ManualClock()
    faults = {
        "stale_quote_symbols": ("AAPL",),
        "stale_quote_age_secs": 600,
        "delayed_quote_symbols": ("MSFT",),
        "no_bid_ask_symbols": ("NVDA",),
    }
    b = broker(settings(tmp_path / "s.json", faults=faults), clock)
    await b.connect()
    aapl, msft, nvda, spy = await b.quotes(["AAPL", "MSFT", "NVDA", "SPY"])
    assert aapl.timestamp == clock.now() - timedelta(seconds=600)
    assert aapl.data_type is MarketDataType.LIVE
    assert msft.data_type is MarketDataType.DELAYED
    assert msft.timestamp == clock.now()
    assert (nvda.bid, nvda.ask) == (None, None)
    assert nvda.last == Decimal("120.00")
    assert spy.timestamp == clock.now()
    assert spy.data_type is MarketDataType.LIVE
    assert spy.bid is not None
    assert spy.ask is not None


async def test_update_stream_made_before_connect_does_not_replay_history(tmp_path: Path) -> None:
    """An update iterator created before connect() starts at the connect: a reused client id
    does not get its earlier orders' history, only what happens afterwards."""
    clock = ManualClock()
    cfg = settings(tmp_path / "s.json")
    first = broker(cfg, clock)
    await first.connect()
    await first.place_order(order("rb1-old"))
    clock.advance(1)
    await first.positions()
    await first.close()
    again = broker(cfg, clock)
    updates = again.order_updates()
    await again.connect()
    await again.place_order(order("rb1-new"))
    got = await _read_updates(updates, 1)
    assert [(u.client_order_id, u.status) for u in got] == [("rb1-new", OrderStatus.WORKING)]
