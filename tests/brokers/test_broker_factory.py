"""``make_broker``: the configured implementation with the right account and client id."""

from __future__ import annotations

from pathlib import Path

import pytest

from brokers.base import Broker
from brokers.sim import ManualClock, SimBroker
from rebalancer.broker_factory import make_broker
from rebalancer.config import parse_config
from rebalancer.errors import RebalancerError
from rebalancer.exit_codes import ExitCode


def test_sim_broker_uses_the_config_client_id_unless_overridden(tmp_path: Path) -> None:
    """The default client id is ``[connection] client_id``; an explicit one (even 0) wins."""
    cfg = parse_config(
        {"account": {"id": "DU7"}, "connection": {"client_id": 12, "kill_client_id": 0}},
        base_dir=tmp_path,
    )
    default = make_broker(cfg)
    kill = make_broker(cfg, client_id=cfg.connection.kill_client_id, clock=ManualClock())
    assert isinstance(default, SimBroker)
    assert isinstance(default, Broker)
    assert default.client_id == 12
    assert kill.client_id == 0
    assert default.state_file == tmp_path.parent / "var" / "sim" / "state.json"


async def test_sim_broker_from_config_trades_the_configured_account(tmp_path: Path) -> None:
    """The simulated broker built from a config reports the config's account id."""
    cfg = parse_config(
        {"account": {"id": "DU7"}, "broker": {"sim": {"state_file": "s.json"}}},
        base_dir=tmp_path,
    )
    broker = make_broker(cfg, clock=ManualClock())
    await broker.connect()
    assert (await broker.account_summary()).account_id == "DU7"


def test_ib_kind_raises_a_clear_error(tmp_path: Path) -> None:
    """``kind = "ib"`` is refused with a RebalancerError saying the adapter is missing."""
    cfg = parse_config({"account": {"id": "DU7"}, "broker": {"kind": "ib"}}, base_dir=tmp_path)
    with pytest.raises(RebalancerError, match="IB adapter is not available yet") as info:
        make_broker(cfg)
    assert info.value.exit_code == ExitCode.ERROR
