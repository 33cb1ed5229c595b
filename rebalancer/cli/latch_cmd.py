"""``latch status`` and ``latch clear --reason TEXT``: show or clear the safety latch.

Clearing is write-ahead like everything else: the ``latch_cleared`` record (the operator's
reason and the reasons being cleared) is appended to the audit log under the latch lock
*before* the latch file is removed. If the record cannot be written, the latch stays set.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rebalancer.audit.writer import AuditLog
from rebalancer.cli._common import (
    add_config_arg,
    add_json_arg,
    config_from_args,
    emit_json,
    say,
)
from rebalancer.errors import InputError
from rebalancer.exit_codes import ExitCode
from rebalancer.runtime.latch import LatchState, clear_latch, read_latch

if TYPE_CHECKING:
    import argparse

    from rebalancer.config import Config


def register(sub: Any) -> None:
    """Add the ``latch`` command group."""
    latch = sub.add_parser("latch", help="show or clear the safety latch")
    latch_sub = latch.add_subparsers(dest="latch_command", metavar="ACTION", required=True)

    status = latch_sub.add_parser(
        "status", help="exit 0 when the latch is clear, 5 (and its reasons) when set"
    )
    add_config_arg(status)
    add_json_arg(status)
    status.set_defaults(handler=_status)

    clear = latch_sub.add_parser("clear", help="clear the safety latch (recorded in the audit log)")
    add_config_arg(clear)
    clear.add_argument("--reason", metavar="TEXT", required=True,
                       help="why it is safe to clear it (required; written to the audit log)")
    clear.set_defaults(handler=_clear)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _describe(state: LatchState) -> list[str]:
    lines = []
    for entry in state.entries:
        run = f", run {entry.run_id}" if entry.run_id else ""
        lines.append(f"  {_rfc3339(entry.set_at)}  [{entry.source}{run}]  {entry.reason}")
    if state.unreadable:
        lines.append(f"  ({state.path}: {state.unreadable})")
    return lines


def _state_json(state: LatchState | None) -> dict[str, Any]:
    if state is None:
        return {"set": False, "reasons": [], "entries": []}
    return {
        "set": True,
        "path": str(state.path),
        "reasons": list(state.reasons),
        "entries": [entry.to_json() for entry in state.entries],
        "unreadable": state.unreadable,
    }


def _status(args: argparse.Namespace) -> ExitCode:
    cfg = config_from_args(args)
    state = read_latch(cfg.audit.dir)
    if args.json:
        emit_json(_state_json(state))
    elif state is None:
        say(f"safety latch: clear ({cfg.audit.dir})")
    else:
        say(f"safety latch: SET ({state.path})")
        for line in _describe(state):
            say(line)
        say("clear it with `rebalancer latch clear --reason TEXT` once the cause is resolved")
    return ExitCode.OK if state is None else ExitCode.LATCH_SET


def _invocation_id(now: datetime) -> str:
    return f"latch-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def _record_cleared(cfg: Config, reason: str, state: LatchState) -> None:
    log = AuditLog.open_sync(
        cfg.audit.path, run_id=_invocation_id(datetime.now(UTC)), config_hash=cfg.config_hash
    )
    try:
        log.append_sync("latch_cleared", {"reason": reason, "cleared_reasons": list(state.reasons)})
    finally:
        log.close_sync()


def _clear(args: argparse.Namespace) -> ExitCode:
    reason = " ".join(str(args.reason).split())
    if not reason:
        raise InputError(None, "must not be empty: say why it is safe to clear", key="--reason")
    cfg = config_from_args(args)
    reviewed = read_latch(cfg.audit.dir)
    if reviewed is None:
        say(f"safety latch is not set ({cfg.audit.dir}); nothing to clear")
        return ExitCode.OK
    cleared = clear_latch(
        cfg.audit.dir,
        reason=reason,
        expected=reviewed,
        before_remove=lambda state: _record_cleared(cfg, reason, state),
    )
    if cleared is None:
        say("safety latch was cleared by someone else meanwhile; nothing to clear")
        return ExitCode.OK
    say(f"safety latch cleared: {reason}")
    say("it had been set for:")
    for line in _describe(cleared):
        say(line)
    return ExitCode.OK
