"""The contract checks fail against brokers that break the contract (the suite has teeth)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from broker_contract import (
    ContractEnv,
    check_cancel_scoped_to_client,
    check_marketable_order_fills,
    check_quotes,
    check_updates_do_not_replay_history,
)

from brokers.errors import OrderRejected
from brokers.sim import ManualClock, SimBroker
from brokers.sim.settings import SimSettings
from brokers.types import Execution, OrderUpdate, Quote


class _ReversedQuotes(SimBroker):
    """Answers quotes in the wrong order."""

    async def quotes(self, symbols: Sequence[str]) -> tuple[Quote, ...]:
        return tuple(reversed(await super().quotes(symbols)))


class _SilentCancel(SimBroker):
    """Pretends every cancel was accepted, even another client's."""

    async def cancel_order(self, order_id: int) -> None:
        with contextlib.suppress(OrderRejected):
            await super().cancel_order(order_id)


class _DoubleCountedFills(SimBroker):
    """Reports every execution twice with different exec ids."""

    async def executions(self, since: object) -> tuple[Execution, ...]:  # type: ignore[override]
        fills = await super().executions(since)  # type: ignore[arg-type]
        from dataclasses import replace

        return fills + tuple(replace(e, exec_id=e.exec_id + ".dup") for e in fills)


class _ReplayingUpdates(SimBroker):
    """Every new update iterator first replays every status this account ever had."""

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        async def replay() -> AsyncIterator[OrderUpdate]:
            for order in await self.completed_orders(datetime(2000, 1, 1, tzinfo=UTC)):
                yield OrderUpdate(
                    client_order_id=order.client_order_id, order_id=order.order_id,
                    perm_id=order.perm_id, status=order.status, filled=order.filled,
                    remaining=order.remaining, avg_fill_price=order.avg_fill_price,
                    time=order.updated_at)
            async for update in super(_ReplayingUpdates, self).order_updates():
                yield update

        return replay()


def _env(tmp_path: Path, cls: type[SimBroker]) -> ContractEnv:
    settings = SimSettings(state_file=tmp_path / "state.json")
    clock = ManualClock()

    def factory(client_id: int):  # type: ignore[no-untyped-def]
        async def make() -> SimBroker:
            return cls(settings, account_id="DEMO1", client_id=client_id, clock=clock,
                       poll_interval=0.002)

        return make

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    return ContractEnv(make_broker=factory(1), make_other_client=factory(2), advance=advance,
                       account_id="DEMO1", update_timeout_secs=2)


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (_ReversedQuotes, check_quotes),
        (_SilentCancel, check_cancel_scoped_to_client),
        (_DoubleCountedFills, check_marketable_order_fills),
        (_ReplayingUpdates, check_updates_do_not_replay_history),
    ],
    ids=["quote-order", "cancel-scope", "double-fills", "replayed-history"],
)
async def test_contract_rejects_a_broken_broker(tmp_path: Path, cls: type[SimBroker],
                                                check: object) -> None:
    """Each deliberately broken broker fails the check written for that rule."""
    with pytest.raises(AssertionError):
        await check(_env(tmp_path, cls))  # type: ignore[operator]
