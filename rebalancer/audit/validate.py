"""Validate an audit log (CONTRACT §5.4) in one streaming pass. Pure over lines; never raises.

What is checked, for records of ours (hash-chained):

1. Every ``\n``-terminated line is a JSON object (``malformed_json``, ``not_an_object``,
   ``blank_line``): such a line that is not a record is damage with its own code, even when it
   is the last line. Lines of ours are parsed strictly: duplicate keys and ``NaN``/``Infinity``
   make the line ``malformed_json`` (not a record). Only the non-empty bytes after the file's
   last ``\n`` are a ``torn_tail`` (with its byte offset), the same rule as the writer's
   ``records.scan_log``; when that fragment is a complete, sound record chained onto the one
   before, it is checked and counted as a record and the ``torn_tail`` message says repair will
   keep it (add its newline).
2. Header keys are present and well typed (``missing_field``, ``bad_field_type``,
   ``bad_timestamp``; ``hash`` and ``prev_hash`` must be 64 lowercase hex digits); bracket
   records carry ``op_id``, results ``latency_ms``, order and cancel records
   ``client_order_id`` and ``symbol``.
3. ``sequence_number`` is 1 on the first record and strictly +1 across the file
   (``sequence_gap``, ``sequence_duplicate``, ``sequence_not_monotonic``). The line's bytes
   must be exactly the canonical JSON of its record (``non_canonical``: extra whitespace, a
   CRLF ending, key order, another spelling of a number such as ``1E-05`` or extra float digits
   that parse to the same value), and the ``hash`` must be the SHA-256 of the canonical bytes
   without it (``hash_mismatch``). Each ``prev_hash`` names the previous record's hash
   (``chain_broken``).
4. Per run (records grouped by ``run_id``; runs may interleave), the events follow the run
   table ``RUN_TABLE`` below (``order_violation``); a result needs an earlier intent with its
   ``op_id`` (``unknown_op``); an ``op_id`` is used by one intent only (``order_violation``).
   Groups without ``run_started`` (kill, recover, repair invocations) may only hold brackets
   and the free events.

A missing result is not an error: it is listed in ``incomplete_intents`` and warned about. A run
without a terminal event is a warning (interrupted). Ancestor (nanobook) records are parsed
leniently and checked loosely: ``event``/``ts`` present, checkpoint sequence numbers strictly
increasing, diff after positions, orders after the risk check; they add the warning that there
is no hash chain, and blank lines among them are only warnings.

Every check is linear in the log: ancestor results pair through per-operation queues, and
out-of-order sequence numbers are looked up in the sorted list of gaps by bisection.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from rebalancer.audit.reader import (
    INTENT_EVENTS,
    RESULT_EVENTS,
    AuditLogView,
    IncompleteIntent,
    LogFormat,
    OpenQueue,
    canonical_fast,
    complete_tail,
    ends_ancestor_run,
    fragment_reason,
    parse_log,
    record_format,
)
from rebalancer.audit.records import (
    GENESIS_HASH,
    canonical_bytes,
    encode_record,
    parse_strict,
    record_hash,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# -- the report -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """One error or warning. ``line`` is 1-based (``None`` for whole-file warnings)."""

    line: int | None
    code: str
    message: str
    offset: int | None = None
    """Byte offset of the line, when known."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"line", "code", "message"}`` plus ``offset`` when known."""
        out: dict[str, Any] = {"line": self.line, "code": self.code, "message": self.message}
        if self.offset is not None:
            out["offset"] = self.offset
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationReport:
    """The verdict on one log."""

    valid: bool
    errors: tuple[Issue, ...]
    warnings: tuple[Issue, ...]
    incomplete_intents: tuple[IncompleteIntent, ...]
    format: LogFormat
    runs: int
    """Runs (groups that start with ``run_started``) in the file."""
    records: int
    """Lines that parsed as records (torn tail and damaged lines excluded)."""
    torn_tail_offset: int | None = None
    """Byte offset where a torn tail starts (``audit repair`` cuts there, or only adds the
    newline when ``torn_tail_complete``)."""
    error_count: int = 0
    """Errors found; ``errors`` keeps at most ``MAX_ISSUES`` of them."""
    incomplete_runs: tuple[str, ...] = field(default=())
    """Run ids of runs that did not reach a terminal event."""
    last_run_id: str | None = None
    """The id of the last run started in the file (ancestor runs: ``nanobook@<line>``)."""
    torn_tail_complete: bool = False
    """The torn tail is a complete, sound record lacking only its newline (counted in
    ``records``; repair keeps it)."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``rebalancer audit validate --json``."""
        return {
            "valid": self.valid,
            "errors": [e.as_dict() for e in self.errors],
            "warnings": [w.as_dict() for w in self.warnings],
            "incomplete_intents": [
                {
                    "line": i.line,
                    "operation": i.operation,
                    "op_id": i.op_id,
                    "client_order_id": i.client_order_id,
                    "run_id": i.run_id,
                    "symbol": i.symbol,
                }
                for i in self.incomplete_intents
            ],
            "incomplete_runs": list(self.incomplete_runs),
            "last_run_id": self.last_run_id,
            "format": self.format,
            "runs": self.runs,
            "records": self.records,
            "error_count": self.error_count,
            "torn_tail_offset": self.torn_tail_offset,
            "torn_tail_complete": self.torn_tail_complete,
        }


CLOCK_BACK_TOLERANCE_SECS: Final = 1.0
"""A record stamped more than this before the previous one gets a ``clock_backwards`` warning
(concurrent writers stamp just before taking the file lock, so small steps back are normal)."""

MAX_ISSUES: Final = 1000
"""Errors (and warnings) kept in a report; ``error_count`` still counts all errors."""

# -- the run table ----------------------------------------------------------------------------


