"""AuditedBroker: every broker request is bracketed with the pinned events and payloads."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from brokers.errors import OrderRejected, OutcomeUnknown
from brokers.types import OrderRequest
from rebalancer.audit.errors import AuditWriteError
from rebalancer.audit.gateway import AuditedBroker
from rebalancer.audit.writer import AuditLog

SINCE = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def _gateway(log_path: Path, broker: Any, **kw: Any) -> tuple[AuditedBroker, AuditLog]:
    log = await AuditLog.open(log_path, run_id="run-1", config_hash="c", **kw)
    return AuditedBroker(broker, log), log


async def test_reads_write_pinned_events_and_payloads(log_path: Path, broker: Any) -> None:
    """Account, positions, quotes, open/completed orders and executions are each bracketed."""
    gw, log = await _gateway(log_path, broker)
    summary = await gw.account_summary()
    await gw.positions()
    await gw.quotes(["AAPL", "MSFT"])
    await gw.open_orders()
    await gw.completed_orders(SINCE)
    await gw.executions(SINCE)
    await log.aclose()
    rows = _rows(log_path)
    assert [r["event"] for r in rows] == [
        "account_summary_intent", "account_summary_result",
        "positions_intent", "positions_result",
        "quotes_intent", "quotes_result",
        "open_orders_intent", "open_orders_result",
        "completed_orders_intent", "completed_orders_result",
        "executions_intent", "executions_result",
    ]
    assert summary.net_liquidation == 100000
    acct = rows[1]
    money = (acct["equity"], acct["cash"], acct["buying_power"])
    assert money == ("100000.00", "2500.50", "200000")
    assert (acct["currency"], acct["account_id"]) == ("USD", "DU123")
    assert rows[3]["positions"] == [{"symbol": "AAPL", "qty": 10, "avg_cost": "150.25"}]
    assert rows[4]["symbols"] == ["AAPL", "MSFT"]
    assert rows[5]["quotes"][0] == {
        "symbol": "AAPL", "bid": "185.08", "ask": "185.10", "last": "185.09",
        "timestamp": "2026-12-04T15:00:00.000000Z", "data_type": "live",
    }
    assert rows[7]["orders"][0]["client_order_id"] == "rb1-a"
    assert rows[7]["orders"][0]["limit"] == "185.10"
    assert rows[8]["since"] == "2026-12-04T14:30:00.000000Z"
    assert rows[11]["executions"][0]["exec_id"] == "e1"
    assert all(r["op_id"] == rows[i - i % 2]["op_id"] for i, r in enumerate(rows))


async def test_place_order_records_intent_and_submission(
    log_path: Path, broker: Any, make_order: Callable[..., OrderRequest]
) -> None:
    """order_intent carries the order; order_submitted the broker ids, client id and symbol."""
    gw, log = await _gateway(log_path, broker)
    ack = await gw.place_order(make_order(), action="BUY")
    await log.aclose()
    intent, result = _rows(log_path)
    assert intent["event"] == "order_intent"
    assert {k: intent[k] for k in (
        "client_order_id", "symbol", "side", "action", "shares", "limit", "time_in_force",
        "account")} == {
        "client_order_id": "rb1-a", "symbol": "AAPL", "side": "BUY", "action": "BUY",
        "shares": 5, "limit": "185.10", "time_in_force": "DAY", "account": "DU123",
    }
    assert result["event"] == "order_submitted"
    assert (result["order_id"], result["perm_id"], result["status"]) == (101, 9001, "working")
    assert (result["client_order_id"], result["symbol"]) == ("rb1-a", "AAPL")
    assert ack.order_id == 101


async def test_place_order_rejection_is_order_failed_rejected(
    log_path: Path, broker: Any, make_order: Callable[..., OrderRequest]
) -> None:
    """A broker rejection is recorded as order_failed/rejected and re-raised."""
    broker.fail["place_order"] = OrderRejected(201, "margin", client_order_id="rb1-a")
    gw, log = await _gateway(log_path, broker)
    with pytest.raises(OrderRejected):
        await gw.place_order(make_order())
    await log.aclose()
    result = _rows(log_path)[1]
    assert result["event"] == "order_failed"
    assert result["error_class"] == "rejected"
    assert result["client_order_id"] == "rb1-a"
    assert broker.calls["place_order"] == 1


async def test_place_order_timeout_is_order_failed_ambiguous(
    log_path: Path, broker: Any, make_order: Callable[..., OrderRequest]
) -> None:
    """A submission that times out is recorded as ambiguous (to be looked up, never retried)."""
    broker.hang.add("place_order")
    gw, log = await _gateway(log_path, broker)
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        await gw.place_order(make_order())
    await log.aclose()
    result = _rows(log_path)[1]
    assert (result["event"], result["error_class"]) == ("order_failed", "ambiguous")


async def test_cancel_order_records_cancel_intent_and_result(log_path: Path, broker: Any) -> None:
    """cancel_intent/cancel_result carry order_id, client_order_id, symbol; failures classed."""
    gw, log = await _gateway(log_path, broker)
    await gw.cancel_order(101, client_order_id="rb1-a", symbol="AAPL", reason="kill")
    broker.fail["cancel_order"] = OutcomeUnknown("lost", client_order_id="rb1-a")
    with pytest.raises(OutcomeUnknown):
        await gw.cancel_order(101, client_order_id="rb1-a", symbol="AAPL", reason="kill")
    await log.aclose()
    rows = _rows(log_path)
    assert [r["event"] for r in rows] == ["cancel_intent", "cancel_result"] * 2
    assert rows[0]["reason"] == "kill"
    for r in rows:
        assert (r["order_id"], r["client_order_id"], r["symbol"]) == (101, "rb1-a", "AAPL")
    assert "error_class" not in rows[1]
    assert rows[3]["error_class"] == "ambiguous"
    assert broker.cancelled == [101]


@pytest.mark.parametrize(
    "call",
    [
        lambda gw, req: gw.account_summary(),
        lambda gw, req: gw.positions(),
        lambda gw, req: gw.quotes(["AAPL"]),
        lambda gw, req: gw.place_order(req),
        lambda gw, req: gw.cancel_order(1, client_order_id="rb1-a", symbol="AAPL", reason="x"),
        lambda gw, req: gw.open_orders(),
        lambda gw, req: gw.completed_orders(SINCE),
        lambda gw, req: gw.executions(SINCE),
    ],
)
async def test_broker_is_not_called_when_the_intent_write_fails(
    faulty_io: type, log_path: Path, broker: Any, make_order: Callable[..., OrderRequest],
    call: Callable[[AuditedBroker, OrderRequest], Any],
) -> None:
    """With the intent's fdatasync failing, the broker method is never called."""
    io = faulty_io(fail_op="sync", at=3, error=errno.EIO)
    gw, log = await _gateway(log_path, broker, io=io)
    with pytest.raises(AuditWriteError):
        await call(gw, make_order())
    with pytest.raises(AuditWriteError):
        await call(gw, make_order())
    await log.aclose()
    assert sum(broker.calls.values()) == 0


