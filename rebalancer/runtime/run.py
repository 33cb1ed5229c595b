"""One live rebalance, end to end.

``run_started`` → account summary → positions → quotes → quote gate → diff → ``diff_computed``
→ risk → ``risk_check_passed`` (or ``risk_check_failed``) → confirmation → orders and cancels
→ final reconciliation → ``run_completed``. Every broker call goes through the audit gateway,
so its intent is durable before the call starts. The pure core (target, diff, risk, quote gate,
reconcile) decides; this module only sequences the I/O and maps outcomes to exit codes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import anyio
import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from brokers.base import Broker
from brokers.errors import BrokerError, BrokerUnavailable
from brokers.types import AccountSummary, Position, Quote, TimeInForce
from rebalancer import __version__
from rebalancer.audit.errors import AuditWriteError
from rebalancer.audit.gateway import AuditedBroker
from rebalancer.audit.writer import AuditLog, prepare_directory
from rebalancer.config import AccountType, Config, UnusableQuotePolicy
from rebalancer.diff import compute_diff
from rebalancer.errors import RebalancerError
from rebalancer.exit_codes import ExitCode
from rebalancer.model import CLIENT_ORDER_PREFIX, Plan, RiskReport, Target
from rebalancer.positions_check import position_problems
from rebalancer.quotegate import gate_quotes
from rebalancer.reconcile import ReconcileReport, reconcile
from rebalancer.risk import check_risk, estimate_costs
from rebalancer.runtime.latch import read_latch, set_latch
from rebalancer.runtime.orders import (
    ExecutionResult,
    ExecutionSettings,
    OrderExecutor,
    StopRequest,
)
from rebalancer.runtime.pacing import TokenBucket
from rebalancer.runtime.runlock import RunLock, lock_path
from rebalancer.runtime.window import completed_window_sequence
from rebalancer.target import effective_risk, load_target, window_key

log = structlog.get_logger(__name__)

class NotConfirmed(RebalancerError):
    """No terminal to ask for confirmation and no ``--yes``: refused before anything runs."""

    exit_code = ExitCode.NOT_CONFIRMED


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """What the operator asked for."""

    target_path: Path
    dry_run: bool = False
    yes: bool = False
    cron: bool = False


class RunUI(Protocol):
    """Where the run tells a person what happens, and asks for confirmation."""

    @property
    def can_prompt(self) -> bool:
        """True when a person can answer a confirmation question."""
        ...

    def plan(self, *, target: Target, plan: Plan, risk: RiskReport, equity: Decimal,
             costs: Decimal) -> None:
        """Show the plan and the risk report."""
        ...

    def progress(self, line: str) -> None:
        """Show one line of live progress."""
        ...

    async def confirm(self, question: str) -> bool:
        """Ask a yes/no question; ``False`` unless the answer is yes."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """How the run ended and what it saw."""

    exit_code: ExitCode
    status: str
    message: str
    run_id: str
    audit_path: Path
    window_id: str | None = None
    plan: Plan | None = None
    risk: RiskReport | None = None
    execution: ExecutionResult | None = None
    reconciliation: ReconcileReport | None = None
    unusable_quotes: tuple[tuple[str, str], ...] = ()
    latch_reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` summary."""
        doc: dict[str, Any] = {
            "status": self.status,
            "exit_code": int(self.exit_code),
            "message": self.message,
            "run_id": self.run_id,
            "audit_log": str(self.audit_path),
            "window_id": self.window_id,
        }
        if self.plan is not None:
            doc["orders_planned"] = [
                {"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
                 "action": o.action.value, "shares": o.quantity, "limit": str(o.limit_price)}
                for o in self.plan.orders
            ]
        if self.risk is not None:
            doc["risk_checks"] = [
                {"name": c.name, "status": c.status.value, "detail": c.detail}
                for c in self.risk.checks
            ]
        if self.execution is not None:
            ex = self.execution
            doc["counts"] = _counts(ex)
            doc["orders"] = [
                {"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side,
                 "shares": o.quantity, "filled": o.filled,
                 "avg_price": None if o.avg_price is None else str(o.avg_price),
                 "state": o.state.value, "order_id": o.order_id, "note": o.note}
                for o in ex.orders
            ]
        if self.reconciliation is not None:
            doc["tracking_error_pct"] = str(self.reconciliation.tracking_error_pct)
        if self.unusable_quotes:
            doc["unusable_quotes"] = [{"symbol": s, "reason": r} for s, r in self.unusable_quotes]
        if self.latch_reasons:
            doc["safety_latch"] = list(self.latch_reasons)
        return doc