class Phase(IntEnum):
    """Where a run of ours stands."""

    STARTED = 1
    ACCOUNT = 2
    POSITIONS = 3
    QUOTES = 4
    DIFF = 5
    NO_CHANGE = 6
    TRADING = 7
    RECONCILING = 8
    ENDED = 9
    CRON_DONE = 10


_P = Phase
_LIVE: Final = (_P.STARTED, _P.ACCOUNT, _P.POSITIONS, _P.QUOTES, _P.DIFF, _P.NO_CHANGE, _P.TRADING,
                _P.RECONCILING)
_POST_RISK: Final = (_P.TRADING, _P.RECONCILING)


def _stay(*phases: Phase) -> dict[Phase, Phase]:
    return {p: p for p in phases}


RUN_TABLE: Final[Mapping[str, Mapping[Phase, Phase]]] = {
    # Rules: a run starts at run_started (STARTED). Reads before the diff go account summary ->
    # positions -> quotes (each optional but positions). After risk_check_passed the run trades
    # (orders, cancels, fills, lookups and reads in any order, paired by op_id), then reconciles,
    # then run_completed. quote_gate_failed, risk_check_failed, dry_run_completed, run_aborted
    # and (for a graceful stop) kill_completed also end a run; run_resumed (recovery) puts a
    # run that did not write run_completed back to STARTED.
    "cron_start": _stay(_P.STARTED),
    "account_summary_intent": {
        _P.STARTED: _P.ACCOUNT, _P.ACCOUNT: _P.ACCOUNT, **_stay(*_POST_RISK),
    },
    "positions_intent": {
        _P.STARTED: _P.POSITIONS, _P.ACCOUNT: _P.POSITIONS, _P.POSITIONS: _P.POSITIONS,
        **_stay(*_POST_RISK),
    },
    "quotes_intent": {_P.POSITIONS: _P.QUOTES, _P.QUOTES: _P.QUOTES, **_stay(*_POST_RISK)},
    "quote_gate_failed": {_P.POSITIONS: _P.ENDED, _P.QUOTES: _P.ENDED},
    "diff_computed": {_P.POSITIONS: _P.DIFF, _P.QUOTES: _P.DIFF},
    "risk_check_passed": {_P.DIFF: _P.TRADING},
    "risk_check_failed": {_P.DIFF: _P.ENDED},
    "no_rebalance_needed": {_P.DIFF: _P.NO_CHANGE},
    "dry_run_completed": {_P.TRADING: _P.ENDED},
    "user_confirmed": _stay(_P.TRADING),
    "order_intent": _stay(_P.TRADING),
    "cancel_intent": _stay(*_POST_RISK),
    "open_orders_intent": _stay(*_LIVE),
    "completed_orders_intent": _stay(*_LIVE),
    "executions_intent": _stay(*_LIVE),
    "order_filled": _stay(*_POST_RISK),
    "order_status": _stay(*_POST_RISK),
    "run_completed": {_P.NO_CHANGE: _P.ENDED, _P.TRADING: _P.ENDED, _P.RECONCILING: _P.ENDED},
    "cron_completed": {_P.ENDED: _P.CRON_DONE},
    "idempotency_rejection": {_P.STARTED: _P.ENDED},
    "run_aborted": {p: _P.ENDED for p in _LIVE},
}
"""Event → {phase it may appear in → phase after it}. ``reconcile_*`` events follow
``RECONCILE_RULE``; ``positions_fetched`` follows ``positions_intent``; ``FREE_EVENTS`` may
appear anywhere; unknown events are allowed (with a warning)."""

RECONCILE_RULE: Final[Mapping[Phase, Phase]] = {
    _P.NO_CHANGE: _P.RECONCILING, _P.TRADING: _P.RECONCILING, _P.RECONCILING: _P.RECONCILING,
}

FREE_EVENTS: Final = frozenset(
    {
        "kill_requested", "kill_phase1_started", "kill_phase1_completed", "kill_phase2_started",
        "kill_phase2_completed", "kill_completed", "tail_repaired", "latch_set", "latch_cleared",
    }
)
"""Events allowed anywhere, in runs and in kill/recover/repair invocations."""

RUN_ONLY_EVENTS: Final = frozenset(
    {
        "cron_start", "positions_fetched", "quote_gate_failed", "diff_computed",
        "risk_check_passed", "risk_check_failed", "no_rebalance_needed", "dry_run_completed",
        "user_confirmed", "run_completed", "cron_completed", "run_aborted", "run_resumed",
    }
)
"""Events that only make sense inside a run (a group that starts with ``run_started``)."""

KNOWN_EVENTS: Final = frozenset(
    set(RUN_TABLE) | FREE_EVENTS | RUN_ONLY_EVENTS | set(INTENT_EVENTS) | set(RESULT_EVENTS)
    | {"run_started", "risk_check", "positions_fetched"}
)

_ORDER_EVENTS: Final = frozenset(
    {"order_intent", "order_submitted", "order_failed", "cancel_intent", "cancel_result"}
)
_SEMANTIC: Final = frozenset({"order_violation", "unknown_op"})
_DAMAGE: Final = frozenset({"sequence_gap", "sequence_duplicate", "sequence_not_monotonic"})
_READ_OPS: Final = frozenset({"account_summary", "positions", "quotes"})
_ERROR_CLASSES: Final = frozenset({"rejected", "ambiguous"})
_OUR_TS: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", re.ASCII)
_ANCESTOR_TS: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})", re.ASCII
)
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
MAX_GAPS: Final = 10_000
"""Sequence gaps remembered (to tell a late record from a duplicate)."""


