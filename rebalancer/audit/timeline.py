"""A readable timeline of an audit log for a person: one line per record, grouped by run.

Pure: ``render_timeline(view, report)`` returns the lines; ``rebalancer audit show`` prints them.
Each run (or kill/recover/repair invocation) gets a header; each record one line with its time,
sequence number, short run id, event and key fields. Intents without a result are marked
``!! INCOMPLETE``; the validator's errors and warnings close the listing.

Every line is passed through ``printable``: a log is untrusted input, so control characters
(terminal escapes, newlines inside values) and lone surrogates are shown escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rebalancer.audit.reader import AuditLogView, Record, Run
    from rebalancer.audit.validate import ValidationReport

INCOMPLETE_MARK: Final = "!! INCOMPLETE: no result recorded"

_FIELDS: Final = (
    # (key, label); label "" prints the bare value.
    ("symbol", ""),
    ("side", ""),
    ("action", ""),
    ("shares", ""),
    ("limit", "@"),
    ("price", "@"),
    ("avg_price", "avg"),
    ("filled", "filled"),
    ("remaining", "remaining"),
    ("cumulative_filled", "cum"),
    ("status", "status"),
    ("order_id", "order"),
    ("ibkr_id", "order"),
    ("cancellation_reason", "reason"),
    ("perm_id", "perm"),
    ("client_order_id", "cid"),
    ("approved", "approved"),
    ("mode", "mode"),
    ("target_file", "target"),
    ("account", "account"),
    ("window_id", "window"),
    ("method", "method"),
    ("reason", "reason"),
    ("equity", "equity"),
    ("cash", "cash"),
    ("tracking_error", "tracking"),
    ("submitted", "submitted"),
    ("cancelled", "cancelled"),
    ("failed", "failed"),
    ("orders_cancelled_count", "cancelled"),
    ("orders_remaining_count", "remaining"),
    ("original_copy", "copy"),
    ("truncated_at_offset", "cut_at"),
    ("bytes_removed", "removed"),
    ("latency_ms", "ms"),
    ("error_class", "error"),
    ("error_type", "type"),
    ("error_message", "msg"),
    ("error", "error"),
)


def printable(text: str) -> str:
    """``text`` safe to print as one line: non-printable characters (controls, lone surrogates,
    format characters) become ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN`` escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def short_id(run_id: str, width: int = 12) -> str:
    """The run id in at most ``width`` characters; ``~`` marks a cut.

    Ids like ``20261204T201021Z-d8513d70`` keep their distinctive suffix (``~d8513d70``).
    """
    if len(run_id) <= width:
        return run_id
    suffix = run_id.rsplit("-", 1)[-1]
    if "-" in run_id and 4 <= len(suffix) < width:
        return "~" + suffix
    return run_id[: width - 1] + "~"


