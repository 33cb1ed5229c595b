"""Benchmark: a 50-order basket on the simulated broker, ours against its lower bound and the
ancestor's one-order-at-a-time model, measured in the same run.

Run: ``python tests/bench/bench_run.py [--orders N] [--in-flight K] [--dir DIR]``. Not collected
by pytest. In a temporary directory it writes a config whose simulated market has ``N``
synthetic symbols (no demo universe, no starting positions, $5,000,000 cash), acknowledgements
after 30 ms and fills spread over 0.5-3 s in up to two parts, and a target with equal weights
over every symbol, so the plan is ``N`` buys. Then:

1. **ours**: ``run_rebalance`` in-process (the real pipeline: reads, diff, risk, concurrent
   orders up to ``max_in_flight`` through the audited gateway and the shared token bucket,
   reconciliation, validation of the log). Wall clock from the call to its return.
2. **fsync floor**: ``os.write`` + ``os.fdatasync`` of a line the size of an average record of
   run 1, in the audit directory, sampled before and after step 3; the p50 of both samples.
3. **sequential** (the ancestor's model), on a fresh state file of the same market and a second
   log file in the same directory: the same reads, then the same orders one at a time through
   the same ``AuditedBroker`` + ``AuditLog`` (place, wait until the order is terminal or timed
   out, pause 100 ms, next), the same fill/status records, the same closing reads.

Lower bound of run 1 = messages ÷ pacing rate + the slowest fill + records × fsync p50, where
messages are the run's ``*_intent`` records (one per broker request), the slowest fill is the
largest (last execution − placement) over its orders in the simulator's state, and records are
all records the run wrote. Printed: that bound, the wall times and the ratios
``ours / lower bound`` and ``sequential / ours``.

The bound is the issue's formula, a sum of terms that in fact overlap (requests are paced while
earlier orders wait for fills, and the bucket starts with a burst), so with ``--in-flight`` at
or above ``--orders`` the ratio can dip just below 1. With fewer slots than orders, each slot is
held until its order is terminal, so the orders run in about ``orders / max_in_flight`` waves.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from brokers.sim.broker import SimBroker
from brokers.sim.inspect import read_sim_state
from brokers.types import OrderRequest, OrderStatus, OrderUpdate, TimeInForce
from rebalancer.audit.gateway import AuditedBroker
from rebalancer.audit.validate import validate_file
from rebalancer.audit.writer import AuditLog
from rebalancer.broker_factory import make_broker
from rebalancer.config import Config, LogFormat, load_config
from rebalancer.logsetup import configure_logging
from rebalancer.model import PlannedOrder
from rebalancer.runtime.orders import StopRequest
from rebalancer.runtime.pacing import TokenBucket
from rebalancer.runtime.report import ConsoleUI
from rebalancer.runtime.run import RunOutcome, RunRequest, run_rebalance

ACK_LATENCY_MS = 30
FILL_MS_MIN = 500
FILL_MS_MAX = 3000
PARTIAL_FILLS = 2
ORDER_TIMEOUT_SECS = 60
SEQUENTIAL_PAUSE_SECS = 0.1
RUN_LIMIT_SECS = 150.0
"""Bound on run 1 as a whole (its own timeouts end it far earlier)."""
FSYNC_SAMPLES = 300

CONFIG = """\
[account]
id = "BENCH1"
type = "cash"

[broker]
kind = "sim"

[broker.sim]
seed = 11
state_file = "state/ours.json"
starting_cash = 5000000
builtin_universe = false
positions = []
fill_delay_ms_min = {fill_min}
fill_delay_ms_max = {fill_max}
partial_fills = {partial_fills}
drift_bps = 0

[broker.sim.faults]
ack_latency_ms = {ack_ms}

{symbols}
[execution]
order_timeout_secs = {order_timeout}
ack_timeout_secs = 5
request_timeout_secs = 10
cancel_timeout_secs = 10
max_orders_per_run = {max_orders}
max_in_flight = {in_flight}

[risk]
max_position_pct = {max_position}
max_trade_usd = 1000000
min_trade_usd = 100

[quotes]
staleness_secs = 60

[audit]
dir = "audit"
file = "ours.jsonl"

