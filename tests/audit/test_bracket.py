"""The write-ahead bracket: intent before, result after, even on exceptions and cancellation."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from brokers.errors import BrokerUnavailable, OrderRejected, OutcomeUnknown
from rebalancer.audit.bracket import OPERATION_EVENTS
from rebalancer.audit.errors import AuditPayloadError, AuditWriteError
from rebalancer.audit.records import scan_log
from rebalancer.audit.writer import AuditLog

INTENT = {"client_order_id": "rb1-a", "symbol": "AAPL", "shares": 5, "limit": "185.10"}


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("operation", sorted(OPERATION_EVENTS))
async def test_ok_bracket_writes_intent_then_result_with_one_op_id(
    log_path: Path, operation: str
) -> None:
    """Normal exit: the pinned intent and ok events share op_id; the result has latency_ms."""
    log = await AuditLog.open(log_path, run_id="run-9", config_hash="c")
    async with log.bracket(operation, INTENT) as b:
        assert b.intent.event == OPERATION_EVENTS[operation].intent
        b.result = {"order_id": 101, "perm_id": 9001}
    await log.aclose()
    intent, result = _rows(log_path)
    assert intent["event"] == OPERATION_EVENTS[operation].intent
    assert result["event"] == OPERATION_EVENTS[operation].ok
    assert intent["op_id"] == result["op_id"] == "run-9:1"
    assert isinstance(result["latency_ms"], int)
    assert result["client_order_id"] == "rb1-a"
    assert result["symbol"] == "AAPL"
    assert result["order_id"] == 101
    assert "error_class" not in result
    assert b.outcome is not None
    assert b.outcome.sequence_number == 2


@pytest.mark.parametrize(
    ("exc", "error_class"),
    [
        (OrderRejected(201, "margin", client_order_id="rb1-a"), "rejected"),
        (BrokerUnavailable("not connected"), "rejected"),
        (OutcomeUnknown("no ack", client_order_id="rb1-a"), "ambiguous"),
        (TimeoutError(), "ambiguous"),
        (ValueError("boom"), "ambiguous"),
    ],
)
async def test_exception_writes_failure_result_with_class_and_reraises(
    log_path: Path, exc: Exception, error_class: str
) -> None:
    """An exception leaves order_failed with the default error_class, type and message."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    with pytest.raises(type(exc)):
        async with log.bracket("place_order", INTENT):
            raise exc
    await log.aclose()
    intent, result = _rows(log_path)
    assert result["event"] == "order_failed"
    assert result["op_id"] == intent["op_id"]
    assert result["error_class"] == error_class
    assert result["error_type"] == type(exc).__name__
    assert result["error_message"] == str(exc)
    assert result["client_order_id"] == "rb1-a"


async def test_custom_classifier_decides_the_error_class(log_path: Path) -> None:
    """A classify callable overrides the default; an invalid answer falls back to ambiguous."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    with pytest.raises(ValueError, match="x"):
        async with log.bracket("cancel_order", INTENT, classify=lambda e: "rejected"):
            raise ValueError("x")
    with pytest.raises(ValueError, match="y"):
        async with log.bracket("cancel_order", INTENT, classify=lambda e: "maybe"):
            raise ValueError("y")
    await log.aclose()
    classes = [r.get("error_class") for r in _rows(log_path)]
    assert classes == [None, "rejected", None, "ambiguous"]


async def test_fail_after_timeout_leaves_intent_and_ambiguous_result(log_path: Path) -> None:
    """A fail_after expiring inside the body leaves an ambiguous result, never an intent alone."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        async with log.bracket("place_order", INTENT):
            await anyio.sleep_forever()
    await log.aclose()
    intent, result = _rows(log_path)
    assert intent["event"] == "order_intent"
    assert result["event"] == "order_failed"
    assert result["error_class"] == "ambiguous"
    assert result["op_id"] == intent["op_id"]


async def test_task_group_cancellation_leaves_ambiguous_result(log_path: Path) -> None:
    """Cancelling the enclosing task group mid-call writes the ambiguous result (shielded)."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    entered = anyio.Event()

    async def call() -> None:
        async with log.bracket("cancel_order", {**INTENT, "order_id": 101}):
            entered.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await entered.wait()
        tg.cancel_scope.cancel()
    await log.aclose()
    intent, result = _rows(log_path)
    assert (intent["event"], result["event"]) == ("cancel_intent", "cancel_result")
    assert result["error_class"] == "ambiguous"
    assert result["order_id"] == 101


async def test_bracket_entered_in_a_cancelled_scope_still_pairs(log_path: Path) -> None:
    """Entering in an already-cancelled scope writes the intent and an ambiguous result."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    with anyio.CancelScope() as scope:
        scope.cancel()
        async with log.bracket("place_order", INTENT):
            await anyio.lowlevel.checkpoint()
    await log.aclose()
    events = [(r["event"], r.get("error_class")) for r in _rows(log_path)]
    assert events == [("order_intent", None), ("order_failed", "ambiguous")]


