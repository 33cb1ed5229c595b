"""How the simulated broker's per-call cost grows with the history in its state file.

Run: ``python tests/bench/bench_sim_state.py``. Prints the median time of one read call
(``open_orders``: lock, parse, advance, no write) and one write call (``place_order``: the same
plus an fsynced atomic replace) on a fresh state and on a state holding N finished orders, and
the ratio of the two, measured in the same run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import anyio

from brokers.sim import ManualClock, SimBroker
from brokers.sim.settings import SimSettings
from brokers.types import OrderRequest, Side

HISTORY = (0, 100, 1000)
SAMPLES = 30


def _request(coid: str) -> OrderRequest:
    return OrderRequest(client_order_id=coid, account_id="DEMO1", symbol="AAPL", side=Side.BUY,
                        quantity=1, limit_price=Decimal("200.00"))


async def _measure(history: int, root: Path) -> tuple[float, float]:
    clock = ManualClock()
    broker = SimBroker(SimSettings(state_file=root / f"state-{history}.json"),
                       account_id="DEMO1", clock=clock)
    await broker.connect()
    for i in range(history):
        await broker.place_order(_request(f"hist-{i}"))
    clock.advance(5)
    await broker.open_orders()
    reads, writes = [], []
    for i in range(SAMPLES):
        start = time.perf_counter()
        await broker.open_orders()
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        await broker.place_order(_request(f"probe-{i}"))
        writes.append(time.perf_counter() - start)
    return statistics.median(reads), statistics.median(writes)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: await _measure(n, Path(tmp)) for n in HISTORY}
    base_read, base_write = results[0]
    print(f"{'finished orders':>16} {'read ms':>9} {'write ms':>9} {'read x':>7} {'write x':>8}")
    for n, (read, write) in results.items():
        print(f"{n:>16} {read * 1000:>9.2f} {write * 1000:>9.2f} "
              f"{read / base_read:>7.1f} {write / base_write:>8.1f}")


if __name__ == "__main__":
    anyio.run(main)