[logging]
level = "warning"
"""


def _symbols(n: int) -> list[tuple[str, Decimal]]:
    """``n`` synthetic tickers with prices spread between about $12 and $900."""
    out = []
    for i in range(n):
        price = Decimal(12 + (i * 137) % 889) + Decimal(i % 100) / 100
        out.append((f"BX{i:02d}", price))
    return out


def _write_env(root: Path, n: int, in_flight: int) -> tuple[Path, Path]:
    symbols = _symbols(n)
    # Equal weights summing to 0.95 (cash left for costs), rounded down to 1/10,000.
    weight = (Decimal("0.95") / n).quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
    tables = "".join(f"[broker.sim.symbols.{s}]\nprice = {p}\n\n" for s, p in symbols)
    config = root / "config.toml"
    config.write_text(CONFIG.format(
        fill_min=FILL_MS_MIN, fill_max=FILL_MS_MAX, partial_fills=PARTIAL_FILLS,
        ack_ms=ACK_LATENCY_MS, symbols=tables, order_timeout=ORDER_TIMEOUT_SECS,
        max_orders=max(n, 1), in_flight=in_flight, max_position=min(weight * 2, Decimal(1)),
    ))
    target = root / "target.json"
    target.write_text(json.dumps({
        "metadata": {"id": "bench-basket"},
        "targets": [{"symbol": s, "weight": float(weight)} for s, _ in symbols],
    }))
    return config, target


def _records(path: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_bytes().splitlines() if line]
    return [r for r in rows if run_id is None or r.get("run_id") == run_id]


def _slowest_fill(state_file: Path) -> float:
    """Largest (last execution − placement) over the orders in a sim state file, seconds."""
    view = read_sim_state(state_file)
    if view is None:
        raise SystemExit(f"no simulator state at {state_file}")
    placed = {o.perm_id: o.placed_us for o in view.state.orders}
    last: dict[int, int] = {}
    for e in view.state.executions:
        last[e.perm_id] = max(last.get(e.perm_id, 0), e.time_us)
    if not last:
        return 0.0
    return max(t - placed[p] for p, t in last.items()) / 1e6


def _fsync_samples(directory: Path, size: int, samples: int) -> list[float]:
    """Seconds of each ``os.write`` of ``size`` bytes + ``os.fdatasync``, in ``directory``."""
    line = b"x" * max(size - 1, 0) + b"\n"
    path = directory / "fsync-probe.jsonl"
    times: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        for _ in range(samples):
            t0 = time.perf_counter()
            if os.write(fd, line) != len(line):
                raise OSError("short write")
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return times


# -- run 1: the real pipeline ------------------------------------------------------------------


async def _ours(cfg: Config, target: Path) -> tuple[float, RunOutcome]:
    ui = ConsoleUI(quiet=True, stdin=io.StringIO())
    t0 = time.perf_counter()
    with anyio.fail_after(RUN_LIMIT_SECS):
        outcome = await run_rebalance(cfg, RunRequest(target_path=target, yes=True), ui=ui,
                                      stop=StopRequest(), broker_factory=make_broker)
    return time.perf_counter() - t0, outcome


# -- run 2: the ancestor's model ---------------------------------------------------------------


@dataclass(kw_only=True)
class _Seq:
    """Bookkeeping of the sequential run."""

    done: dict[str, anyio.Event]
    filled: dict[str, int]
    seen: set[str]
    timeouts: int = 0


async def _pump(gw: AuditedBroker, log: AuditLog, orders: dict[str, PlannedOrder],
                book: _Seq) -> None:
    """Record fills and terminal statuses, as our runtime does, and wake the waiting order."""
    update: OrderUpdate
    async for update in gw.order_updates():
        order = orders.get(update.client_order_id)
        if order is None:
            continue
        cid = order.client_order_id
        ex = update.execution
        if ex is not None and ex.exec_id not in book.seen:
            book.seen.add(ex.exec_id)
            book.filled[cid] = book.filled.get(cid, 0) + ex.quantity
            await log.append("order_filled", {
                "client_order_id": cid, "symbol": order.symbol, "order_id": update.order_id,
                "exec_id": ex.exec_id, "shares": ex.quantity, "price": str(ex.price),
                "cumulative_filled": book.filled[cid],
                "status": "Filled" if book.filled[cid] >= order.quantity else "PartialFill",
            })
        event = book.done.get(cid)
        if update.status.is_terminal and event is not None and not event.is_set():
            await log.append("order_status", {
                "client_order_id": cid, "symbol": order.symbol, "order_id": update.order_id,
                "status": update.status.value, "filled": update.filled,
                "remaining": update.remaining, "source": "update",
            })
            event.set()


async def _reads(gw: AuditedBroker, symbols: Sequence[str]) -> None:
    with anyio.fail_after(30):
        await gw.account_summary()
        await gw.positions()
        await gw.quotes(symbols)


_HEADER = frozenset({"event", "ts", "sequence_number", "run_id", "config_hash", "prev_hash",
                     "hash", "op_id"})


def _payloads(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Payload of the last record of each event, header keys removed."""
    return {r["event"]: {k: v for k, v in r.items() if k not in _HEADER} for r in records}