def _clock(record: Record) -> str:
    ts = record.timestamp
    if ts is None:
        return "??:??:??.???"
    return ts.strftime("%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        text = value[:61]
    else:
        try:
            text = str(value)
        except (RecursionError, ValueError):  # nesting deeper than repr allows; huge ints
            return "<unprintable>"
    return text if len(text) <= 60 else text[:57] + "..."


def describe(record: Record) -> str:
    """The key fields of one record, e.g. ``AAPL SELL 20 @ 189.91 status Filled``."""
    fields = record.fields
    parts: list[str] = []
    seen_labels: set[str] = set()
    for key, label in _FIELDS:
        value = fields.get(key)
        if value is None or (label and label in seen_labels and label in ("order", "@")):
            continue
        if key == "action" and "side" in fields:
            continue
        seen_labels.add(label)
        parts.append(_value(value) if not label else f"{label} {_value(value)}")
    event = record.event
    if event == "diff_computed":
        orders = fields.get("orders")
        parts.insert(0, f"{len(orders) if isinstance(orders, list) else '?'} order(s)")
    elif event in ("risk_check_passed", "risk_check_failed", "risk_check"):
        checks = fields.get("checks")
        if isinstance(checks, list):
            bad = [_value(c.get("name", "?")) for c in checks
                   if isinstance(c, dict) and c.get("status") not in ("PASS", "pass")]
            parts.insert(0, f"{len(checks)} check(s)" + (f", not passed: {', '.join(bad)}"
                                                         if bad else ""))
    elif event == "quote_gate_failed":
        unusable = fields.get("unusable")
        if isinstance(unusable, list):
            parts.insert(0, "unusable: " + ", ".join(
                f"{_value(u.get('symbol'))} ({_value(u.get('reason'))})"
                for u in unusable if isinstance(u, dict)))
    elif event in ("positions_result", "positions_fetched"):
        rows = fields.get("positions")
        if isinstance(rows, list):
            parts.insert(0, f"{len(rows)} position(s)")
    elif event == "quotes_result":
        quotes = fields.get("quotes")
        if isinstance(quotes, list):
            parts.insert(0, f"{len(quotes)} quote(s)")
    op_id = record.op_id
    if op_id is not None:
        run_id = record.run_id
        if run_id is not None and op_id.startswith(run_id + ":"):
            op_id = op_id[len(run_id):]
        parts.append(f"op {op_id}")
    return " ".join(parts)


def _header(run: Run) -> str:
    first = run.records[0]
    when = first.timestamp
    day = when.strftime("%Y-%m-%d") if when is not None else "unknown date"
    if run.is_run:
        state = "completed" if run.completed else "did not complete"
        terminal = run.terminal
        if terminal is not None and terminal.event != "run_completed":
            state = f"ended by {terminal.event}"
        kind = "run"
    else:
        kind, state = "invocation", "not a run"
    return f"== {kind} {run.run_id} ({day}, {len(run.records)} records, {state}) =="


def render_timeline(view: AuditLogView, report: ValidationReport | None = None,
                    *, run_id: str | None = None) -> list[str]:
    """The timeline as lines of text; ``run_id`` limits it to one run or invocation."""
    records = len(view.records) if report is None else report.records
    runs = sum(1 for r in view.runs if r.is_run) if report is None else report.runs
    lines: list[str] = [f"audit log: {view.format} format, {records} records, {runs} run(s)"]
    incomplete = {id(b.intent) for b in view.brackets if b.result is None}
    for run in view.runs:
        if run_id is not None and run.run_id != run_id:
            continue
        lines.append("")
        lines.append(_header(run))
        for record in run.records:
            seq = record.sequence_number
            seq_text = "-" if seq is None else str(seq)
            who = short_id(record.run_id) if record.run_id is not None else short_id(run.run_id)
            text = (f"  {_clock(record)}  #{seq_text:<10} {who:<12}  {record.event:<24} "
                    f"{describe(record)}").rstrip()
            lines.append(text)
            if id(record) in incomplete:
                lines.append(f"      {INCOMPLETE_MARK} (line {record.line}, "
                             f"{record.operation})")
    if view.problems:
        lines.append("")
        lines.append("unreadable lines:")
        lines.extend(f"  line {p.line} (byte {p.offset}): {p.message}" for p in view.problems)
    if view.torn_tail is not None:
        tail = view.torn_tail
        lines.append("")
        lines.append(f"!! torn tail at line {tail.line}, byte offset {tail.offset} "
                     f"({tail.length} bytes): {tail.reason}")
    if report is not None:
        lines.append("")
        verdict = "VALID" if report.valid else f"INVALID ({report.error_count} error(s))"
        lines.append(f"validation: {verdict}")
        lines.extend(f"  error   line {e.line}: {e.code}: {e.message}" for e in report.errors)
        lines.extend(
            f"  warning {'line ' + str(w.line) if w.line is not None else 'file'}: "
            f"{w.code}: {w.message}"
            for w in report.warnings
        )
    return [printable(line) for line in lines]
