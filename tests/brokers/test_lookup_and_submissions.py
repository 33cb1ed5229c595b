"""Finding an order by client order id, and proving from the record that nothing was sent twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from simkit import broker, order, settings

from brokers.errors import OutcomeUnknown
from brokers.lookup import FoundIn, find_order, lookup_order
from brokers.sim import ManualClock, read_sim_state
from brokers.types import Execution, OrderSnapshot, OrderStatus, Side

T0 = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
SINCE = T0 - timedelta(days=1)


def _snap(coid: str, perm_id: int, status: OrderStatus) -> OrderSnapshot:
    return OrderSnapshot(
        client_order_id=coid, order_id=perm_id, perm_id=perm_id, client_id=1, account_id="A",
        symbol="AAPL", side=Side.BUY, quantity=10, limit_price=Decimal("190"), status=status,
        filled=0, remaining=10, avg_fill_price=None, updated_at=T0,
    )


def _fill(coid: str, exec_id: str, qty: int, price: str) -> Execution:
    return Execution(
        exec_id=exec_id, client_order_id=coid, order_id=4, perm_id=44, account_id="A",
        symbol="AAPL", side=Side.SELL, quantity=qty, price=Decimal(price), time=T0,
    )


class _Source:
    """A scripted order source: fixed open orders, completed orders and executions."""

    def __init__(
        self,
        open_: tuple[OrderSnapshot, ...] = (),
        done: tuple[OrderSnapshot, ...] = (),
        fills: tuple[Execution, ...] = (),
    ) -> None:
        self.open_, self.done, self.fills = open_, done, fills
        self.calls: list[str] = []

    async def open_orders(self) -> tuple[OrderSnapshot, ...]:
        self.calls.append("open")
        return self.open_

    async def completed_orders(self, since: datetime) -> tuple[OrderSnapshot, ...]:
        self.calls.append("completed")
        return self.done

    async def executions(self, since: datetime) -> tuple[Execution, ...]:
        self.calls.append("executions")
        return self.fills


async def test_open_order_is_found_first_without_further_queries() -> None:
    """An open order is returned from the open-order query alone."""
    source = _Source(open_=(_snap("rb1-x", 7, OrderStatus.WORKING),))
    found = await lookup_order(source, "rb1-x", since=SINCE)
    assert found is not None
    assert (found.found_in, found.snapshot.perm_id) == (FoundIn.OPEN, 7)
    assert source.calls == ["open"]


async def test_completed_order_is_found_second() -> None:
    """An order no longer open is found among completed orders; the newest of duplicates wins."""
    source = _Source(done=(_snap("rb1-x", 7, OrderStatus.CANCELLED),
                           _snap("rb1-x", 9, OrderStatus.FILLED),
                           _snap("rb1-y", 11, OrderStatus.FILLED)))
    found = await find_order(source, "rb1-x", since=SINCE)
    assert found is not None
    assert (found.perm_id, found.status) == (9, OrderStatus.FILLED)
    assert source.calls == ["open", "completed"]


async def test_order_known_only_from_executions_is_rebuilt_from_the_fills() -> None:
    """Found only in executions: a terminal snapshot with the executed shares and average."""
    source = _Source(fills=(_fill("rb1-z", "e1", 3, "190.00"), _fill("rb1-z", "e2", 1, "189.00"),
                            _fill("rb1-other", "e3", 5, "1.00")))
    found = await lookup_order(source, "rb1-z", since=SINCE)
    assert found is not None
    assert found.found_in is FoundIn.EXECUTIONS
    snap = found.snapshot
    assert (snap.status, snap.filled) == (OrderStatus.FILLED, 4)
    assert (snap.quantity, snap.remaining) == (4, 0)
    assert snap.avg_fill_price == Decimal("189.7500")
    assert snap.limit_price == Decimal("189.00")
    assert [e.exec_id for e in found.executions] == ["e1", "e2"]


async def test_unknown_order_is_none_after_all_three_queries() -> None:
    """An order the broker never saw is None, after open, completed and executions."""
    source = _Source()
    assert await find_order(source, "rb1-never", since=SINCE) is None
    assert source.calls == ["open", "completed", "executions"]


async def test_resolving_a_lost_ack_by_lookup_sends_nothing_twice(tmp_path: Path) -> None:
    """After a lost ack, looking the order up (not resubmitting) leaves exactly one submission
    per client order id in the record; a blind resubmission would show up as two."""
    path = tmp_path / "s.json"
    clock = ManualClock(T0)
    b = broker(settings(path, faults={"lose_ack_for_symbols": ("GLD",)}), clock)
    await b.connect()
    sent = ["rb1-w-0", "rb1-w-1", "rb1-w-2"]
    await b.place_order(order(sent[0], "AAPL", limit="190.10"))
    with pytest.raises(OutcomeUnknown):
        await b.place_order(order(sent[1], "GLD", limit="240.10"))
    assert await find_order(b, sent[1], since=SINCE) is not None
    await b.place_order(order(sent[2], "SPY", quantity=2, limit="561.00"))
    view = read_sim_state(path)
    assert view is not None
    assert view.all_submissions() == dict.fromkeys(sent, 1)
    assert view.resubmitted() == ()
    await b.place_order(order(sent[0], "AAPL", limit="190.10"))  # the mistake the record catches
    view = read_sim_state(path)
    assert view is not None
    assert view.submissions(sent[0]) == 2
    assert view.resubmitted() == (sent[0],)
    assert len(view.orders(sent[0])) == 2
