"""Several processes share one simulated broker through its state file."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from simkit import broker, order, settings

from brokers.errors import BrokerUnavailable, OrderRejected
from brokers.lookup import find_order
from brokers.sim import ManualClock, read_sim_state
from brokers.types import OrderStatus

SCRIPT = """
import sys
from decimal import Decimal
from pathlib import Path

import anyio

from brokers.sim import SimBroker
from brokers.sim.settings import SimSettings
from brokers.types import OrderRequest, Side

state, client_id, delay_ms, coid, limit, then = sys.argv[1:7]


async def main() -> None:
    cfg = SimSettings(state_file=Path(state), fill_delay_ms_min=int(delay_ms),
                      fill_delay_ms_max=int(delay_ms), exclusive_client_ids=True)
    b = SimBroker(cfg, account_id="DEMO1", client_id=int(client_id))
    await b.connect()
    if coid != "-":
        for one_coid, one_limit in zip(coid.split(","), limit.split(",")):
            ack = await b.place_order(OrderRequest(
                client_order_id=one_coid, account_id="DEMO1", symbol="AAPL", side=Side.BUY,
                quantity=5, limit_price=Decimal(one_limit)))
            print("ack", ack.order_id, ack.perm_id, flush=True)
    if then == "hang":
        await anyio.sleep(3600)
    elif then == "list":
        print("open", *sorted(o.client_order_id for o in await b.open_orders()), flush=True)
    await b.close()


anyio.run(main)
"""

SINCE = datetime.now(UTC) - timedelta(days=1)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the child process printed nothing in time"
    return proc.stdout.readline().strip()


def _run(*args: str) -> str:
    proc = _spawn(*args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


@pytest.mark.slow
async def test_two_processes_see_each_others_orders(tmp_path: Path) -> None:
    """An order placed by another process is visible here with that process's client id and
    cannot be cancelled from here; our order is visible to the other process."""
    state = tmp_path / "state.json"
    out = _run(str(state), "7", "100", "rb1-child", "150.00", "exit")
    assert out.startswith("ack 1 ")
    here = broker(settings(state), ManualClock(datetime.now(UTC)), client_id=1)
    await here.connect()
    (theirs,) = await here.open_orders()
    assert (theirs.client_order_id, theirs.client_id) == ("rb1-child", 7)
    with pytest.raises(OrderRejected) as info:
        await here.cancel_order(theirs.order_id)
    assert info.value.code == 10147
    await here.place_order(order("rb1-parent", limit="150.00"))
    listing = _run(str(state), "8", "100", "-", "0", "list")
    assert listing.split() == ["open", "rb1-child", "rb1-parent"]


@pytest.mark.slow
async def test_order_of_a_killed_process_keeps_filling(tmp_path: Path) -> None:
    """A process places two orders and is killed with SIGKILL: its client id is free again,
    the marketable order keeps filling on its schedule, and a new connection with the same
    client id finds both by client order id and may cancel the resting one."""
    state = tmp_path / "state.json"
    proc = _spawn(str(state), "3", "30000", "rb1-orphan,rb1-resting", "200.00,150.00", "hang")
    exclusive = replace(settings(state), exclusive_client_ids=True)
    try:
        assert _read_line(proc).startswith("ack 1 ")
        assert _read_line(proc).startswith("ack 2 ")
        with pytest.raises(BrokerUnavailable, match="326"):
            await broker(exclusive, ManualClock(datetime.now(UTC)), client_id=3).connect()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    clock = ManualClock(datetime.now(UTC))
    recovery = broker(exclusive, clock, client_id=3)
    await recovery.connect()
    working = await find_order(recovery, "rb1-orphan", since=SINCE)
    assert working is not None
    assert (working.status, working.client_id) == (OrderStatus.WORKING, 3)
    clock.advance(60)
    filled = await find_order(recovery, "rb1-orphan", since=SINCE)
    assert filled is not None
    assert (filled.status, filled.filled) == (OrderStatus.FILLED, 5)
    resting = await find_order(recovery, "rb1-resting", since=SINCE)
    assert resting is not None
    assert resting.status is OrderStatus.WORKING
    await recovery.cancel_order(resting.order_id)  # the same client id may cancel it
    cancelled = await find_order(recovery, "rb1-resting", since=SINCE)
    assert cancelled is not None
    assert cancelled.status is OrderStatus.CANCELLED
    view = read_sim_state(state)
    assert view is not None
    assert view.submissions("rb1-orphan") == 1
    assert view.resubmitted() == ()
