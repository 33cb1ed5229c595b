"""Read-only inspection of a simulated broker's state file, for tests and operators.

``read_sim_state(path)`` returns what is stored, without advancing the simulation (orders whose
fills are due but not yet materialised show as they were last written; any broker call
materialises them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from brokers.sim import views
from brokers.sim.state import SimState
from brokers.sim.store import StateStore

if TYPE_CHECKING:
    from decimal import Decimal
    from pathlib import Path

    from brokers.types import Execution, OrderSnapshot, Position


@dataclass(frozen=True, slots=True)
class SimStateView:
    """A snapshot of the state file."""

    state: SimState

    def submissions(self, client_order_id: str) -> int:
        """How many times an order with this ``client_order_id`` reached the broker (rejected
        ones included; requests that failed before being sent are not counted)."""
        return self.state.submissions.get(client_order_id, 0)

    def all_submissions(self) -> dict[str, int]:
        """Submission count of every ``client_order_id`` ever sent."""
        return dict(self.state.submissions)

    def resubmitted(self) -> tuple[str, ...]:
        """Every ``client_order_id`` that reached the broker more than once (should be none)."""
        return tuple(sorted(k for k, n in self.state.submissions.items() if n > 1))

    def orders(self, client_order_id: str | None = None) -> tuple[OrderSnapshot, ...]:
        """All orders (open and terminal), optionally only those with one client order id."""
        return tuple(
            views.snapshot(o)
            for o in self.state.orders
            if client_order_id is None or o.client_order_id == client_order_id
        )

    def executions(self) -> tuple[Execution, ...]:
        """Every execution, in order."""
        return views.executions(self.state, 0)

    def positions(self) -> tuple[Position, ...]:
        """Stored positions."""
        return views.positions(self.state)

    @property
    def cash(self) -> Decimal:
        """Stored cash balance."""
        return self.state.cash


def read_sim_state(path: Path) -> SimStateView | None:
    """The stored state of a simulated broker, or ``None`` when the file does not exist."""
    state = StateStore(path).read()
    return None if state is None else SimStateView(state)