def _fast_hash_agrees() -> bool:
    # The fast path (reader.canonical_fast) hashes the line's own bytes with the hash entry cut
    # out. It is only used when it agrees with records.record_hash and records.canonical_bytes
    # on a sample, so a change of the format there silently falls back to the exact slow path.
    sample = encode_record(
        event="probe", sequence_number=1, run_id="r", config_hash="c", prev_hash=GENESIS_HASH,
        ts=datetime.fromisoformat("2026-01-01T00:00:00+00:00"), payload={"a": "1", "z": [1]},
    )
    body = sample.line.rstrip(b"\n")
    parsed = json.loads(body)
    return (
        canonical_fast(parsed, body, sample.hash)
        and sample.hash == record_hash(sample.record)
        and body == canonical_bytes(parsed)
    )


_FAST_HASH: Final = _fast_hash_agrees()
_loads: Final = json.JSONDecoder().decode
_DAMAGED: Final = "damaged"  # _line_problem: the line of ours is not strictly parseable JSON


def _show(value: object) -> str:
    """A short repr of an untrusted value for a message."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nesting deeper than repr allows
        return "<unprintable value>"
    return text if len(text) <= 80 else text[:77] + "..."


def _canonical(obj: Mapping[str, Any]) -> bytes | None:
    """The pinned canonical encoding of parsed JSON values (``None``: cannot be encoded)."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode("ascii")
    except (ValueError, TypeError, RecursionError):
        return None


def _non_canonical_hint(body: bytes, canon: bytes | None) -> str:
    if body.endswith(b"\r"):
        return "CRLF line ending"
    if canon is None:
        return "values that have no canonical encoding"
    if body.strip() != body:
        return "whitespace around the object"
    if len(body) == len(canon):
        return "same length: a number spelled differently, e.g. 1E-05 for 1e-05, or keys out " \
            "of order"
    return "whitespace, float digits or escapes differ"


# -- the validator ----------------------------------------------------------------------------


class _Open:
    __slots__ = ("cid", "done", "line", "operation", "run_id", "symbol")

    def __init__(
        self, line: int, operation: str, run_id: str | None, cid: str | None, symbol: str | None
    ) -> None:
        self.line = line
        self.operation = operation
        self.run_id = run_id
        self.cid = cid
        self.symbol = symbol
        self.done = False


class _Run:
    __slots__ = ("ended_line", "first_line", "has_completed", "is_run", "last_event",
                 "open_reads", "phase", "placed", "planned", "run_id")

    def __init__(self, run_id: str, first_line: int, is_run: bool) -> None:
        self.run_id = run_id
        self.first_line = first_line
        self.is_run = is_run
        self.phase = Phase.STARTED
        self.last_event = "run_started"
        self.ended_line = 0
        self.has_completed = False
        self.open_reads: dict[str, None] = {}  # op_ids of read intents not yet answered
        self.planned: frozenset[str] | None = None  # client ids of the last diff_computed
        self.placed: dict[str, int] = {}  # client id -> line of its first order_intent


class _AncestorRun:
    __slots__ = ("completed", "first_line", "is_run", "open", "positions", "risk_passed", "run_id")

    def __init__(self, first_line: int, is_run: bool) -> None:
        self.run_id = f"nanobook@{first_line}"
        self.first_line = first_line
        self.is_run = is_run
        self.positions = False
        self.risk_passed = False
        self.completed = False
        self.open: OpenQueue[_Open] = OpenQueue()