def _only_audit_failure(group: BaseExceptionGroup[BaseException]) -> AuditWriteError:
    """The audit failure inside ``group``; re-raise the group if it holds anything else."""
    matched, rest = group.split(AuditWriteError)
    if matched is None or rest is not None:
        raise group
    leaf: BaseException = matched
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, AuditWriteError)
    return leaf


def _counts(ex: ExecutionResult) -> dict[str, int]:
    return {
        "submitted": ex.submitted,
        "filled": ex.fully_filled,
        "partially_filled": ex.partially_filled,
        "cancelled": ex.cancelled_unfilled,
        "failed": ex.failed,
        "unresolved": len(ex.unresolved),
    }


def new_run_id(now: datetime) -> str:
    """A run id that sorts by time and is unique: ``20261204T200102Z-1a2b3c4d``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


BrokerFactory = Callable[[Config], Broker]


@dataclass(kw_only=True)
class _Run:
    """Mutable context of one run (owned by ``run_rebalance``)."""

    cfg: Config
    req: RunRequest
    ui: RunUI
    stop: StopRequest
    run_id: str
    started: datetime
    target: Target
    window: str
    audit: AuditLog | None = None
    pacer: TokenBucket | None = None
    latch_reasons: list[str] = field(default_factory=list)

    def outcome(self, code: ExitCode, status: str, message: str, **extra: Any) -> RunOutcome:
        return RunOutcome(
            exit_code=code, status=status, message=message, run_id=self.run_id,
            audit_path=self.cfg.audit.path, window_id=self.window,
            latch_reasons=tuple(self.latch_reasons), **extra,
        )


async def run_rebalance(
    cfg: Config,
    req: RunRequest,
    *,
    ui: RunUI,
    stop: StopRequest,
    broker_factory: BrokerFactory,
) -> RunOutcome:
    """Drive one rebalance; returns how it ended (errors of bad input are raised)."""
    target = load_target(req.target_path, risk=cfg.risk)
    if not (req.yes or req.cron or req.dry_run) and not ui.can_prompt:
        raise NotConfirmed(
            "no terminal to confirm the orders on (stdin is not a TTY): "
            "pass --yes to run without confirmation, or --dry-run to only plan"
        )
    now = datetime.now(UTC)
    run = _Run(
        cfg=cfg, req=req, ui=ui, stop=stop, run_id=new_run_id(now), started=now,
        target=target, window=window_key(target, cfg.schedule.window_period, now),
    )
    structlog.contextvars.bind_contextvars(run_id=run.run_id)
    audit_dir = cfg.audit.dir
    await anyio.to_thread.run_sync(prepare_directory, audit_dir)
    with RunLock(lock_path(audit_dir), run_id=run.run_id):
        latch = read_latch(audit_dir)
        if latch is not None and req.cron:
            reasons = "; ".join(latch.reasons)
            return run.outcome(ExitCode.LATCH_SET, "latch_set",
                               f"the safety latch is set ({reasons}); clear it with "
                               "`rebalancer latch clear --reason ...` after review")
        outcome = await _with_audit(run, broker_factory)
        # Validated while the lock is still held, so no other runner appends in between.
        return await _after_run(run, outcome)


async def _with_audit(run: _Run, broker_factory: BrokerFactory) -> RunOutcome:
    cfg = run.cfg
    run.audit = await AuditLog.open(cfg.audit.path, run_id=run.run_id,
                                    config_hash=cfg.config_hash)
    try:
        try:
            return await _audited_run(run, run.audit, broker_factory)
        except AuditWriteError as exc:
            failure = exc
        except BaseExceptionGroup as group:  # raised from inside the order task group
            if not group.subgroup(AuditWriteError):
                return await _unexpected_failure(run, group)
            failure = _only_audit_failure(group)
        except Exception as exc:
            return await _unexpected_failure(run, exc)
        # Fail-stop: no further broker call; the latch keeps unattended runs away until review.
        reason = f"audit write failed during run {run.run_id}: {failure}"
        await _set_latch(run, reason, write_record=False)
        return run.outcome(ExitCode.AUDIT_FAILURE, "audit_failure", reason)
    finally:
        with anyio.CancelScope(shield=True):
            await run.audit.aclose()


async def _unexpected_failure(run: _Run, exc: BaseException) -> RunOutcome:
    """A defect or an unforeseen broker reply ended the run: latch, manual review, say why.

    The order phase has already cancelled what it knew to be working (``OrderExecutor``).
    """
    log.error("run_failed_unexpectedly", error=repr(exc), exc_info=exc)
    reason = (f"run {run.run_id} failed unexpectedly ({type(exc).__name__}: {exc}); "
              "check the broker for working orders of ours (rebalancer status)")
    with anyio.CancelScope(shield=True):
        if run.audit is not None and not run.audit.poisoned:
            with contextlib.suppress(AuditWriteError):
                await run.audit.append("run_aborted", {"reason": "internal_error",
                                                       "error": repr(exc)})
        await _set_latch(run, reason)
    return run.outcome(ExitCode.MANUAL_REVIEW, "internal_error", reason)


async def _audited_run(run: _Run, audit: AuditLog, broker_factory: BrokerFactory) -> RunOutcome:
    cfg, req = run.cfg, run.req
    if req.cron:
        done = await anyio.to_thread.run_sync(completed_window_sequence, cfg.audit.path, run.window)
        if done is not None:
            await audit.append("idempotency_rejection",
                               {"window_id": run.window, "completed_sequence_number": done})
            return run.outcome(ExitCode.WINDOW_COMPLETED, "window_completed",
                               f"window {run.window[:16]} was already completed "
                               f"(record {done}); nothing to do")
    mode = "dry_run" if req.dry_run else ("cron" if req.cron else "live")
    await audit.append("run_started", {
        "target_file": str(req.target_path), "account": cfg.account.id,
        "window_id": run.window, "mode": mode, "pid": os.getpid(), "version": __version__,
    })
    if req.cron:
        await audit.append("cron_start", {"window_id": run.window})
    log.info("run_started", mode=mode, account=cfg.account.id, window_id=run.window,
             target=str(req.target_path), audit_log=str(cfg.audit.path))
    run.pacer = TokenBucket.for_rate(float(cfg.execution.messages_per_second))
    # The runtime holds only the audited gateway: no broker call can skip its intent record.
    gateway = AuditedBroker(broker_factory(cfg), audit, pacer=run.pacer.acquire)
    try:
        try:
            with anyio.fail_after(cfg.connection.timeout_secs):
                await gateway.connect()
        except (BrokerError, TimeoutError) as exc:
            await audit.append("run_aborted", {"reason": "broker_unreachable", "error": str(exc)})
            return run.outcome(ExitCode.ERROR, "broker_unreachable",
                               f"cannot reach the broker: {exc or 'timed out'}")
        try:
            return await _pipeline(run, audit, gateway)
        except (BrokerError, TimeoutError) as exc:
            message = f"broker failure: {exc or type(exc).__name__}"
            await audit.append("run_aborted", {"reason": "broker_error", "error": message})
            return run.outcome(ExitCode.ERROR, "broker_error", message)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await gateway.close()


async def _read(
    gateway: AuditedBroker, call: Callable[[], Awaitable[Any]], limit_secs: float
) -> Any:
    """A read-only broker call, bounded, retried with backoff while the broker is unavailable.

    Before each retry the connection is re-opened (a gateway restart drops it). Reads only:
    an order is never retried.
    """
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(BrokerUnavailable),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.5, max=4),
        sleep=anyio.sleep,
        reraise=True,
    ):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                with anyio.fail_after(limit_secs):
                    await gateway.connect()
            with anyio.fail_after(limit_secs):
                return await call()
    raise AssertionError("unreachable")  # pragma: no cover


async def _snapshot(
    gateway: AuditedBroker, symbols_from: Target, limit_secs: float
) -> tuple[AccountSummary, tuple[Position, ...], tuple[Quote, ...]]:
    summary: AccountSummary = await _read(gateway, gateway.account_summary, limit_secs)
    positions: tuple[Position, ...] = await _read(gateway, gateway.positions, limit_secs)
    symbols = _symbols(positions, symbols_from)
    quotes: tuple[Quote, ...] = await _read(gateway, lambda: gateway.quotes(symbols), limit_secs)
    return summary, positions, quotes


def _symbols(positions: Sequence[Position], target: Target) -> list[str]:
    seen: dict[str, None] = {}
    for p in positions:
        if p.quantity != 0:
            seen[p.symbol] = None
    for t in target.targets:
        seen[t.symbol] = None
    return list(seen)


async def _pipeline(run: _Run, audit: AuditLog, gateway: AuditedBroker) -> RunOutcome:
    cfg, req, ui, target = run.cfg, run.req, run.ui, run.target
    timeout = float(cfg.execution.request_timeout_secs)
    summary, positions, quotes = await _snapshot(gateway, target, timeout)
    if summary.account_id != cfg.account.id:
        message = (f"the broker reports account {summary.account_id!r} but the config trades "
                   f"{cfg.account.id!r}; refusing to trade")
        await audit.append("run_aborted", {"reason": "account_mismatch", "error": message})
        return run.outcome(ExitCode.ERROR, "account_mismatch", message)
    problems = position_problems(positions, account_id=cfg.account.id)
    if not summary.cash.is_finite():
        problems = (f"cash is {summary.cash}", *problems)
    if not summary.net_liquidation.is_finite() or summary.net_liquidation <= 0:
        problems = (f"net liquidation is {summary.net_liquidation}: nothing can be sized from "
                    "it", *problems)
    if problems:
        message = "the broker's account report cannot be trusted: " + "; ".join(problems)
        await audit.append("run_aborted", {"reason": "bad_account_report", "error": message})
        return run.outcome(ExitCode.ERROR, "bad_account_report", message)
    if not req.dry_run:
        ours = [o for o in await _read(gateway, gateway.open_orders, timeout)
                if o.client_order_id.startswith(CLIENT_ORDER_PREFIX)]
        if ours:
            ids = ", ".join(f"{o.client_order_id} ({o.side.value} {o.quantity} {o.symbol})"
                            for o in ours)
            message = (f"{len(ours)} order(s) of ours are still open at the broker: {ids}; "
                       "a previous run may still be working or was interrupted. Let them "
                       "finish or cancel them before running again")
            await audit.append("run_aborted", {
                "reason": "open_orders_of_ours",
                "client_order_ids": [o.client_order_id for o in ours], "error": message})
            return run.outcome(ExitCode.MANUAL_REVIEW, "open_orders", message)
    gate = gate_quotes(quotes, now=datetime.now(UTC), staleness_secs=cfg.quotes.staleness_secs,
                       max_spread_bps=cfg.quotes.max_spread_bps,
                       requested=_symbols(positions, target))
    unusable = tuple((u.symbol, u.reason) for u in gate.unusable)
    if unusable and cfg.quotes.on_unusable is UnusableQuotePolicy.STOP:
        await audit.append("quote_gate_failed",
                           {"unusable": [{"symbol": s, "reason": r} for s, r in unusable]})
        shown = ", ".join(f"{s} ({r})" for s, r in unusable)
        return run.outcome(ExitCode.QUOTES_UNUSABLE, "quotes_unusable",
                           f"quotes unusable, no order sent: {shown}", unusable_quotes=unusable)
    log.info("snapshot", net_liquidation=str(summary.net_liquidation), positions=len(positions),
             quotes=len(quotes), unusable_quotes=len(unusable))
    limits = effective_risk(cfg.risk, target.constraints)
    plan = compute_diff(
        run_id=run.run_id, equity=summary.net_liquidation, positions=positions, target=target,
        quotes=gate.usable, limit_offset_bps=cfg.execution.limit_offset_bps,
        min_trade_usd=limits.min_trade_usd,
    )
    await audit.append("diff_computed", {
        "orders": [
            {"client_order_id": o.client_order_id, "symbol": o.symbol, "action": o.action.value,
             "side": o.side.value, "shares": o.quantity, "limit": str(o.limit_price),
             "reference_price": str(o.reference_price), "description": o.description}
            for o in plan.orders
        ],
        "skipped": [{"symbol": s.symbol, "reason": s.reason} for s in plan.skipped]
        + [{"symbol": s, "reason": f"quote unusable: {r}"} for s, r in unusable],
    })
    report = check_risk(
        plan=plan, equity=summary.net_liquidation, cash=summary.cash, positions=positions,
        quotes=gate.usable, risk=limits, account_type=cfg.account.type, cost=cfg.cost,
        max_spread_bps=cfg.quotes.max_spread_bps,
        max_orders_per_run=cfg.execution.max_orders_per_run,
    )
    checks = [{"name": c.name, "status": c.status.value, "detail": c.detail}
              for c in report.checks]
    if not plan.orders and report.passed:
        await audit.append("no_rebalance_needed", {})
        return await _complete(run, audit, gateway, plan, None, None)
    ui.plan(target=target, plan=plan, risk=report, equity=summary.net_liquidation,
            costs=estimate_costs(plan, cfg.cost))
    log.info("risk_checked", passed=report.passed, orders=len(plan.orders),
             failed=[c.name for c in report.checks if c.status.value == "FAIL"])
    if not report.passed:
        await audit.append("risk_check_failed", {"checks": checks})
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.checks
                           if c.status.value == "FAIL")
        return run.outcome(ExitCode.RISK_FAILED, "risk_failed",
                           f"risk check failed, no order sent: {failed}", plan=plan, risk=report)
    await audit.append("risk_check_passed", {"checks": checks})
    if req.dry_run:
        await audit.append("dry_run_completed", {"orders": len(plan.orders)})
        return run.outcome(ExitCode.OK, "dry_run",
                           f"dry run: {len(plan.orders)} orders planned, none sent",
                           plan=plan, risk=report)
    if not (req.yes or req.cron):
        approved = await _confirm(run, f"Send these {len(plan.orders)} orders? [y/N] ")
        await audit.append("user_confirmed", {"approved": approved})
        if not approved and run.stop.event.is_set():
            return await _graceful_end(run, audit, None, plan, report)
        if not approved:
            await audit.append("run_completed", {
                "status": "declined", "submitted": 0, "filled": 0, "partially_filled": 0,
                "cancelled": 0, "failed": 0})
            return run.outcome(ExitCode.NOT_CONFIRMED, "declined",
                               "not confirmed; no order sent", plan=plan, risk=report)
    if run.stop.event.is_set():
        return await _graceful_end(run, audit, None, plan, report)
    execution = await _execute(run, audit, gateway, plan, summary)
    if run.stop.event.is_set():
        return await _graceful_end(run, audit, execution, plan, report)
    return await _complete(run, audit, gateway, plan, report, execution)


CONFIRM_TIMEOUT_SECS = 600


async def _confirm(run: _Run, question: str) -> bool:
    """Ask; a stop signal or ten minutes without an answer count as no."""
    answers: list[bool] = []
    with anyio.move_on_after(CONFIRM_TIMEOUT_SECS):
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                answers.append(await run.ui.confirm(question))
                tg.cancel_scope.cancel()

            async def watch_stop() -> None:
                await run.stop.event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(ask)
            tg.start_soon(watch_stop)
    return bool(answers and answers[0])


async def _execute(run: _Run, audit: AuditLog, gateway: AuditedBroker, plan: Plan,
                   summary: AccountSummary) -> ExecutionResult:
    ex = run.cfg.execution
    settings = ExecutionSettings(
        ack_timeout=float(ex.ack_timeout_secs), order_timeout=float(ex.order_timeout_secs),
        cancel_timeout=float(ex.cancel_timeout_secs), max_in_flight=ex.max_in_flight,
        time_in_force=TimeInForce(ex.time_in_force.value),
        settle_timeout=float(ex.ack_timeout_secs),
        # Every requester waits its turn in one FIFO bucket: this bounds the queue.
        pacing_timeout=10.0 + (ex.max_in_flight + 10) / ex.messages_per_second,
    )
    executor = OrderExecutor(
        gateway=gateway, audit=audit, account_id=run.cfg.account.id, settings=settings,
        stop=run.stop, since=run.started - timedelta(minutes=5), progress=run.ui.progress,
        pacer=None if run.pacer is None else run.pacer.acquire,
    )
    buys = sum((o.notional for o in plan.orders if o.side.value == "BUY"), Decimal(0))
    sells_first = run.cfg.account.type is AccountType.CASH or buys > summary.cash
    log.info("orders_starting", orders=len(plan.orders), sells_first=sells_first,
             max_in_flight=ex.max_in_flight)
    result = await executor.execute(plan.orders, sells_first=sells_first)
    log.info("orders_finished", **_counts(result))
    return result


async def _graceful_end(run: _Run, audit: AuditLog, execution: ExecutionResult | None,
                        plan: Plan, report: RiskReport) -> RunOutcome:
    started = run.stop.requested_at or anyio.current_time()
    remaining = [] if execution is None else [o for o in execution.unresolved]
    cancelled = 0 if execution is None else execution.cancelled_by_stop
    await audit.append("kill_completed", {
        "method": "graceful",
        "reason": run.stop.reason,
        "orders_cancelled_count": cancelled,
        "orders_remaining_count": len(remaining),
        "remaining_client_order_ids": [o.client_order_id for o in remaining],
        "duration_seconds": round(anyio.current_time() - started, 3),
    })
    if remaining:
        await _set_latch(run, f"graceful stop left {len(remaining)} order(s) possibly working")
        return run.outcome(
            ExitCode.KILL_INCOMPLETE, "interrupted",
            f"stopped by {run.stop.reason}; {len(remaining)} order(s) could not be confirmed "
            "cancelled: check the broker (rebalancer status) and cancel what is left there "
            "(runbooks/graceful-stop.md)",
            plan=plan, risk=report, execution=execution)
    return run.outcome(ExitCode.INTERRUPTED, "interrupted",
                       f"stopped by {run.stop.reason}; {cancelled} working order(s) cancelled",
                       plan=plan, risk=report, execution=execution)


async def _complete(run: _Run, audit: AuditLog, gateway: AuditedBroker, plan: Plan,
                    report: RiskReport | None, execution: ExecutionResult | None) -> RunOutcome:
    cfg = run.cfg
    timeout = float(cfg.execution.request_timeout_secs)
    recon: ReconcileReport | None = None
    if execution is not None:
        summary, positions, quotes = await _snapshot(gateway, run.target, timeout)
        recon = reconcile(target=run.target, positions=positions,
                          quotes={q.symbol: q for q in quotes}, equity=summary.net_liquidation)
        await audit.append("reconcile_completed", {
            "equity": str(summary.net_liquidation),
            "tracking_error_pct": str(recon.tracking_error_pct),
            "rows": [{"symbol": r.symbol, "quantity": r.quantity,
                      "actual_weight": str(r.actual_weight),
                      "target_weight": str(r.target_weight)} for r in recon.rows],
        })
    counts = _counts(execution) if execution is not None else {
        "submitted": 0, "filled": 0, "partially_filled": 0, "cancelled": 0, "failed": 0,
        "unresolved": 0}
    unresolved = () if execution is None else execution.unresolved
    if unresolved:
        status, code = "manual_review", ExitCode.MANUAL_REVIEW
        message = (f"{len(unresolved)} order(s) in an unknown state at the broker: "
                   + ", ".join(o.client_order_id for o in unresolved))
    elif execution is not None and execution.fully_filled < len(execution.orders):
        status, code = "completed_with_unfilled", ExitCode.ORDERS_INCOMPLETE
        message = (f"{execution.fully_filled} of {len(execution.orders)} orders filled; "
                   f"{counts['partially_filled']} partly, {counts['cancelled']} cancelled, "
                   f"{counts['failed']} failed")
    elif execution is None:
        status, code, message = "no_op", ExitCode.OK, "portfolio already matches the target"
    else:
        status, code = "completed", ExitCode.OK
        message = f"all {len(execution.orders)} orders filled"
    await audit.append("run_completed", {"status": status, **counts})
    log.info("run_completed", status=status, **counts)
    if run.req.cron and code is ExitCode.OK:
        await audit.append("cron_completed", {"window_id": run.window, "status": status, **counts})
    if unresolved:
        await _set_latch(run, message)
    return run.outcome(code, status, message, plan=plan, risk=report, execution=execution,
                       reconciliation=recon)


async def _set_latch(run: _Run, reason: str, *, write_record: bool = True) -> None:
    with anyio.CancelScope(shield=True):
        state = await anyio.to_thread.run_sync(
            lambda: set_latch(run.cfg.audit.dir, reason=reason, source="run", run_id=run.run_id)
        )
        run.latch_reasons[:] = list(state.reasons)
        if write_record and run.audit is not None and not run.audit.poisoned:
            with contextlib.suppress(AuditWriteError):
                await run.audit.append("latch_set", {"reason": reason})


async def _after_run(run: _Run, outcome: RunOutcome) -> RunOutcome:
    """Validate the fresh log; a log that fails validation sets the safety latch."""
    from rebalancer.audit.validate import validate_file

    if outcome.exit_code is ExitCode.AUDIT_FAILURE:
        return outcome  # the latch is already set and says why
    report = await anyio.to_thread.run_sync(validate_file, run.cfg.audit.path)
    if report.valid:
        return outcome
    first = report.errors[0]
    reason = (f"audit log failed validation after run {run.run_id}: line {first.line}: "
              f"{first.code}: {first.message}")
    state = await anyio.to_thread.run_sync(
        lambda: set_latch(run.cfg.audit.dir, reason=reason, source="run", run_id=run.run_id)
    )
    return RunOutcome(
        exit_code=ExitCode.AUDIT_FAILURE, status="audit_invalid", message=reason,
        run_id=outcome.run_id, audit_path=outcome.audit_path, window_id=outcome.window_id,
        plan=outcome.plan, risk=outcome.risk, execution=outcome.execution,
        reconciliation=outcome.reconciliation, latch_reasons=tuple(state.reasons),
    )
