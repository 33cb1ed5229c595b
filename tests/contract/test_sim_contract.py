"""The simulated broker passes the broker contract, under several market settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from broker_contract import ALL_CHECKS, ContractEnv, MakeBroker, check_broker

from brokers.sim import ManualClock, SimBroker
from brokers.sim.settings import SimSettings

VARIANTS = {
    "quick": {},
    "slow-partial": {"fill_delay_ms_min": 5000, "fill_delay_ms_max": 30000, "partial_fills": 4},
    "cancel-delay": {"cancel_delay_ms": 1500, "partial_fills": 2},
    "drifting": {"drift_bps": 30, "drift_interval_ms": 1000, "seed": 99},
}


def _factory(settings: SimSettings, clock: ManualClock, client_id: int) -> MakeBroker:
    async def make() -> SimBroker:
        return SimBroker(
            settings, account_id="DEMO1", client_id=client_id, clock=clock, poll_interval=0.002
        )

    return make


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_sim_broker_passes_the_contract(tmp_path: Path, variant: str) -> None:
    """Every contract check passes against the simulated broker driven by a manual clock."""
    settings = SimSettings(state_file=tmp_path / "state.json", **VARIANTS[variant])  # type: ignore[arg-type]
    clock = ManualClock()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    await check_broker(
        _factory(settings, clock, 1),
        advance=advance,
        account_id="DEMO1",
        make_other_client=_factory(settings, clock, 2),
    )


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
async def test_each_contract_check_alone(tmp_path: Path, check: object) -> None:
    """Each check also passes on a fresh state file, independently of the others."""
    settings = SimSettings(state_file=tmp_path / "state.json")
    clock = ManualClock()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    env = ContractEnv(
        make_broker=_factory(settings, clock, 1),
        make_other_client=_factory(settings, clock, 2),
        advance=advance,
        account_id="DEMO1",
    )
    await check(env)  # type: ignore[operator]