class _Validator:
    """The streaming validator: ``feed`` each physical line, then ``finish``."""

    def __init__(self) -> None:
        self.errors: list[Issue] = []
        self.damaged_at = 0
        self.warnings: list[Issue] = []
        self.error_count = 0
        self.records = 0
        self.line = 0
        self.offset = 0
        self.line_offset = 0
        self.formats: set[str] = set()
        self.blank_lines: list[tuple[int, int]] = []  # (line, offset) before the first record
        self.last_format: str | None = None  # format of the last record
        self.before: dict[str, Any] | None = None  # the previous line's record, if it was one
        self.torn: Issue | None = None
        self.torn_complete = False
        # ours
        self.ours_seen = False
        self.ancestor_seen = False
        self.last_seq: int | None = None
        # Sequence numbers skipped by gaps, as sorted disjoint ranges [gap_lo[i], gap_hi[i]].
        self.gap_lo: list[int] = []
        self.gap_hi: list[int] = []
        self.last_hash: str | None = None
        self.last_hash_line = 0
        self.last_ts = ""
        self.last_run_id: str | None = None
        self.skipped = 0  # damaged lines since the last record of ours
        self.runs: dict[str, _Run] = {}
        self.open: dict[str, _Open] = {}
        self.op_lines: dict[str, int] = {}
        self.unknown: dict[str, list[int]] = {}  # event -> [count, first line]
        # ancestor
        self.ancestor_run: _AncestorRun | None = None
        self.ancestor_runs: list[_AncestorRun] = []
        self.last_checkpoint: int | None = None

    # -- issues --

    def error(self, code: str, message: str, line: int | None = None) -> None:
        if code in _SEMANTIC and self.damaged_at:
            # Records were lost, garbled or reordered earlier: ordering and pairing findings
            # after that point are likely echoes of the damage, so they are only warnings.
            self.warn(code, f"{message} (unverifiable after damage at line {self.damaged_at})",
                      self.line if line is None else line)
            return
        if code in _DAMAGE and not self.damaged_at:
            self.damaged_at = self.line if line is None else line
        self.error_count += 1
        if len(self.errors) < MAX_ISSUES:
            if line is None or line == self.line:
                self.errors.append(Issue(line=self.line, code=code, message=message,
                                         offset=self.line_offset))
            else:
                self.errors.append(Issue(line=line, code=code, message=message))

    def _unknown(self, event: str) -> None:
        seen = self.unknown.get(event)
        if seen is None:
            self.unknown[event] = [1, self.line]
        else:
            seen[0] += 1

    def warn(self, code: str, message: str, line: int | None) -> None:
        if len(self.warnings) < MAX_ISSUES:
            self.warnings.append(Issue(line=line, code=code, message=message))

    # -- lines --

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.line += 1
        self.line_offset = self.offset
        self.offset += len(chunk)
        if chunk[-1:] != b"\n":
            self._fragment(chunk)
            return
        body = chunk[:-1]
        if not body or body.isspace():
            self._blank()
            return
        try:
            obj = _loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            text = str(exc)
            if b"\x00" in body:
                text = "line contains NUL bytes"
            self._damage("malformed_json", f"invalid JSON: {text[:80]}")
            return
        if type(obj) is not dict:
            self._damage("not_an_object", f"JSON {type(obj).__name__} where an object was expected")
            return
        if "hash" in obj or record_format(obj) == "rebalancer":
            self._ours(obj, body)
        else:
            self._record("nanobook", obj)
            self._ancestor(obj)

    def _record(self, fmt: str, obj: dict[str, Any]) -> None:
        """A line is a record: count it and settle blank lines seen before the first one."""
        self.records += 1
        self.last_format = fmt
        self.before = obj
        if self.blank_lines:
            self._settle_blanks(fmt)

    def _settle_blanks(self, fmt: str) -> None:
        lines, self.blank_lines = self.blank_lines, []
        for line, offset in lines:
            self._blank_issue(line, offset, ancestor=fmt == "nanobook")

    def _blank(self) -> None:
        if self.last_format is None:
            self.blank_lines.append((self.line, self.line_offset))  # decided by the next record
        else:
            self._blank_issue(self.line, self.line_offset, ancestor=self.last_format == "nanobook")
        self.before = None

    def _blank_issue(self, line: int, offset: int, *, ancestor: bool) -> None:
        # The ancestor wrote blank lines harmlessly; in a log of ours a newline-terminated blank
        # line is damage (a record overwritten, or bytes added), as it is for the writer.
        if ancestor:
            self.warn("blank_line", "blank line skipped", line)
        else:
            self._damage("blank_line", "blank or whitespace-only line", line=line, offset=offset)

    def _damage(self, code: str, message: str, *, line: int | None = None,
                offset: int | None = None) -> None:
        """A ``\\n``-terminated line that is not a record (never a torn tail)."""
        line = self.line if line is None else line
        self.error_count += 1
        if len(self.errors) < MAX_ISSUES:
            self.errors.append(Issue(
                line=line, code=code, message=f"damaged line: {message}",
                offset=self.line_offset if offset is None else offset))
        self.damaged_at = self.damaged_at or line
        self.skipped += 1
        self.before = None

    def _fragment(self, chunk: bytes) -> None:
        """The bytes after the file's last newline: a torn tail, whatever they hold."""
        record = complete_tail(chunk, self.before, self.line == 1)
        self.torn = Issue(line=self.line, code="torn_tail", offset=self.line_offset,
                          message=fragment_reason(chunk, complete=record is not None))
        if record is not None:
            self.torn_complete = True
            self._ours(record, chunk)

    # -- records of ours --

    def _ours(self, obj: dict[str, Any], body: bytes) -> None:
        stored = obj.get("hash")
        sound = _FAST_HASH and type(stored) is str and canonical_fast(obj, body, stored)
        if not sound:
            damage = self._not_strict(body)
            if damage is not None:
                self._damage("malformed_json", damage)
                return
        # A record (what _record does, inlined on the hot path).
        self.records += 1
        self.last_format = "rebalancer"
        self.before = obj
        if self.blank_lines:
            self._settle_blanks("rebalancer")
        # True: first record of the file; None: first of ours after ancestor records (any start
        # is accepted); False: any later record.
        first_of_file: bool | None = False
        if not self.ours_seen:
            self.formats.add("rebalancer")
            first_of_file = None if self.ancestor_seen else True
            self.ours_seen = True
        get = obj.get
        event = get("event")
        run_id = get("run_id")
        seq = get("sequence_number")
        prev = get("prev_hash")
        if (
            type(event) is str and event and type(run_id) is str and run_id
            and type(seq) is int and type(stored) is str and type(prev) is str
            and type(get("config_hash")) is str and _our_ts_ok(ts := get("ts"))
        ):
            if ts < self.last_ts:  # the fixed format sorts like the instants it names
                self._clock_back(ts)
            self.last_ts = ts
            # Fast path: every header key present and well typed (hex checked on failure only).
            last = self.last_seq
            if last is not None and seq == last + 1 and not self.skipped:
                self.last_seq = seq
            else:
                self._sequence(seq, first_of_file)
            if not sound:
                if _HEX64.fullmatch(stored):
                    self._line_problem(obj, body, stored, seq)
                else:
                    self.error("bad_field_type", "hash must be 64 lowercase hex digits")
                    self._line_problem(obj, body, None, seq)
                    stored = None
            if prev != self.last_hash or first_of_file is not False:
                if _HEX64.fullmatch(prev):
                    self._chain(prev, first_of_file)
                else:
                    self.error("bad_field_type", "prev_hash must be 64 lowercase hex digits")
            self.last_hash = stored
            self.last_hash_line = self.line
            self.skipped = 0
            self._run_rules(obj, event, run_id)
            return
        self._ours_slow(obj, body, first_of_file, sound)

    def _clock_back(self, ts: str) -> None:
        back = datetime.fromisoformat(self.last_ts) - datetime.fromisoformat(ts)
        if back.total_seconds() > CLOCK_BACK_TOLERANCE_SECS:
            self.warn("clock_backwards",
                      f"ts {ts} is {back.total_seconds():.3f} s earlier than the record before "
                      f"(line {self.last_hash_line})", self.line)

    def _ours_slow(
        self, obj: dict[str, Any], body: bytes, first_of_file: bool | None, sound: bool
    ) -> None:
        line = self.line
        event = obj.get("event")
        ok = True
        for key in ("event", "ts", "sequence_number", "run_id", "config_hash", "prev_hash",
                    "hash"):
            if key not in obj:
                self.error("missing_field", f"record lacks header key {key!r}")
                ok = False
        if not isinstance(event, str) or not event:
            if "event" in obj:
                self.error("bad_field_type", "event must be a non-empty string")
            event = ""
        ts = obj.get("ts")
        if "ts" in obj and not _our_ts_ok(ts):
            self.error("bad_timestamp",
                       f"ts {_show(ts)} is not RFC 3339 UTC 'YYYY-MM-DDTHH:MM:SS.ffffffZ'")
        run_id = obj.get("run_id")
        if "run_id" in obj and (not isinstance(run_id, str) or not run_id):
            self.error("bad_field_type", "run_id must be a non-empty string")
            run_id = None
        if "config_hash" in obj and not isinstance(obj["config_hash"], str):
            self.error("bad_field_type", "config_hash must be a string")
        seq = obj.get("sequence_number")
        if "sequence_number" in obj and (isinstance(seq, bool) or not isinstance(seq, int)):
            self.error("bad_field_type", f"sequence_number {_show(seq)} must be an integer")
            seq = None
        stored = obj.get("hash")
        if "hash" in obj and (not isinstance(stored, str) or not _HEX64.fullmatch(stored)):
            self.error("bad_field_type", "hash must be 64 lowercase hex digits")
            stored = None
        prev = obj.get("prev_hash")
        if "prev_hash" in obj and (not isinstance(prev, str) or not _HEX64.fullmatch(prev)):
            self.error("bad_field_type", "prev_hash must be 64 lowercase hex digits")
            prev = None
        if isinstance(seq, int):
            self._sequence(seq, first_of_file)
        if not sound:
            self._line_problem(obj, body, stored, seq)
        if prev is not None:
            self._chain(prev, first_of_file)
        self.last_hash = stored
        self.last_hash_line = line
        self.skipped = 0
        if ok or (event and isinstance(run_id, str)):
            self._run_rules(obj, event, run_id if isinstance(run_id, str) else "?")

    def _sequence(self, seq: int, first_of_file: bool | None) -> None:
        last = self.last_seq
        if last is None:
            if first_of_file and not 1 <= seq <= 1 + self.skipped:
                self.error("sequence_gap",
                           f"first record has sequence_number {seq}, expected 1")
            self.last_seq = seq
            return
        if seq == last + 1 or (self.skipped and last < seq <= last + 1 + self.skipped):
            self.last_seq = seq
            return
        if seq > last:
            self.error("sequence_gap",
                       f"sequence_number {seq} follows {last}: {seq - last - 1} missing")
            if len(self.gap_lo) < MAX_GAPS:
                # Gaps open above every earlier one, so the lists stay sorted.
                self.gap_lo.append(last + 1)
                self.gap_hi.append(seq - 1)
            self.last_seq = seq
            return
        if self._fill_gap(seq):
            self.error("sequence_not_monotonic",
                       f"sequence_number {seq} after {last}: out of order")
            return
        self.error("sequence_duplicate",
                   f"sequence_number {seq} appears again (last was {last})")

    def _fill_gap(self, seq: int) -> bool:
        """Whether ``seq`` was skipped by a gap (a late record); it is then no longer missing."""
        lo, hi = self.gap_lo, self.gap_hi
        i = bisect_right(lo, seq) - 1
        if i < 0 or seq > hi[i]:
            return False
        if lo[i] == hi[i]:
            del lo[i], hi[i]
        elif seq == lo[i]:
            lo[i] += 1
        elif seq == hi[i]:
            hi[i] -= 1
        else:  # split the range around seq
            lo.insert(i + 1, seq + 1)
            hi.insert(i + 1, hi[i])
            hi[i] = seq - 1
        return True

    @staticmethod
    def _not_strict(body: bytes) -> str | None:
        """Why a line of ours fails the strict parse (duplicate keys, NaN...), else ``None``."""
        try:
            parse_strict(body)
        except (ValueError, RecursionError) as exc:
            return f"invalid JSON: {str(exc)[:80]}"
        return None

    def _line_problem(
        self, obj: dict[str, Any], body: bytes, stored: object, seq: object
    ) -> None:
        """The exact check of a line the fast path could not prove sound.

        The bytes must be the canonical encoding of the parsed record (``non_canonical``) and
        ``stored``, when a 64-hex string, the SHA-256 of it without ``hash`` (``hash_mismatch``).
        """
        hashed = isinstance(stored, str) and _HEX64.fullmatch(stored) is not None
        matches = False
        if hashed:
            rest = _canonical({k: v for k, v in obj.items() if k != "hash"})
            matches = rest is not None and hashlib.sha256(rest).hexdigest() == stored
        canon = _canonical(obj)
        if canon != body:
            what = "" if not hashed else (
                "; its parsed values still match the hash" if matches
                else "; its values do not match the hash either")
            self.error("non_canonical",
                       f"line is not the canonical JSON of its record "
                       f"({_non_canonical_hint(body, canon)}{what}; sequence_number {seq})")
        elif hashed and not matches:
            self.error("hash_mismatch",
                       f"hash does not match the record's content (sequence_number {seq})")

    def _chain(self, prev: str, first_of_file: bool | None) -> None:
        if first_of_file is None or self.skipped:
            return
        if first_of_file:
            if prev != GENESIS_HASH:
                self.error("chain_broken",
                           "first record's prev_hash is not the genesis hash (64 zeros)")
            return
        if self.last_hash is not None and prev != self.last_hash:
            self.error("chain_broken",
                       f"prev_hash does not match the hash of the record at line "
                       f"{self.last_hash_line}")

    # -- per-run ordering (ours) --

    def _run_rules(self, obj: dict[str, Any], event: str, run_id: str) -> None:
        line = self.line
        run = self.runs.get(run_id)
        if event == "run_started":
            if run is not None:
                self.error("order_violation",
                           f"run_started for run {run_id} which already has records "
                           f"(first at line {run.first_line})")
                return
            self.runs[run_id] = _Run(run_id, line, True)
            self.last_run_id = run_id
            return
        if run is None:
            run = self.runs[run_id] = _Run(run_id, line, False)
        operation = INTENT_EVENTS.get(event)
        if operation is not None:
            self._intent(obj, event, operation, run)
        elif event in RESULT_EVENTS:
            self._result(obj, event, RESULT_EVENTS[event], run)
            return
        if event in FREE_EVENTS:
            if event == "kill_completed" and run.is_run and run.phase < Phase.ENDED:
                # The runner's graceful stop ends its run with kill_completed.
                run.phase = Phase.ENDED
                run.ended_line = line
                run.last_event = event
            return
        if event not in KNOWN_EVENTS and not event.startswith("reconcile_"):
            self._unknown(event)
            return
        if not run.is_run:
            if event in RUN_ONLY_EVENTS:
                self.error("order_violation",
                           f"{event} in {run_id}, which has no run_started")
            return
        if event == "idempotency_rejection" and run.phase is Phase.STARTED:
            run.phase = Phase.ENDED
            run.ended_line = line
            return
        if event == "run_resumed":
            # Recovery continues an interrupted run (not one that wrote run_completed): the
            # run starts over from its reads.
            if run.has_completed or run.phase is Phase.CRON_DONE:
                self.error("order_violation",
                           f"run_resumed for run {run_id}, which completed (line "
                           f"{run.ended_line})")
                return
            run.phase = Phase.STARTED
            run.ended_line = 0
            run.last_event = event
            run.planned = None
            return
        if event.startswith("reconcile_"):
            rule: Mapping[Phase, Phase] | None = RECONCILE_RULE
        elif event == "positions_fetched":
            rule = RUN_TABLE["positions_intent"]
        else:
            rule = RUN_TABLE.get(event)
        if rule is None:
            return
        nxt = rule.get(run.phase)
        if nxt is None:
            nxt = self._special(obj, event, run)
        if nxt is None:
            self.error("order_violation", self._why(event, run))
            return
        if event == "diff_computed":
            self._diff_reads_closed(run)
            rows = obj.get("orders")
            if isinstance(rows, list):
                run.planned = frozenset(
                    r["client_order_id"] for r in rows
                    if isinstance(r, dict) and isinstance(r.get("client_order_id"), str))
        if nxt >= Phase.ENDED and run.phase < Phase.ENDED:
            run.ended_line = line
        if event == "run_completed":
            run.has_completed = True
        run.phase = nxt
        run.last_event = event

    def _special(self, obj: dict[str, Any], event: str, run: _Run) -> Phase | None:
        if event != "run_completed" or run.has_completed:
            return None
        if run.phase is Phase.ENDED:
            return Phase.ENDED  # run_completed after quote_gate/risk failure or a dry run
        status = obj.get("status")
        if run.phase < Phase.ENDED and isinstance(status, str) and status != "completed":
            return Phase.ENDED  # an interrupted or failed run closed early
        return None

    def _why(self, event: str, run: _Run) -> str:
        where = f"in run {run.run_id}"
        if run.phase >= Phase.ENDED:
            return f"{event} after the run ended (line {run.ended_line}) {where}"
        if event in ("diff_computed", "quotes_intent", "quote_gate_failed") and (
            run.phase < Phase.POSITIONS
        ):
            return f"{event} before positions were fetched {where}"
        if event in ("order_intent", "cancel_intent", "order_filled", "order_status",
                     "user_confirmed", "dry_run_completed") and run.phase < Phase.TRADING:
            return f"{event} before risk_check_passed {where}"
        if event in ("risk_check_passed", "risk_check_failed", "no_rebalance_needed") and (
            run.phase < Phase.DIFF
        ):
            return f"{event} before diff_computed {where}"
        return f"{event} not allowed after {run.last_event} {where}"

    def _diff_reads_closed(self, run: _Run) -> None:
        # Each unanswered read is reported once (a later diff does not list it again).
        for op_id in run.open_reads:
            pending = self.open.get(op_id)
            if pending is not None:
                self.error("order_violation",
                           f"diff_computed while the {pending.operation} intent at line "
                           f"{pending.line} has no result")
        run.open_reads.clear()

    def _order_fields(self, obj: dict[str, Any], event: str) -> tuple[str | None, str | None]:
        if event not in _ORDER_EVENTS:
            return None, None
        cid = obj.get("client_order_id")
        symbol = obj.get("symbol")
        for key, value in (("client_order_id", cid), ("symbol", symbol)):
            if value is None:
                self.error("missing_field", f"{event} lacks {key!r}")
            elif not isinstance(value, str):
                self.error("bad_field_type", f"{event}: {key} must be a string")
        needed: tuple[str, ...] = ()
        if event == "order_submitted":
            needed = ("order_id", "perm_id", "status")
        elif event in ("cancel_intent", "cancel_result"):
            needed = ("order_id",)
        for key in needed:
            if key not in obj:
                self.error("missing_field", f"{event} lacks {key!r}")
        return (cid if isinstance(cid, str) else None,
                symbol if isinstance(symbol, str) else None)

    def _intent(self, obj: dict[str, Any], event: str, operation: str, run: _Run) -> None:
        cid, symbol = self._order_fields(obj, event)
        op_id = obj.get("op_id")
        if not isinstance(op_id, str) or not op_id:
            self.error("missing_field" if op_id is None else "bad_field_type",
                       f"{event} needs a string op_id")
            return
        first = self.op_lines.get(op_id)
        if first is not None:
            self.error("order_violation",
                       f"duplicate op_id {_show(op_id)} (first used at line {first})")
            return
        self.op_lines[op_id] = self.line
        self.open[op_id] = _Open(self.line, operation, run.run_id, cid, symbol)
        if operation in _READ_OPS:
            run.open_reads[op_id] = None
        if event == "order_intent" and run.is_run and cid is not None:
            self._order_planned(run, cid)

    def _order_planned(self, run: _Run, cid: str) -> None:
        # Safety signals, not corruption: an order the plan did not contain, or a second
        # submission of the same client order id within one run.
        if run.planned is not None and cid not in run.planned:
            self.warn("order_not_planned",
                      f"order_intent for client_order_id {cid} is not in the run's "
                      "diff_computed orders", self.line)
        first = run.placed.get(cid)
        if first is None:
            run.placed[cid] = self.line
        else:
            self.warn("order_resubmitted",
                      f"client_order_id {cid} was already submitted at line {first} in run "
                      f"{run.run_id}", self.line)

    def _result(self, obj: dict[str, Any], event: str, operation: str, run: _Run) -> None:
        cid, _symbol = self._order_fields(obj, event)
        latency = obj.get("latency_ms")
        if latency is None:
            self.error("missing_field", f"{event} lacks 'latency_ms'")
        elif isinstance(latency, bool) or not isinstance(latency, int):
            self.error("bad_field_type", f"{event}: latency_ms must be an integer")
        error_class = obj.get("error_class")
        if error_class is not None and (
            not isinstance(error_class, str) or error_class not in _ERROR_CLASSES
        ):
            self.error("bad_field_type",
                       f"{event}: error_class {_show(error_class)} is not 'rejected' or "
                       "'ambiguous'")
        if event == "order_failed" and error_class is None:
            self.error("missing_field", "order_failed lacks 'error_class'")
        op_id = obj.get("op_id")
        if not isinstance(op_id, str) or not op_id:
            self.error("missing_field" if op_id is None else "bad_field_type",
                       f"{event} needs a string op_id")
            return
        pending = self.open.pop(op_id, None)
        if pending is None:
            if op_id in self.op_lines:
                self.error("order_violation",
                           f"{event} for op_id {_show(op_id)} whose intent (line "
                           f"{self.op_lines[op_id]}) already has a result")
            else:
                self.error("unknown_op",
                           f"{event} for op_id {_show(op_id)} without a matching intent")
            return
        owner = self.runs.get(pending.run_id or "")
        if owner is not None:
            owner.open_reads.pop(op_id, None)
        if pending.operation != operation:
            self.error("order_violation",
                       f"{event} answers op_id {_show(op_id)}, whose intent at line {pending.line} "
                       f"is a {pending.operation} intent")
        elif cid is not None and pending.cid is not None and cid != pending.cid:
            self.error("order_violation",
                       f"{event} client_order_id {_show(cid)} differs from its intent's "
                       f"{_show(pending.cid)} (line {pending.line})")
        if run.is_run and run.phase >= Phase.ENDED:
            self.error("order_violation",
                       f"{event} after the run ended (line {run.ended_line}) in run {run.run_id}")

    # -- ancestor records --

    def _ancestor(self, obj: dict[str, Any]) -> None:
        self.formats.add("nanobook")
        self.ancestor_seen = True
        if self.ours_seen:
            self.error("chain_broken",
                       "record without hash chain (nanobook format) after hash-chained records")
        line = self.line
        event = obj.get("event")
        if not isinstance(event, str) or not event:
            self.error("missing_field" if event is None else "bad_field_type",
                       "record needs a string 'event'")
            event = ""
        ts = obj.get("ts")
        if ts is None:
            self.error("missing_field", "record lacks 'ts'")
        elif not _ancestor_ts_ok(ts):
            self.error("bad_timestamp", f"ts {_show(ts)} is not an RFC 3339 timestamp")
        seq = obj.get("sequence_number")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
            self.error("bad_field_type", f"sequence_number {_show(seq)} must be an integer")
            seq = None
        for key in ("window_id", "checkpoint"):
            if key in obj and not isinstance(obj[key], str):
                self.error("bad_field_type", f"{key} must be a string")
        if "checkpoint" in obj:
            if seq is None:
                if "sequence_number" not in obj:
                    self.error("missing_field", "checkpoint record lacks 'sequence_number'")
            else:
                last = self.last_checkpoint
                if last is not None and seq == last:
                    self.error("sequence_duplicate",
                               f"checkpoint sequence_number {seq} appears again")
                elif last is not None and seq < last:
                    self.error("sequence_not_monotonic",
                               f"checkpoint sequence_number {seq} after {last}")
                self.last_checkpoint = seq if last is None else max(seq, last)
        run = self.ancestor_run
        if event == "run_started" or run is None:
            run = self.ancestor_run = _AncestorRun(line, event == "run_started")
            self.ancestor_runs.append(run)
            if event == "run_started":
                self.last_run_id = run.run_id
                return
        self._ancestor_rules(obj, event, run)

    def _ancestor_rules(self, obj: dict[str, Any], event: str, run: _AncestorRun) -> None:
        if event in ("positions_fetched", "positions_result"):
            run.positions = True
        elif event == "diff_computed" and run.is_run and not run.positions:
            self.error("order_violation", f"diff_computed before positions in {run.run_id}")
        elif event == "risk_check_passed" or (
            event == "risk_check" and obj.get("passed") is True
        ):
            run.risk_passed = True
        elif event in ("order_intent", "order_submitted") and run.is_run and (
            not run.risk_passed and obj.get("reconciled") is not True
        ):
            self.error("order_violation", f"{event} before the risk check passed in {run.run_id}")
        if ends_ancestor_run(event, obj):
            run.completed = True
        operation = INTENT_EVENTS.get(event)
        symbol = obj.get("symbol")
        if not isinstance(symbol, str):
            symbol = None
        if operation is not None:
            cid = obj.get("client_order_id")
            run.open.add(_Open(self.line, operation, None, cid if isinstance(cid, str) else None,
                               symbol), operation, symbol)
            return
        operation = RESULT_EVENTS.get(event)
        if operation is None:
            if event not in KNOWN_EVENTS and not event.startswith("reconcile_"):
                self._unknown(event)
            return
        run.open.match(operation, symbol)

    # -- the end --

    def finish(self) -> ValidationReport:
        for line, offset in self.blank_lines:  # no record at all: judged as a log of ours
            self._blank_issue(line, offset, ancestor=False)
        self.blank_lines = []
        torn_offset: int | None = None
        if self.torn is not None:
            torn = self.torn
            torn_offset = torn.offset
            if self.torn_complete:
                message = (f"torn tail at byte offset {torn.offset}: the last record (line "
                           f"{torn.line}) is complete and sound but has no newline; "
                           "`rebalancer audit repair` completes the line and keeps the record")
            else:
                message = (f"torn tail at byte offset {torn.offset} ({torn.message}); "
                           "`rebalancer audit repair` can cut it")
            self.error_count += 1
            self.errors.append(Issue(line=torn.line, code="torn_tail", offset=torn.offset,
                                     message=message))
        incomplete: list[IncompleteIntent] = []
        for op_id, pending in self.open.items():
            incomplete.append(IncompleteIntent(
                line=pending.line, operation=pending.operation, op_id=op_id,
                client_order_id=pending.cid, run_id=pending.run_id, symbol=pending.symbol))
        for arun in self.ancestor_runs:
            for pending in arun.open.remaining():
                incomplete.append(IncompleteIntent(
                    line=pending.line, operation=pending.operation, op_id=None,
                    client_order_id=pending.cid, run_id=arun.run_id, symbol=pending.symbol))
        incomplete.sort(key=lambda i: i.line)
        for item in incomplete:
            what = f"op_id {item.op_id}" if item.op_id else "no op_id"
            if item.client_order_id:
                what += f", client_order_id {item.client_order_id}"
            self.warn("incomplete_intent",
                      f"{item.operation} intent without a result ({what}): the operation was "
                      "interrupted; recovery must resolve it", item.line)
        unfinished: list[tuple[int, str]] = []
        unfinished += [(r.first_line, r.run_id) for r in self.runs.values()
                       if r.is_run and r.phase < Phase.ENDED]
        unfinished += [(r.first_line, r.run_id) for r in self.ancestor_runs
                       if r.is_run and not r.completed]
        unfinished.sort()
        for line, run_id in unfinished:
            self.warn("run_incomplete", f"run {run_id} did not complete (interrupted)", line)
        for event, (count, first_line) in self.unknown.items():
            self.warn("unknown_event",
                      f"unknown event {_show(event)} ({count} record(s), first at line "
                      f"{first_line})", first_line)
        if "nanobook" in self.formats:
            self.warn("no_hash_chain",
                      "no hash chain: tamper evidence unavailable for nanobook-format records",
                      None)
        if self.records == 0 and torn_offset is None:
            self.warn("empty_log", "the log holds no records", None)
        fmt: LogFormat
        if len(self.formats) > 1:
            fmt = "mixed"
        elif self.formats == {"nanobook"}:
            fmt = "nanobook"
        else:
            fmt = "rebalancer"
        runs = sum(1 for r in self.runs.values() if r.is_run) + sum(
            1 for r in self.ancestor_runs if r.is_run)
        return ValidationReport(
            valid=self.error_count == 0,
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
            incomplete_intents=tuple(incomplete),
            format=fmt,
            runs=runs,
            records=self.records,
            torn_tail_offset=torn_offset,
            error_count=self.error_count,
            incomplete_runs=tuple(run_id for _, run_id in unfinished),
            last_run_id=self.last_run_id,
            torn_tail_complete=self.torn_complete,
        )


