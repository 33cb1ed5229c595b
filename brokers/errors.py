"""Broker error hierarchy. The class says what the caller may safely do next.

- ``BrokerUnavailable``: the request did not take effect (not connected, timed out on a read,
  pacing). Reads may be retried; a *placement* raising it was never sent.
- ``OrderRejected``: the broker refused, definitively, with its code and text. Nothing to retry.
- ``OutcomeUnknown``: an order or cancel may or may not have reached the broker. Never retried
  blindly; resolve it by looking the ``client_order_id`` up at the broker.
- ``BrokerProtocolError``: the broker replied with something that cannot be understood.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error raised by a broker implementation."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached or did not answer; the request had no effect."""


class OrderRejected(BrokerError):
    """The broker definitively refused a request (order or cancel)."""

    def __init__(self, code: int, message: str, *, client_order_id: str | None = None) -> None:
        self.code = code
        self.message = message
        self.client_order_id = client_order_id
        subject = f" ({client_order_id})" if client_order_id else ""
        super().__init__(f"rejected{subject}: [{code}] {message}")


class OutcomeUnknown(BrokerError):
    """A request that changes broker state may or may not have taken effect."""

    def __init__(self, message: str, *, client_order_id: str | None = None) -> None:
        self.client_order_id = client_order_id
        self.message = message
        subject = f" ({client_order_id})" if client_order_id else ""
        super().__init__(f"outcome unknown{subject}: {message}")


class BrokerProtocolError(BrokerError):
    """The broker sent a reply that the adapter cannot translate (missing field, bad number)."""
