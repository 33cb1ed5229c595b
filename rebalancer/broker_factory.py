"""Build the configured broker: the one place that maps ``[broker] kind`` to an implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rebalancer.config import BrokerKind
from rebalancer.errors import RebalancerError

if TYPE_CHECKING:
    from brokers.base import Broker
    from brokers.sim.clock import Clock
    from rebalancer.config import Config


class BrokerNotAvailableError(RebalancerError):
    """The configured broker kind has no implementation in this build."""


def make_broker(cfg: Config, *, client_id: int | None = None, clock: Clock | None = None) -> Broker:
    """A new, not yet connected broker for ``cfg``.

    ``client_id`` defaults to ``[connection] client_id`` (the kill switch passes
    ``kill_client_id``); ``clock`` is used by the simulated broker only (tests).
    """
    chosen = cfg.connection.client_id if client_id is None else client_id
    if cfg.broker.kind is BrokerKind.SIM:
        from brokers.sim.broker import SimBroker

        return SimBroker(cfg.broker.sim, account_id=cfg.account.id, client_id=chosen, clock=clock)
    raise BrokerNotAvailableError(
        'the IB adapter is not available yet: set [broker] kind = "sim" in '
        f"{cfg.source or 'the config'}"
    )