def _our_ts_ok(value: object) -> TypeGuard[str]:
    if not isinstance(value, str) or not _OUR_TS.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _ancestor_ts_ok(value: object) -> bool:
    if not isinstance(value, str):
        return False
    match = _ANCESTOR_TS.fullmatch(value)
    if match is None:
        return False
    base, fraction, zone = match.groups()
    text = base + ("." + (fraction + "00000")[:6] if fraction else "")
    text += "+00:00" if zone in ("Z", "z") else zone
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


# -- entry points -----------------------------------------------------------------------------


def validate_lines(chunks: Iterable[bytes]) -> ValidationReport:
    """Validate a log given as its physical lines, each with its ``\\n`` (the last may lack it)."""
    validator = _Validator()
    feed = validator.feed
    for chunk in chunks:
        feed(chunk)
    return validator.finish()


def validate_bytes(data: bytes) -> ValidationReport:
    """Validate a whole log held in memory."""
    return validate_lines(io.BytesIO(data))


def validate_file(path: Path | str) -> ValidationReport:
    """Validate the log at ``path`` in one streaming pass (``OSError`` propagates)."""
    with Path(path).open("rb") as handle:
        return validate_lines(handle)


def read_and_validate(path: Path | str) -> tuple[AuditLogView, ValidationReport]:
    """Read the log once and return both the reader's view and the validator's report.

    For recovery: decide from the view only when the report's errors allow it. ``OSError``
    propagates.
    """
    data = Path(path).read_bytes()
    return parse_log(data), validate_bytes(data)
