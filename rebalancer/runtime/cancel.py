"""The shared cancel path: cancel intent → cancel → verified result.

The runner (order timeout, graceful stop) and the kill switch cancel orders through this one
function. The cancel request itself is bracketed by the audit gateway (``cancel_intent`` /
``cancel_result``); the order's fate is then verified by looking its ``client_order_id`` up at
the broker with tenacity backoff until it is terminal or the deadline passes. A cancel the
broker refuses (for instance because the order filled in the meantime) is not an error by
itself: the verification says what really happened.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import structlog
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_exponential,
)

from brokers.errors import BrokerError, BrokerUnavailable, OrderRejected, OutcomeUnknown
from brokers.lookup import find_order
from brokers.types import OrderSnapshot, OrderStatus

if TYPE_CHECKING:
    from datetime import datetime

    from rebalancer.audit.gateway import AuditedBroker

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOutcome:
    """What the shared cancel path established about one order."""

    client_order_id: str
    order_id: int
    request_error: str | None
    """Why the broker refused or lost the cancel request, if it did."""
    final: OrderSnapshot | None
    """The order as last seen at the broker (terminal when ``verified``)."""

    @property
    def verified(self) -> bool:
        """True when the order was seen in a terminal state after the request."""
        return self.final is not None and self.final.status.is_terminal

    @property
    def filled(self) -> int:
        """Shares filled in total, as last seen."""
        return 0 if self.final is None else self.final.filled

    @property
    def still_open(self) -> bool:
        """True when the order may still be working at the broker."""
        return not self.verified


async def cancel_order_verified(
    gateway: AuditedBroker,
    *,
    order_id: int,
    client_order_id: str,
    symbol: str,
    reason: str,
    since: datetime,
    timeout_secs: float,
) -> CancelOutcome:
    """Cancel one order and verify at the broker that it reached a terminal state.

    Never raises a broker error: every outcome, including "could not verify", is returned.
    Audit write errors do propagate (they are fail-stop).
    """
    request_error: str | None = None
    with anyio.CancelScope(shield=True):
        try:
            with anyio.fail_after(timeout_secs):
                await gateway.cancel_order(
                    order_id, client_order_id=client_order_id, symbol=symbol, reason=reason
                )
        except OrderRejected as exc:
            request_error = f"cancel refused: [{exc.code}] {exc.message}"
        except (OutcomeUnknown, BrokerUnavailable, TimeoutError) as exc:
            request_error = f"cancel not confirmed: {exc or type(exc).__name__}"
        final = await _verify_terminal(gateway, client_order_id, since, timeout_secs)
    if final is None or not final.status.is_terminal:
        log.warning(
            "cancel_unverified", client_order_id=client_order_id, order_id=order_id, reason=reason
        )
    return CancelOutcome(
        client_order_id=client_order_id, order_id=order_id, request_error=request_error, final=final
    )


def _not_terminal(snapshot: OrderSnapshot | None) -> bool:
    return snapshot is None or snapshot.status not in _TERMINAL


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})


async def _verify_terminal(
    gateway: AuditedBroker, client_order_id: str, since: datetime, timeout_secs: float
) -> OrderSnapshot | None:
    """Look the order up until it is terminal; the last snapshot seen (or ``None``)."""
    last: OrderSnapshot | None = None

    async def probe() -> OrderSnapshot | None:
        nonlocal last
        with anyio.fail_after(timeout_secs):
            last = await find_order(gateway, client_order_id, since=since)
        return last

    retrying = AsyncRetrying(
        retry=retry_if_result(_not_terminal) | retry_if_exception_type((BrokerError, TimeoutError)),
        stop=stop_after_delay(timeout_secs),
        wait=wait_exponential(multiplier=0.1, min=0.05, max=2.0),
        sleep=anyio.sleep,
    )
    with contextlib.suppress(RetryError):
        await retrying(probe)
    return last
