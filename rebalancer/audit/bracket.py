"""The write-ahead bracket: a durable intent before a broker operation, its result after.

``async with log.bracket("place_order", intent) as b: b.result = {...}``

- Enter: the intent record (with a new ``op_id``) is appended and fdatasynced. If that fails,
  ``AuditWriteError`` propagates and the body never runs. The intent write is shielded from
  cancellation, so a bracket that was entered always gets a result record.
- Normal exit: the ok result record (``op_id``, ``latency_ms``, the intent's
  ``client_order_id``/``symbol``/``order_id``, then ``b.result``). A body may instead set
  ``b.result_status`` to ``"rejected"`` or ``"ambiguous"`` (with ``b.error_type`` and
  ``b.error_message``) to record a failure it handled itself.
- Exception: the failure result with ``error_class`` from ``classify`` (by default
  ``OrderRejected`` and ``BrokerUnavailable`` are ``"rejected"``, everything else
  ``"ambiguous"``), ``error_type`` and ``error_message``; the exception is re-raised.
- Cancellation (including an expired ``fail_after``): an ``"ambiguous"`` result is written in a
  shielded scope, then the cancellation propagates.
- A body that knows its broker request was never sent (e.g. it failed while waiting for the
  pacer) sets ``b.not_sent = True``: any failure is then recorded as ``"rejected"``, with
  ``not_sent: true``, since it certainly did not take effect.

The result write is shielded in every case. Latency and failure class go into the log's
``statistics()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final

import anyio

from brokers.errors import BrokerUnavailable, OrderRejected
from rebalancer.audit.errors import AuditPayloadError

if TYPE_CHECKING:
    from rebalancer.audit.records import AuditRecord
    from rebalancer.audit.writer import AuditLog

Classifier = Callable[[BaseException], str]
"""Maps an exception raised inside a bracket to ``"rejected"`` or ``"ambiguous"``."""

REJECTED: Final = "rejected"
"""Definitive: the operation did not take effect."""
AMBIGUOUS: Final = "ambiguous"
"""The outcome is unknown; resolve it at the broker, never retry blindly."""
ERROR_CLASSES: Final = frozenset({REJECTED, AMBIGUOUS})


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationEvents:
    """Event names of one bracketed operation."""

    intent: str
    ok: str
    failure: str


OPERATION_EVENTS: Final[Mapping[str, OperationEvents]] = MappingProxyType(
    {
        "account_summary": OperationEvents(
            intent="account_summary_intent",
            ok="account_summary_result",
            failure="account_summary_result",
        ),
        "positions": OperationEvents(
            intent="positions_intent", ok="positions_result", failure="positions_result"
        ),
        "quotes": OperationEvents(
            intent="quotes_intent", ok="quotes_result", failure="quotes_result"
        ),
        "place_order": OperationEvents(
            intent="order_intent", ok="order_submitted", failure="order_failed"
        ),
        "cancel_order": OperationEvents(
            intent="cancel_intent", ok="cancel_result", failure="cancel_result"
        ),
        "open_orders": OperationEvents(
            intent="open_orders_intent", ok="open_orders_result", failure="open_orders_result"
        ),
        "completed_orders": OperationEvents(
            intent="completed_orders_intent",
            ok="completed_orders_result",
            failure="completed_orders_result",
        ),
        "executions": OperationEvents(
            intent="executions_intent", ok="executions_result", failure="executions_result"
        ),
    }
)
"""The pinned operation → event table (team brief)."""

KEY_FIELDS: Final = ("client_order_id", "symbol", "order_id")
"""Intent fields copied onto the result record."""


def default_classify(exc: BaseException) -> str:
    """``OrderRejected`` and ``BrokerUnavailable`` are definitive; anything else is ambiguous."""
    if isinstance(exc, OrderRejected | BrokerUnavailable):
        return REJECTED
    return AMBIGUOUS


class Bracket:
    """The handle a bracket body gets: set ``result`` (and optionally a failure status)."""

    __slots__ = (
        "error_message",
        "error_type",
        "intent",
        "not_sent",
        "op_id",
        "operation",
        "outcome",
        "result",
        "result_status",
    )

    def __init__(self, *, operation: str, intent: AuditRecord) -> None:
        """Internal: made by ``AuditLog.bracket``."""
        self.operation = operation
        self.intent = intent
        """The durable intent record."""
        self.op_id: str = intent.record["op_id"]
        self.result: Mapping[str, Any] | None = None
        """Payload of the ok result record (set it in the body)."""
        self.result_status: str | None = None
        """``None``/``"ok"``, or ``"rejected"``/``"ambiguous"`` for a failure the body handled."""
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.outcome: AuditRecord | None = None
        """The durable result record, once the bracket has exited."""
        self.not_sent = False
        """Set when the broker request was certainly never sent: a failure is then definitive."""


class _BracketContext:
    """The async context manager behind ``AuditLog.bracket``."""

    def __init__(
        self,
        log: AuditLog,
        operation: str,
        intent: Mapping[str, Any],
        classify: Classifier | None,
    ) -> None:
        events = OPERATION_EVENTS.get(operation)
        if events is None:
            raise AuditPayloadError(
                f"unknown bracket operation {operation!r}; known: {', '.join(OPERATION_EVENTS)}"
            )
        self._log = log
        self._operation = operation
        self._events = events
        self._intent = intent
        self._classify = classify if classify is not None else default_classify
        self._bracket: Bracket | None = None
        self._started = 0.0

    async def __aenter__(self) -> Bracket:
        # Shielded: once the intent is durable the body (and so the result write) must follow.
        with anyio.CancelScope(shield=True):
            record = await self._log._append(self._events.intent, self._intent, op_id=True)
        self._bracket = Bracket(operation=self._operation, intent=record)
        self._started = time.monotonic()
        return self._bracket

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        bracket = self._bracket
        assert bracket is not None  # __aexit__ only runs after __aenter__
        latency_ms = int((time.monotonic() - self._started) * 1000)
        intent = bracket.intent.record
        payload: dict[str, Any] = {k: intent[k] for k in KEY_FIELDS if k in intent}
        error_class: str | None = None
        if exc is None and bracket.result_status in (None, "ok"):
            event = self._events.ok
            if bracket.result:
                payload.update(bracket.result)
        else:
            event = self._events.failure
            if bracket.result:
                payload.update(bracket.result)
            if exc is None:
                error_class = _checked_class(bracket.result_status)
                error_type = bracket.error_type or "Failure"
                message = bracket.error_message or ""
            elif isinstance(exc, anyio.get_cancelled_exc_class()):
                error_class = AMBIGUOUS
                error_type = type(exc).__name__
                message = "cancelled (timeout or shutdown) before the outcome was known"
            else:
                error_class = self._safe_classify(exc)
                error_type = type(exc).__name__
                message = str(exc)
            if bracket.not_sent:
                error_class = REJECTED
                payload["not_sent"] = True
            payload.update(error_class=error_class, error_type=error_type, error_message=message)
        payload.update(op_id=bracket.op_id, latency_ms=latency_ms)
        with anyio.CancelScope(shield=True):
            try:
                bracket.outcome = await self._log._append(event, payload, op_id=False)
            except AuditPayloadError as bad:
                # The body's result cannot be encoded: still close the pair, without it.
                fallback = {k: v for k, v in payload.items() if k not in (bracket.result or {})}
                fallback.update(op_id=bracket.op_id, result_unrecorded=str(bad))
                for key in ("error_class", "error_type", "error_message"):
                    if key in payload:
                        fallback[key] = payload[key]
                bracket.outcome = await self._log._append(event, fallback, op_id=False)
        self._log.note_operation(self._operation, float(latency_ms), error_class)

    def _safe_classify(self, exc: BaseException) -> str:
        try:
            return _checked_class(self._classify(exc))
        except Exception:  # A broken classifier must not hide the operation's outcome.
            return AMBIGUOUS


def _checked_class(value: str | None) -> str:
    if value is not None and value in ERROR_CLASSES:
        return value
    return AMBIGUOUS


def open_bracket(
    log: AuditLog,
    operation: str,
    intent: Mapping[str, Any],
    *,
    classify: Classifier | None = None,
) -> _BracketContext:
    """Build the bracket context manager (``AuditLog.bracket`` calls this)."""
    return _BracketContext(log, operation, intent, classify)