async def _sequential(cfg: Config, orders: Sequence[PlannedOrder], state_file: Path,
                      log_path: Path, copied: dict[str, dict[str, Any]]
                      ) -> tuple[float, int, _Seq]:
    """One order at a time through the audited gateway; wall seconds, records written.

    ``copied``: run 1's payloads of the unbracketed records (plan, risk, reconciliation), written
    again here so that both runs write the same records.
    """
    book = _Seq(done={}, filled={}, seen=set())
    by_id = {o.client_order_id: o for o in orders}
    symbols = [o.symbol for o in orders]
    broker = SimBroker(cfg.broker.sim, account_id=cfg.account.id,
                       client_id=cfg.connection.client_id, state_file=state_file)
    t0 = time.perf_counter()
    log = await AuditLog.open(log_path, run_id="sequential", config_hash=cfg.config_hash)
    bucket = TokenBucket.for_rate(float(cfg.execution.messages_per_second))
    gw = AuditedBroker(broker, log, pacer=bucket.acquire)
    try:
        with anyio.fail_after(10):
            await gw.connect()
        await log.append("run_started", {"target_file": "-", "account": cfg.account.id,
                                         "window_id": "sequential", "mode": "live"})
        await _reads(gw, symbols)
        await log.append("diff_computed", copied["diff_computed"])
        await log.append("risk_check_passed", copied["risk_check_passed"])
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump, gw, log, by_id, book)
            for order in orders:
                cid = order.client_order_id
                done = book.done[cid] = anyio.Event()
                request = OrderRequest(
                    client_order_id=cid, account_id=cfg.account.id, symbol=order.symbol,
                    side=order.side, quantity=order.quantity, limit_price=order.limit_price,
                    time_in_force=TimeInForce.DAY,
                )
                with anyio.fail_after(float(cfg.execution.ack_timeout_secs)):
                    ack = await gw.place_order(request, action=order.action.value)
                if ack.status is not OrderStatus.REJECTED:
                    with anyio.move_on_after(float(cfg.execution.order_timeout_secs)):
                        await done.wait()
                    if not done.is_set():
                        book.timeouts += 1
                        await gw.cancel_order(ack.order_id, client_order_id=cid,
                                              symbol=order.symbol, reason="order_timeout")
                        with anyio.move_on_after(float(cfg.execution.cancel_timeout_secs)):
                            await done.wait()
                await anyio.sleep(SEQUENTIAL_PAUSE_SECS)
            tg.cancel_scope.cancel()
        await _reads(gw, symbols)
        await log.append("reconcile_completed", copied["reconcile_completed"])
        await log.append("run_completed", {
            "status": "completed", "submitted": len(orders),
            "filled": sum(1 for o in orders if book.filled.get(o.client_order_id, 0)
                          >= o.quantity),
            "partially_filled": 0, "cancelled": book.timeouts, "failed": 0,
        })
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await gw.close()
            await log.aclose()
    wall = time.perf_counter() - t0
    return wall, len(_records(log_path)), book


# -- driver ------------------------------------------------------------------------------------


