"""``rebalancer audit validate|show|repair LOG``: check, read and repair an audit log.

These commands take the log path directly; ``--config`` is accepted for uniformity with the other
commands but not needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.audit.reader import read_log
from rebalancer.audit.timeline import printable, render_timeline
from rebalancer.audit.validate import ValidationReport, validate_file
from rebalancer.cli._common import add_config_arg, add_json_arg, emit_json, say
from rebalancer.errors import InputError
from rebalancer.exit_codes import ExitCode

if TYPE_CHECKING:
    import argparse


def register(sub: Any) -> None:
    """Add the ``audit`` command group."""
    audit = sub.add_parser("audit", help="validate, show or repair an audit log")
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    validate = actions.add_parser(
        "validate", help="check a log's hash chain, sequence and run order (exit 0 only if valid)"
    )
    _log_arg(validate)
    add_json_arg(validate)
    validate.set_defaults(handler=_validate)

    show = actions.add_parser("show", help="print a readable timeline of a log")
    _log_arg(show)
    which = show.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="RUN_ID", help="only this run or invocation")
    which.add_argument("--last", action="store_true", help="only the last run started")
    show.set_defaults(handler=_show)

    repair = actions.add_parser(
        "repair",
        help="cut a torn last line, or add the newline a complete last record lacks (the "
             "original is kept as a copy)",
    )
    _log_arg(repair)
    add_json_arg(repair)
    repair.set_defaults(handler=_repair)


def _log_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", metavar="LOG", type=Path, help="the audit log (JSON lines)")
    add_config_arg(parser, required=False)


def _unreadable(path: Path, exc: OSError) -> InputError:
    return InputError(path, f"cannot read audit log: {exc.strerror or exc}")


def _validate(args: argparse.Namespace) -> ExitCode:
    path: Path = args.log
    try:
        report = validate_file(path)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if args.json:
        emit_json({"path": str(path), **report.as_dict()})
    else:
        for line in _summary(path, report):
            say(printable(line))
    return ExitCode.OK if report.valid else ExitCode.AUDIT_FAILURE


def _summary(path: Path, report: ValidationReport) -> list[str]:
    shape = f"{report.format} format, {report.runs} run(s), {report.records} record(s)"
    if report.valid:
        lines = [f"audit log OK: {path} ({shape})"]
    else:
        lines = [f"audit log INVALID: {path} ({report.error_count} error(s); {shape})"]
    lines.extend(f"  error   line {e.line}: {e.code}: {e.message}" for e in report.errors)
    if report.error_count > len(report.errors):
        lines.append(f"  ... {report.error_count - len(report.errors)} more error(s)")
    lines.extend(
        f"  warning {'line ' + str(w.line) if w.line is not None else 'file'}: "
        f"{w.code}: {w.message}"
        for w in report.warnings
    )
    return lines


def _show(args: argparse.Namespace) -> ExitCode:
    path: Path = args.log
    try:
        # Validate first (streaming, small memory), then keep only the records to be shown.
        report = validate_file(path)
        run_id: str | None = args.run
        if args.last:
            if report.last_run_id is None:
                raise InputError(path, "the log holds no run")
            run_id = report.last_run_id
        view = read_log(path, run_ids=None if run_id is None else {run_id})
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if run_id is not None and view.run(run_id) is None:
        raise InputError(path, f"no run or invocation with id {run_id!r} in the log")
    for line in render_timeline(view, report, run_id=run_id):
        say(line)
    return ExitCode.OK


def _repair(args: argparse.Namespace) -> ExitCode:
    from rebalancer.audit.repair import repair_log

    path: Path = args.log
    if not path.exists():
        raise InputError(path, "cannot read audit log: no such file")
    try:
        result = repair_log(path)
    except OSError as exc:  # e.g. vanished or unreadable between the check and the repair
        raise _unreadable(path, exc) from None
    if args.json:
        emit_json({
            "path": str(path),
            "repaired": result.repaired,
            "original_copy": None if result.original_copy is None else str(result.original_copy),
            "truncated_at_offset": result.truncated_at_offset,
            "bytes_removed": result.bytes_removed,
            "completed_line": result.completed_line,
            "message": result.message,
        })
    elif result.repaired:
        if result.completed_line:
            say(printable(f"repaired {path}: the last record was complete; added its newline "
                          f"at offset {result.truncated_at_offset}"))
        else:
            say(printable(f"repaired {path}: cut {result.bytes_removed} byte(s) at offset "
                          f"{result.truncated_at_offset}"))
        say(printable(f"  original kept at {result.original_copy}"))
        if result.message:
            say(printable(f"  {result.message}"))
    else:
        say(printable(f"nothing to repair: {path}"
                      + (f" ({result.message})" if result.message else "")))
    return ExitCode.OK