async def test_pacer_runs_after_the_intent_is_durable_and_before_the_call(
    faulty_io: type, log_path: Path, broker: Any, make_order: Callable[..., OrderRequest]
) -> None:
    """The pacer sees the intent already synced and the broker not yet called."""
    io = faulty_io()
    log = await AuditLog.open(log_path, run_id="r", config_hash="c", io=io)
    seen: list[tuple[int, bytes | None]] = []

    async def acquire() -> None:
        seen.append((broker.calls["place_order"], io.durable_bytes(log_path)))

    gw = AuditedBroker(broker, log, pacer=acquire)
    await gw.place_order(make_order())
    await log.aclose()
    assert len(seen) == 1
    calls_before, durable = seen[0]
    assert calls_before == 0
    assert durable is not None
    assert [json.loads(x)["event"] for x in durable.splitlines()] == ["order_intent"]
    assert broker.calls["place_order"] == 1


async def test_broker_call_happens_only_with_a_durable_intent(
    faulty_io: type, log_path: Path, broker: Any, make_order: Callable[..., OrderRequest]
) -> None:
    """Oracle: at every broker call, the matching intent is already in the durable bytes."""
    io = faulty_io()
    gw, log = await _gateway(log_path, broker, io=io)
    problems: list[str] = []

    def check(name: str) -> None:
        durable = io.durable_bytes(log_path) or b""
        last = json.loads(durable.splitlines()[-1]) if durable else {}
        if not str(last.get("event", "")).endswith("intent"):
            problems.append(name)

    broker.on_call = check
    await gw.account_summary()
    await gw.place_order(make_order("rb1-a"))
    await gw.place_order(make_order("rb1-b"))
    await gw.cancel_order(101, client_order_id="rb1-a", symbol="AAPL", reason="x")
    await log.aclose()
    assert problems == []
    assert sum(broker.calls.values()) == 4


async def test_order_updates_pass_through_without_records(log_path: Path, broker: Any) -> None:
    """Reading the update stream writes nothing to the log."""
    gw, log = await _gateway(log_path, broker)
    updates = [u async for u in gw.order_updates()]
    await log.aclose()
    assert [u.client_order_id for u in updates] == ["rb1-a"]
    assert log_path.read_bytes() == b""


async def test_raw_broker_is_not_a_public_attribute(log_path: Path, broker: Any) -> None:
    """No public attribute of the gateway exposes the raw broker."""
    gw, log = await _gateway(log_path, broker)
    await log.aclose()
    public = [getattr(gw, n) for n in dir(gw) if not n.startswith("_")]
    assert all(v is not broker for v in public)
    assert gw.client_id == 7


async def test_timeout_while_paced_is_recorded_as_not_sent(
    log_path: Path, broker: Any, make_order: Callable[..., OrderRequest]
) -> None:
    """A timeout while waiting for the pacer is definitive (rejected, not_sent): no broker call."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")

    async def slow_pacer() -> None:
        await anyio.sleep_forever()

    gw = AuditedBroker(broker, log, pacer=slow_pacer)
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        await gw.place_order(make_order())
    await log.aclose()
    result = _rows(log_path)[1]
    assert result["event"] == "order_failed"
    assert result["error_class"] == "rejected"
    assert result["not_sent"] is True
    assert broker.calls["place_order"] == 0