async def _main(root: Path, n: int, in_flight: int) -> None:
    config_path, target_path = _write_env(root, n, in_flight)
    cfg = load_config(config_path)
    rate = float(cfg.execution.messages_per_second)
    print(f"orders {n}, max_in_flight {cfg.execution.max_in_flight}, pacing {rate:g} msg/s, "
          f"ack latency {ACK_LATENCY_MS} ms, fills {FILL_MS_MIN}-{FILL_MS_MAX} ms in up to "
          f"{PARTIAL_FILLS} parts, dir {root}", flush=True)

    wall_ours, outcome = await _ours(cfg, target_path)
    print(f"run 1 (ours): {outcome.status}: {outcome.message} ({wall_ours:.2f} s)", flush=True)
    if outcome.plan is None or outcome.execution is None:
        raise SystemExit(f"run 1 did not trade: {outcome.status}: {outcome.message}")
    recs = _records(cfg.audit.path, outcome.run_id)
    messages = sum(1 for r in recs if r["event"].endswith("_intent"))
    orders_sent = sum(1 for r in recs if r["event"] == "order_intent")
    avg_size = round(cfg.audit.path.stat().st_size / max(len(_records(cfg.audit.path)), 1))
    slowest = _slowest_fill(cfg.broker.sim.state_file)
    fsync_before = _fsync_samples(cfg.audit.dir, avg_size, FSYNC_SAMPLES)
    order_times = [r["ts"] for r in recs if r["event"] in {"order_intent", "order_status"}]
    phase = (f"{order_times[0][11:23]} .. {order_times[-1][11:23]} UTC"
             if order_times else "-")

    print(f"run 2 (sequential, one order at a time, {SEQUENTIAL_PAUSE_SECS * 1000:.0f} ms "
          "pause) ...", flush=True)
    wall_seq, seq_records, book = await _sequential(
        cfg, outcome.plan.orders, cfg.broker.sim.state_file.with_name("sequential.json"),
        cfg.audit.dir / "sequential.jsonl", _payloads(recs))
    seq_filled = sum(1 for o in outcome.plan.orders
                     if book.filled.get(o.client_order_id, 0) >= o.quantity)
    seq_check = validate_file(cfg.audit.dir / "sequential.jsonl")
    seq_valid = "valid" if seq_check.valid else f"INVALID: {seq_check.errors[0].message}"
    # A second floor sample after run 2, so that disk noise over the whole bench is pooled.
    fsync_after = _fsync_samples(cfg.audit.dir, avg_size, FSYNC_SAMPLES)
    fsync_p50 = statistics.median(fsync_before + fsync_after)
    bound = messages / rate + slowest + len(recs) * fsync_p50

    rows = [
        ("orders (ours: sent / filled)", f"{orders_sent} / {outcome.execution.fully_filled}"),
        ("orders (sequential: filled / timeouts)", f"{seq_filled} / {book.timeouts}"),
        ("sequential audit log", seq_valid),
        ("messages (*_intent records, run 1)", f"{messages}"),
        ("audit records (run 1 / sequential)", f"{len(recs)} / {seq_records}"),
        ("avg record size", f"{avg_size} B"),
        ("pacing rate", f"{rate:g} msg/s"),
        ("max_in_flight", f"{cfg.execution.max_in_flight}"),
        ("slowest fill (run 1)", f"{slowest:.3f} s"),
        ("fsync p50 (pooled; before / after run 2)",
         f"{fsync_p50 * 1000:.3f} ms; {statistics.median(fsync_before) * 1000:.3f} / "
         f"{statistics.median(fsync_after) * 1000:.3f} ms"),
        ("  messages / rate", f"{messages / rate:.3f} s"),
        ("  records x fsync p50", f"{len(recs) * fsync_p50:.3f} s"),
        ("lower bound", f"{bound:.3f} s"),
        ("order phase (run 1, first intent .. last status)", phase),
        ("wall, ours", f"{wall_ours:.3f} s"),
        ("wall, sequential", f"{wall_seq:.3f} s"),
        ("ratio ours / lower bound", f"{wall_ours / bound:.2f}"),
        ("ratio sequential / ours", f"{wall_seq / wall_ours:.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main() -> None:
    """Parse arguments, run both executions in a temporary directory, remove it."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=50, help="symbols in the basket (1-100)")
    parser.add_argument("--in-flight", type=int, default=10, help="execution.max_in_flight")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary dir")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if not 1 <= args.orders <= 100:
        parser.error("--orders must be between 1 and 100")
    configure_logging(fmt=LogFormat.CONSOLE, level="warning", log_file=None)
    root = Path(tempfile.mkdtemp(prefix="bench-run-", dir=args.dir))
    try:
        anyio.run(_main, root, args.orders, args.in_flight)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
