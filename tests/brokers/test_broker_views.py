"""The read-only commands ``status`` and ``positions``, through the real entry point."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from simkit import order

from brokers.sim import SimBroker
from rebalancer.cli.main import main
from rebalancer.config import load_config
from rebalancer.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, extra: str = "", kind: str = "sim") -> Path:
    path = tmp_path / "configs" / "sim.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[account]\nid = "DEMO1"\n\n[broker]\nkind = "{kind}"\n\n'
        f'[broker.sim]\nstate_file = "../var/sim/state.json"\n{extra}\n'
    )
    return path


def test_status_on_a_fresh_copy_of_the_demo_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status --config configs/sim.toml`` works on a fresh checkout: var/ is created."""
    shutil.copytree(REPO / "configs", tmp_path / "configs",
                    ignore=shutil.ignore_patterns("*.json"))
    assert not (tmp_path / "var").exists()
    code = main(["status", "--config", str(tmp_path / "configs" / "sim.toml")])
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert "sim: reachable" in out
    assert "DEMO1 (USD)" in out
    assert "net liq      250,855.00" in out
    assert "0 of ours, 0 others" in out
    assert (tmp_path / "var" / "sim" / "state.json").is_file()


def test_status_json_lists_only_our_open_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status --json`` reports the account and our open orders (prefix rb1-) only."""
    cfg_path = _config(tmp_path)
    cfg = load_config(cfg_path)

    async def place_two() -> None:
        b = SimBroker(cfg.broker.sim, account_id="DEMO1", client_id=4)
        await b.connect()
        await b.place_order(order("rb1-ours", limit="150.00"))
        await b.place_order(order("manual-1", limit="150.00"))

    anyio.run(place_two)
    code = main(["status", "--json", "--config", str(cfg_path)])
    doc = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert doc["broker"] == {"kind": "sim", "client_id": 2, "reachable": True}
    assert doc["account"]["id"] == "DEMO1"
    assert Decimal(doc["account"]["net_liquidation"]) == Decimal("250855.00")
    assert [o["client_order_id"] for o in doc["open_orders"]] == ["rb1-ours"]
    assert doc["open_orders"][0]["client_id"] == 4
    assert doc["open_orders"][0]["status"] == "working"
    assert doc["other_open_orders"] == 1


def test_positions_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``positions`` prints one row per holding with market value and weight; ``--json``
    carries the same figures as decimal strings."""
    cfg_path = _config(tmp_path)
    assert main(["positions", "--config", str(cfg_path)]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["SYMBOL", "QUANTITY", "AVG", "COST", "MKT", "VALUE", "WEIGHT"]
    assert lines[2].split() == ["AAPL", "110", "172.40", "20,900.00", "8.33%"]
    assert lines[-1].split() == ["CASH", "40,000.00"]
    assert len(lines) == 13
    assert main(["positions", "--json", "--config", str(cfg_path)]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["net_liquidation"] == "250855.00"
    first = doc["positions"][0]
    assert first == {
        "symbol": "AAPL",
        "quantity": 110,
        "avg_cost": "172.40",
        "market_price": "190.0000",
        "market_value": "20900.00",
        "weight": "0.0833",
    }
    assert len(doc["positions"]) == 10


@pytest.mark.parametrize("command", ["status", "positions"])
def test_unreachable_broker_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """When the broker cannot be reached the command says so on stderr and exits ERROR."""
    (tmp_path / "var").write_text("a file where the state directory should be")
    cfg_path = _config(tmp_path)
    code = main([command, "--config", str(cfg_path)])
    captured = capsys.readouterr()
    assert code == ExitCode.ERROR
    assert captured.err.startswith("broker unreachable (sim): simulated broker state ")
    # status still reports what it knows without the broker (runner, latch, last run).
    expected_out = {"status": "runner ", "positions": ""}[command]
    assert captured.out.startswith(expected_out)
    assert (captured.out == "") == (command == "positions")


def test_unreachable_status_json_still_prints_a_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status --json`` with no broker prints reachable=false with the reason, exit ERROR."""
    (tmp_path / "var").write_text("not a directory")
    code = main(["status", "--json", "--config", str(_config(tmp_path))])
    doc = json.loads(capsys.readouterr().out)
    assert code == ExitCode.ERROR
    assert doc["broker"]["reachable"] is False
    assert "simulated broker state" in doc["broker"]["error"]


def test_ib_kind_is_refused_until_the_adapter_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``kind = "ib"`` the command says the IB adapter is not available and exits ERROR."""
    code = main(["status", "--config", str(_config(tmp_path, kind="ib"))])
    err = capsys.readouterr().err
    assert code == ExitCode.ERROR
    assert "the IB adapter is not available yet" in err
