"""The deterministic simulated broker, the product's embedded default.

- ``SimBroker(settings, account_id=..., client_id=..., clock=...)``: the ``Broker``
  implementation over a shared, locked state file (``brokers.sim.broker``);
- ``ManualClock`` / ``SystemClock``: its time sources (``brokers.sim.clock``);
- ``read_sim_state(path)``: read-only inspection, e.g. ``submissions(client_order_id)``.

The market and fill rules are in ``brokers.sim.market`` and ``brokers.sim.engine``; the
``[broker.sim]`` settings and the fault switches in ``brokers.sim.settings``.
"""

from brokers.sim.broker import SimBroker
from brokers.sim.clock import Clock, ManualClock, SystemClock
from brokers.sim.inspect import SimStateView, read_sim_state

__all__ = [
    "Clock",
    "ManualClock",
    "SimBroker",
    "SimStateView",
    "SystemClock",
    "read_sim_state",
]