async def test_body_never_runs_when_the_intent_write_fails(
    faulty_io: type, log_path: Path
) -> None:
    """If the intent cannot be made durable, AuditWriteError propagates and the body is skipped."""
    io = faulty_io(fail_op="sync", at=3, error=errno.ENOSPC)
    log = await AuditLog.open(log_path, run_id="r", config_hash="c", io=io)
    ran = []
    with pytest.raises(AuditWriteError):
        async with log.bracket("place_order", INTENT):
            ran.append(True)
    await log.aclose()
    assert ran == []
    io.power_loss()
    assert log_path.read_bytes() == b""


async def test_result_write_failure_surfaces_as_audit_write_error(
    faulty_io: type, log_path: Path
) -> None:
    """If the result cannot be written, AuditWriteError replaces the body's outcome."""
    io = faulty_io(fail_op="write", at=2, error=errno.EIO)
    log = await AuditLog.open(log_path, run_id="r", config_hash="c", io=io)
    with pytest.raises(AuditWriteError):
        async with log.bracket("place_order", INTENT) as b:
            b.result = {"order_id": 1}
    assert log.poisoned
    assert log.statistics().write_errors["order_submitted"] == 1
    await log.aclose()
    assert [r["event"] for r in _rows(log_path)] == ["order_intent"]


async def test_handled_failure_via_result_status(log_path: Path) -> None:
    """A body may record a failure it handled itself by setting result_status."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    async with log.bracket("place_order", INTENT) as b:
        b.result_status = "rejected"
        b.error_type = "RiskDenied"
        b.error_message = "over the limit"
    await log.aclose()
    result = _rows(log_path)[1]
    assert result["event"] == "order_failed"
    assert result["error_class"] == "rejected"
    assert result["error_type"] == "RiskDenied"


async def test_unencodable_result_still_closes_the_pair(log_path: Path) -> None:
    """A result that is not JSON is dropped with a note; the result record is still written."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    async with log.bracket("positions", {}) as b:
        b.result = {"positions": object()}
    await log.aclose()
    result = _rows(log_path)[1]
    assert result["event"] == "positions_result"
    assert "positions" not in result
    assert "cannot be written" in str(result["result_unrecorded"])


async def test_unknown_operation_is_refused_before_writing(log_path: Path) -> None:
    """An operation outside the pinned table raises and writes nothing."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    with pytest.raises(AuditPayloadError, match="unknown bracket operation"):
        async with log.bracket("transfer_funds", {}):
            pass
    await log.aclose()
    assert log_path.read_bytes() == b""


async def test_statistics_track_latency_and_failures_per_operation(log_path: Path) -> None:
    """Each bracket adds a latency sample and, on failure, a count under its error class."""
    log = await AuditLog.open(log_path, run_id="r", config_hash="c")
    async with log.bracket("quotes", {"symbols": ["AAPL"]}):
        pass
    for exc in (OrderRejected(201, "no"), OutcomeUnknown("lost"), OutcomeUnknown("lost")):
        with pytest.raises(type(exc)):
            async with log.bracket("place_order", INTENT):
                raise exc
    stats = log.statistics()
    await log.aclose()
    assert stats.operations["quotes"].latency.count == 1
    assert dict(stats.operations["quotes"].failures) == {}
    assert stats.operations["place_order"].latency.count == 3
    assert dict(stats.operations["place_order"].failures) == {"rejected": 1, "ambiguous": 2}
    assert stats.records_written == 8
    assert scan_log(log_path.read_bytes()).records == 8


async def test_op_ids_are_unique_across_runs_sharing_a_run_id(log_path: Path) -> None:
    """op_id embeds the intent's sequence number, so a resumed run never reuses one."""
    for _ in range(2):
        log = await AuditLog.open(log_path, run_id="same", config_hash="c")
        async with log, log.bracket("positions", {}):
            pass
    op_ids = [r["op_id"] for r in _rows(log_path) if str(r["event"]).endswith("_intent")]
    assert op_ids == ["same:1", "same:3"]
