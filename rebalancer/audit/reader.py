"""Read an audit log into typed, frozen views. Pure over bytes; ``read_log`` does the I/O.

Two formats are understood, record by record:

- ``rebalancer`` (ours): every record carries the header keys (``run_id``, ``sequence_number``,
  ``prev_hash``, ``hash``, ...). Records are grouped into runs by ``run_id``; an intent and its
  result carry the same ``op_id``.
- ``nanobook`` (the ancestor): no hash chain and no run id; sequence numbers only on checkpoints;
  dollar floats; ``positions_fetched``; old logs without ``order_intent``. A run starts at each
  ``run_started``; intents and results are paired by position (the oldest open intent of the same
  operation; for orders, the oldest open intent with the result's symbol when it has one).

A record counts as ours when it carries any of ``hash``, ``prev_hash``, ``run_id`` or
``config_hash``; otherwise it is read as ancestor format. Lines that are not JSON objects are not
records: they are kept as ``LineProblem`` entries. A line of ours must also parse strictly
(``records.parse_strict``: no duplicate keys, no ``NaN``/``Infinity``); one that does not is a
``malformed_json`` problem, not a record. Ancestor lines are parsed leniently.

The torn tail follows the writer's rule (``records.scan_log``): only the non-empty bytes after the
file's last ``\n``. Every ``\n``-terminated line that is not a record (blank lines included) is a
problem, even the last one. When the unterminated fragment is itself a complete, sound record of
ours that chains onto the record before it, it is read as a record *and* reported as a torn tail
with ``complete=True`` (``audit repair`` adds the newline and keeps it).

Structural checks (hash chain, sequence, ordering) belong to ``rebalancer.audit.validate``; the
reader never raises on bad content, only on I/O.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Protocol, TypeVar

from rebalancer.audit.records import GENESIS_HASH, parse_strict, parse_ts, verify_line

if TYPE_CHECKING:
    from datetime import datetime

Format = Literal["rebalancer", "nanobook"]
LogFormat = Literal["rebalancer", "nanobook", "mixed"]

OPERATIONS: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    "account_summary": ("account_summary_intent", frozenset({"account_summary_result"})),
    "positions": ("positions_intent", frozenset({"positions_result"})),
    "quotes": ("quotes_intent", frozenset({"quotes_result"})),
    "place_order": ("order_intent", frozenset({"order_submitted", "order_failed"})),
    "cancel_order": ("cancel_intent", frozenset({"cancel_result"})),
    "open_orders": ("open_orders_intent", frozenset({"open_orders_result"})),
    "completed_orders": ("completed_orders_intent", frozenset({"completed_orders_result"})),
    "executions": ("executions_intent", frozenset({"executions_result"})),
}
"""Operation name → (intent event, result events)."""

INTENT_EVENTS: Final[Mapping[str, str]] = {intent: op for op, (intent, _) in OPERATIONS.items()}
"""Intent event → operation."""

RESULT_EVENTS: Final[Mapping[str, str]] = {
    result: op for op, (_, results) in OPERATIONS.items() for result in results
}
"""Result event → operation."""

OUR_MARKER_KEYS: Final = ("hash", "prev_hash", "run_id", "config_hash")
"""Any of these keys makes a record ours (hash-chained); none of them: ancestor format."""

RUN_END_EVENTS: Final = frozenset(
    {"run_completed", "quote_gate_failed", "risk_check_failed", "dry_run_completed",
     "run_aborted", "kill_completed"}
)
"""Events after which a run of ours is over (``run_completed`` may still follow the others;
``kill_completed`` inside a run is the runner's graceful stop)."""

ANCESTOR_END_EVENTS: Final = frozenset(RUN_END_EVENTS | {"idempotency_rejection"})
"""Events after which an ancestor run is over (besides ``risk_check`` with ``passed: false`` and
``user_confirmed`` with ``approved: false``)."""


def ends_ancestor_run(event: str, fields: Mapping[str, Any]) -> bool:
    """Whether an ancestor record with ``event`` and ``fields`` ends its run."""
    if event in ANCESTOR_END_EVENTS:
        return True
    if event == "risk_check":
        return fields.get("passed") is False
    return event == "user_confirmed" and fields.get("approved") is False


def record_format(obj: Mapping[str, Any]) -> Format:
    """``"rebalancer"`` when the object carries one of our header keys, else ``"nanobook"``."""
    for key in OUR_MARKER_KEYS:
        if key in obj:
            return "rebalancer"
    return "nanobook"


# -- values -----------------------------------------------------------------------------------


def parse_money(value: object) -> Decimal:
    """A money amount from a decimal string (ours), an int, or a dollar float (ancestor).

    Floats go through their shortest ``repr`` so ``185.09`` reads as ``Decimal("185.09")``.
    Raises ``ValueError`` for booleans, non-finite values and anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"money value {value!r} is a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"money value {value!r} is not finite")
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"money value {value!r} is not a decimal number") from None
        if not amount.is_finite():
            raise ValueError(f"money value {value!r} is not finite")
        return amount
    raise ValueError(f"money value {value!r} has type {type(value).__name__}")


def parse_shares(value: object) -> int:
    """A share count from an int, an integral float, or an integer string.

    Raises ``ValueError`` for fractional or non-numeric values.
    """
    if isinstance(value, bool):
        raise ValueError(f"share count {value!r} is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    raise ValueError(f"share count {value!r} is not a whole number")


def _cents(value: object) -> Decimal:
    return parse_money(value) / 100


# -- raw lines --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RawLine:
    """One physical line of the file, split on ``\\n`` only."""

    line: int
    """1-based line number."""
    offset: int
    """Byte offset of the line's first byte."""
    data: bytes
    """The line without its ``\\n``."""
    terminated: bool
    """Whether the line ends with ``\\n`` (only the last line of a file can lack it)."""


def split_lines(data: bytes) -> Iterator[RawLine]:
    """The physical lines of ``data`` (a file ending in ``\\n`` has no empty last line)."""
    offset = 0
    for number, chunk in enumerate(io.BytesIO(data), start=1):
        terminated = chunk.endswith(b"\n")
        body = chunk[:-1] if terminated else chunk
        yield RawLine(line=number, offset=offset, data=body, terminated=terminated)
        offset += len(chunk)


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One parsed record (a JSON object on its own line)."""

    line: int
    offset: int
    format: Format
    fields: Mapping[str, Any]
    """The whole object as read (header and payload keys at top level)."""

    @property
    def event(self) -> str:
        """The event name (empty when missing or not a string)."""
        value = self.fields.get("event")
        return value if isinstance(value, str) else ""

    @property
    def run_id(self) -> str | None:
        """Our ``run_id`` (``None`` on ancestor records)."""
        return self.text("run_id")

    @property
    def op_id(self) -> str | None:
        """The bracket key of an intent or a result of ours."""
        return self.text("op_id")

    @property
    def sequence_number(self) -> int | None:
        """The sequence number when present and an int."""
        value = self.fields.get("sequence_number")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def client_order_id(self) -> str | None:
        """The order's client id (``orderRef``), when the record names one."""
        return self.text("client_order_id")

    @property
    def symbol(self) -> str | None:
        """The symbol, when the record names one."""
        return self.text("symbol")

    @property
    def operation(self) -> str | None:
        """The bracketed operation of an intent or result event, else ``None``."""
        return INTENT_EVENTS.get(self.event) or RESULT_EVENTS.get(self.event)

    @property
    def is_intent(self) -> bool:
        """Whether this is an intent record."""
        return self.event in INTENT_EVENTS

    @property
    def is_result(self) -> bool:
        """Whether this is a result record."""
        return self.event in RESULT_EVENTS

    @property
    def timestamp(self) -> datetime | None:
        """``ts`` as an aware UTC ``datetime`` (``None`` when missing or unparseable)."""
        value = self.fields.get("ts")
        if not isinstance(value, str):
            return None
        try:
            return parse_ts(value)
        except (ValueError, OverflowError):  # e.g. year 1 with a positive offset
            return None

    def text(self, key: str) -> str | None:
        """A string field, or ``None`` when missing or not a string."""
        value = self.fields.get(key)
        return value if isinstance(value, str) else None

    def money(self, key: str) -> Decimal | None:
        """A money field as ``Decimal`` dollars (decimal string, int or dollar float).

        Keys ending in ``_cents`` are read as cents. ``None`` when missing, null or unreadable.
        """
        value = self.fields.get(key)
        if value is None:
            return None
        try:
            return _cents(value) if key.endswith("_cents") else parse_money(value)
        except (ValueError, ArithmeticError):  # ArithmeticError: decimal overflow
            return None

    def shares(self, key: str) -> int | None:
        """A share-count field as ``int``; ``None`` when missing, null or not whole."""
        value = self.fields.get(key)
        if value is None:
            return None
        try:
            return parse_shares(value)
        except ValueError:
            return None


ProblemCode = Literal["malformed_json", "not_an_object", "blank_line"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LineProblem:
    """A line that is not a record: not JSON, not an object, or junk."""

    line: int
    offset: int
    code: ProblemCode
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TornTail:
    """The unreadable region at the end of the file (a crash mid-write)."""

    line: int
    """First line of the torn region."""
    offset: int
    """Byte offset where the torn region starts (the file is good up to here)."""
    length: int
    """Bytes in the torn region."""
    reason: str
    complete: bool = False
    """The fragment is a complete, sound record that only lacks its newline: it is also in
    ``records``, and ``audit repair`` keeps it (adds the newline) instead of cutting it."""


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, ProblemCode | None, str]:
    """Parse one line: ``(object, None, "")`` or ``(None, code, message)`` for a non-record.

    Codes: ``blank_line`` (only whitespace), ``malformed_json`` (not JSON, NUL bytes, bad UTF-8;
    for a record of ours also duplicate keys and ``NaN``/``Infinity``), ``not_an_object`` (JSON
    but not an object).
    """
    if not raw.strip():
        return None, "blank_line", "blank line"
    if b"\x00" in raw:
        return None, "malformed_json", "line contains NUL bytes"
    try:
        value = _loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        return None, "malformed_json", f"invalid JSON: {_short(exc)}"
    if not isinstance(value, dict):
        return None, "not_an_object", f"JSON {type(value).__name__} where an object was expected"
    if record_format(value) == "rebalancer":
        problem = strict_problem(value, raw)
        if problem is not None:
            return None, "malformed_json", problem
    return value, None, ""


_loads: Final = json.JSONDecoder().decode
_HASH_MARK: Final = b',"hash":"'


def canonical_fast(obj: Mapping[str, Any], raw: bytes, stored: str) -> bool:
    """Cheap proof that ``raw`` is the sound canonical line of ``obj`` (``False``: not proven).

    ``stored`` is ``obj["hash"]``. The line with its ``,"hash":"..."`` entry cut out must hash to
    ``stored``: then (SHA-256 being preimage resistant) those bytes are the canonical encoding the
    writer hashed, so they hold no duplicate keys, odd spellings or whitespace. What is left to
    check is that the entry sat in its sorted place: ``obj`` keeps the line's key order, so its
    neighbours must sort around ``"hash"``. ``False`` means "use the exact slow check", never
    "unsound".
    """
    if not stored.isascii():
        return False
    marker = _HASH_MARK + stored.encode("ascii") + b'"'
    at = raw.find(marker)
    if at <= 0 or hashlib.sha256(raw[:at] + raw[at + len(marker):]).hexdigest() != stored:
        return False
    keys = list(obj)
    i = keys.index("hash")
    return 0 < i < len(keys) - 1 and keys[i - 1] < "hash" < keys[i + 1]


def strict_problem(obj: Mapping[str, Any], raw: bytes) -> str | None:
    """Why a line of ours is not a strictly parsed JSON object (duplicate keys, ``NaN``...).

    ``None`` when it is; only lines that are not provably canonical are re-parsed.
    """
    stored = obj.get("hash")
    if isinstance(stored, str) and canonical_fast(obj, raw, stored):
        return None
    try:
        parse_strict(raw)
    except (ValueError, RecursionError) as exc:
        return f"invalid JSON: {_short(exc)}"
    return None


def complete_tail(
    raw: bytes, before: Mapping[str, Any] | None, first: bool
) -> dict[str, Any] | None:
    """The record in an unterminated last fragment when it is complete and sound, else ``None``.

    Sound as ``records.verify_line`` (strict, canonical, hash verified) and chained: numbered one
    after ``before`` (the record just before it; ``first``: the fragment is the file's first line,
    so it must be sequence 1 after the genesis hash) with ``prev_hash`` naming its ``hash``.
    """
    try:
        record = verify_line(raw)
    except (ValueError, RecursionError):
        record = None
    if record is None:
        return None
    seq = record.get("sequence_number")
    want_prev: object
    if first:
        want_seq, want_prev = 1, GENESIS_HASH
    elif before is not None and record_format(before) == "rebalancer":
        last = before.get("sequence_number")
        want_prev = before.get("hash")
        if isinstance(last, bool) or not isinstance(last, int) or not isinstance(want_prev, str):
            return None
        want_seq = last + 1
    else:
        return None
    if isinstance(seq, bool) or seq != want_seq or record.get("prev_hash") != want_prev:
        return None
    return record


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 80 else text[:77] + "..."


# -- brackets and runs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class IncompleteIntent:
    """An intent whose result was never written: evidence of an interrupted operation."""

    line: int
    operation: str
    op_id: str | None
    client_order_id: str | None
    run_id: str | None
    symbol: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Bracket:
    """An intent and (when written) its result."""

    operation: str
    intent: Record
    result: Record | None
    run_id: str
    """The run (or invocation) the intent belongs to."""

    @property
    def op_id(self) -> str | None:
        """The intent's ``op_id`` (``None`` for ancestor records)."""
        return self.intent.op_id

    @property
    def complete(self) -> bool:
        """Whether a result was recorded."""
        return self.result is not None

    @property
    def client_order_id(self) -> str | None:
        """The client order id from the intent, else from the result."""
        if self.intent.client_order_id is not None:
            return self.intent.client_order_id
        return None if self.result is None else self.result.client_order_id

    @property
    def error_class(self) -> str | None:
        """``"rejected"`` / ``"ambiguous"`` from a failed result of ours, else ``None``."""
        return None if self.result is None else self.result.text("error_class")

    @property
    def ok(self) -> bool | None:
        """``None`` while incomplete; ``False`` for a failure result; ``True`` otherwise."""
        if self.result is None:
            return None
        if self.result.event == "order_failed" or "error_class" in self.result.fields:
            return False
        success = self.result.fields.get("success")
        return success is not False

    def as_incomplete(self) -> IncompleteIntent:
        """This bracket as an incomplete-intent entry."""
        return IncompleteIntent(
            line=self.intent.line,
            operation=self.operation,
            op_id=self.intent.op_id,
            client_order_id=self.client_order_id,
            run_id=self.run_id,
            symbol=self.intent.symbol,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLeg:
    """One planned order from a ``diff_computed`` record."""

    symbol: str
    action: str
    side: str
    """``BUY`` or ``SELL``."""
    shares: int
    limit: Decimal | None
    client_order_id: str | None
    reference_price: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One ``order_filled`` record, in either format."""

    line: int
    client_order_id: str | None
    symbol: str | None
    order_id: int | str | None
    shares: int | None
    """Shares in this fill (ours); the order's filled total for the ancestor's single record."""
    price: Decimal | None
    cumulative_filled: int | None
    status: str | None
    exec_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """One row of a positions snapshot."""

    symbol: str
    shares: int
    avg_cost: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """The records of one run (or of one kill/recover/repair invocation)."""

    run_id: str
    """Our ``run_id``; for ancestor runs ``nanobook@<line of run_started>``."""
    format: Format
    records: tuple[Record, ...]
    brackets: tuple[Bracket, ...]
    """Brackets whose intent is in this run, in intent order."""
    orphan_results: tuple[Record, ...]
    """Results with no intent (ancestor old format, recovery reconciliations, damage)."""

    @property
    def is_run(self) -> bool:
        """Whether the group starts with ``run_started`` (else: kill/recover/repair, preamble)."""
        return bool(self.records) and self.records[0].event == "run_started"

    @property
    def started(self) -> Record | None:
        """The ``run_started`` record."""
        return self.records[0] if self.is_run else None

    @property
    def terminal(self) -> Record | None:
        """The record that ended the run (``run_completed``, ``risk_check_failed``, ...).

        A ``run_resumed`` record (recovery continuing the run) reopens it: only a terminal
        event after the last ``run_resumed`` counts.
        """
        found: Record | None = None
        for record in self.records:
            if record.event == "run_resumed" and record.format == "rebalancer":
                found = None
            elif found is not None:
                continue
            elif record.format == "nanobook":
                if ends_ancestor_run(record.event, record.fields):
                    found = record
            elif record.event in RUN_END_EVENTS:
                found = record
        return found

    @property
    def completed(self) -> bool:
        """Whether the run reached a terminal event."""
        return self.terminal is not None

    @property
    def window_id(self) -> str | None:
        """The cron window id, if any record of the run carries one."""
        for record in self.records:
            window = record.text("window_id")
            if window is not None:
                return window
        return None

    @property
    def incomplete(self) -> tuple[Bracket, ...]:
        """Brackets without a result."""
        return tuple(b for b in self.brackets if b.result is None)

    def events(self, name: str) -> tuple[Record, ...]:
        """Records of this run with event ``name``."""
        return tuple(r for r in self.records if r.event == name)

    def last(self, name: str) -> Record | None:
        """The last record of this run with event ``name``."""
        for record in reversed(self.records):
            if record.event == name:
                return record
        return None

    def diff_orders(self) -> tuple[OrderLeg, ...]:
        """The planned orders of the run's last ``diff_computed`` (empty when there is none)."""
        record = self.last("diff_computed")
        return () if record is None else order_legs(record)

    def fills(self) -> tuple[Fill, ...]:
        """Every ``order_filled`` record of the run."""
        return tuple(fill_view(r) for r in self.records if r.event == "order_filled")

    def bracket(self, op_id: str) -> Bracket | None:
        """The bracket with ``op_id``."""
        for bracket in self.brackets:
            if bracket.op_id == op_id:
                return bracket
        return None

    def orders(self) -> tuple[OrderTrail, ...]:
        """Everything the run recorded per order, keyed by client order id (ancestor: symbol).

        One trail per planned leg of the last ``diff_computed`` (in plan order), then one per
        order seen only in placements, cancels, fills or statuses.
        """
        trails: list[_TrailBuilder] = []
        by_cid: dict[str, _TrailBuilder] = {}
        # Ancestor plans and results carry no client id: they match on the symbol (the first
        # trail with it; for a record with a client id, the first such trail still without one).
        first_by_symbol: dict[str, _TrailBuilder] = {}
        cidless_by_symbol: dict[str, deque[_TrailBuilder]] = {}

        def by_symbol(cid: str | None, symbol: str) -> _TrailBuilder | None:
            if cid is None:
                return first_by_symbol.get(symbol)
            queue = cidless_by_symbol.get(symbol)
            while queue and queue[0].cid is not None:  # got a client id since: drop it
                queue.popleft()
            return queue[0] if queue else None

        def trail(cid: str | None, symbol: str | None) -> _TrailBuilder | None:
            found = by_cid.get(cid) if cid is not None else None
            if found is None and symbol is not None:
                found = by_symbol(cid, symbol)
            if found is None:
                if cid is None and symbol is None:
                    return None
                found = _TrailBuilder(cid, symbol or "")
                trails.append(found)
                first_by_symbol.setdefault(found.symbol, found)
                if cid is None:
                    cidless_by_symbol.setdefault(found.symbol, deque()).append(found)
            if cid is not None and found.cid is None:
                found.cid = cid
            if cid is not None:
                by_cid[cid] = found
            return found

        for leg in self.diff_orders():
            built = trail(leg.client_order_id, leg.symbol)
            if built is not None:
                built.leg = leg
        for bracket in self.brackets:
            if bracket.operation in ("place_order", "cancel_order"):
                symbol = bracket.intent.symbol
                if symbol is None and bracket.result is not None:
                    symbol = bracket.result.symbol
                built = trail(bracket.client_order_id, symbol)
                if built is not None:
                    target = built.placements if bracket.operation == "place_order" else (
                        built.cancels)
                    target.append(bracket)
        for record in self.records:
            if record.event in ("order_filled", "order_status"):
                built = trail(record.client_order_id, record.symbol)
                if built is None:
                    continue
                if record.event == "order_filled":
                    built.fills.append(fill_view(record))
                else:
                    built.statuses.append(record)
        return tuple(t.freeze() for t in trails)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderTrail:
    """One order's record in a run: plan leg, placement bracket(s), cancels, fills, statuses."""

    client_order_id: str | None
    symbol: str
    leg: OrderLeg | None
    placements: tuple[Bracket, ...]
    cancels: tuple[Bracket, ...]
    fills: tuple[Fill, ...]
    statuses: tuple[Record, ...]

    @property
    def order_id(self) -> int | str | None:
        """The broker order id from the placement result, a status or a fill."""
        for bracket in self.placements:
            if bracket.result is not None:
                value = bracket.result.fields.get("order_id", bracket.result.fields.get("ibkr_id"))
                if isinstance(value, int | str) and not isinstance(value, bool):
                    return value
        for record in self.statuses:
            value = record.fields.get("order_id")
            if isinstance(value, int | str) and not isinstance(value, bool):
                return value
        for fill in self.fills:
            if fill.order_id is not None:
                return fill.order_id
        return None

    @property
    def filled_shares(self) -> int:
        """Shares filled as recorded: the highest cumulative figure, else the distinct fills."""
        cumulative = [f.cumulative_filled for f in self.fills if f.cumulative_filled is not None]
        cumulative += [s for s in (r.shares("filled") for r in self.statuses) if s is not None]
        if cumulative:
            return max(cumulative)
        # Ours: one record per execution (deduplicated by exec_id). Ancestor: one record per
        # order holding the order's total.
        by_exec = {f.exec_id: f.shares or 0 for f in self.fills if f.exec_id is not None}
        totals = [f.shares or 0 for f in self.fills if f.exec_id is None]
        return sum(by_exec.values()) + (max(totals) if totals else 0)

    @property
    def last_status(self) -> str | None:
        """The latest status text from a status, fill or placement result record."""
        latest: tuple[int, str] | None = None
        candidates = [(r.line, r.text("status")) for r in self.statuses]
        candidates += [(f.line, f.status) for f in self.fills]
        candidates += [(b.result.line, b.result.text("status")) for b in self.placements
                       if b.result is not None]
        for line, status in candidates:
            if status is not None and (latest is None or line > latest[0]):
                latest = (line, status)
        return None if latest is None else latest[1]

    @property
    def incomplete(self) -> tuple[Bracket, ...]:
        """Placement and cancel brackets without a result."""
        return tuple(b for b in (*self.placements, *self.cancels) if b.result is None)


class _TrailBuilder:
    __slots__ = ("cancels", "cid", "fills", "leg", "placements", "statuses", "symbol")

    def __init__(self, cid: str | None, symbol: str) -> None:
        self.cid = cid
        self.symbol = symbol
        self.leg: OrderLeg | None = None
        self.placements: list[Bracket] = []
        self.cancels: list[Bracket] = []
        self.fills: list[Fill] = []
        self.statuses: list[Record] = []

    def freeze(self) -> OrderTrail:
        return OrderTrail(
            client_order_id=self.cid, symbol=self.symbol, leg=self.leg,
            placements=tuple(self.placements), cancels=tuple(self.cancels),
            fills=tuple(self.fills), statuses=tuple(self.statuses),
        )


def _side(action: str) -> str:
    return "SELL" if action.upper().startswith("SELL") else "BUY"


def order_legs(record: Record) -> tuple[OrderLeg, ...]:
    """The ``orders`` of a ``diff_computed`` record as typed legs; unreadable rows are skipped."""
    rows = record.fields.get("orders")
    if not isinstance(rows, list):
        return ()
    legs: list[OrderLeg] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        view = Record(line=record.line, offset=record.offset, format=record.format, fields=row)
        symbol = view.symbol
        shares = view.shares("shares")
        if shares is None:
            shares = view.shares("quantity")
        action = view.text("action") or view.text("side") or ""
        if symbol is None or shares is None or not action:
            continue
        limit = view.money("limit")
        if limit is None:
            limit = view.money("limit_price_cents")
        side = view.text("side")
        legs.append(
            OrderLeg(
                symbol=symbol,
                action=action,
                side=side.upper() if side else _side(action),
                shares=shares,
                limit=limit,
                client_order_id=view.client_order_id,
                reference_price=view.money("reference_price"),
            )
        )
    return tuple(legs)


def fill_view(record: Record) -> Fill:
    """An ``order_filled`` record as a ``Fill`` (ours: shares/price; ancestor: filled/avg_price)."""
    order_id = record.fields.get("order_id", record.fields.get("ibkr_id"))
    if not isinstance(order_id, int | str) or isinstance(order_id, bool):
        order_id = None
    shares = record.shares("shares")
    if shares is None:
        shares = record.shares("filled")
    price = record.money("price")
    if price is None:
        price = record.money("avg_price")
    if price is None:
        price = record.money("avg_price_cents")
    return Fill(
        line=record.line,
        client_order_id=record.client_order_id,
        symbol=record.symbol,
        order_id=order_id,
        shares=shares,
        price=price,
        cumulative_filled=record.shares("cumulative_filled"),
        status=record.text("status"),
        exec_id=record.text("exec_id"),
    )


def positions_view(record: Record) -> tuple[Position, ...]:
    """The ``positions`` rows of a positions result (``qty``/``shares``/``quantity`` accepted)."""
    rows = record.fields.get("positions")
    if not isinstance(rows, list):
        return ()
    out: list[Position] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        view = Record(line=record.line, offset=record.offset, format=record.format, fields=row)
        symbol = view.symbol
        shares = None
        for key in ("shares", "qty", "quantity", "position"):
            shares = view.shares(key)
            if shares is not None:
                break
        if symbol is None or shares is None:
            continue
        out.append(Position(symbol=symbol, shares=shares, avg_cost=view.money("avg_cost")))
    return tuple(out)


# -- the whole log ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditLogView:
    """Everything the reader understood about one log."""

    records: tuple[Record, ...]
    problems: tuple[LineProblem, ...]
    """Lines that are not records, before the torn tail (blank lines included)."""
    torn_tail: TornTail | None
    runs: tuple[Run, ...]
    """Runs and invocations in order of their first record."""
    brackets: tuple[Bracket, ...]
    """Every bracket in intent order."""
    size: int
    """Bytes read."""
    format: LogFormat
    """``rebalancer``, ``nanobook`` or ``mixed`` over the whole file (empty: ``rebalancer``)."""

    @property
    def incomplete_intents(self) -> tuple[IncompleteIntent, ...]:
        """Intents without a result, in file order."""
        return tuple(b.as_incomplete() for b in self.brackets if b.result is None)

    @property
    def last_run(self) -> Run | None:
        """The last group that starts with ``run_started``."""
        for run in reversed(self.runs):
            if run.is_run:
                return run
        return None

    @property
    def good_length(self) -> int:
        """Bytes up to the torn tail (the whole file when there is none)."""
        return self.size if self.torn_tail is None else self.torn_tail.offset

    def run(self, run_id: str) -> Run | None:
        """The run or invocation with ``run_id``."""
        for run in self.runs:
            if run.run_id == run_id:
                return run
        return None


class _Group:
    __slots__ = ("brackets", "format", "kept", "open", "orphans", "records", "run_id")

    def __init__(self, run_id: str, fmt: Format) -> None:
        self.run_id = run_id
        self.kept = True
        self.format: Format = fmt
        self.records: list[Record] = []
        self.brackets: list[_OpenBracket] = []
        self.orphans: list[Record] = []
        self.open: OpenQueue[_OpenBracket] = OpenQueue()  # ancestor: open intents by position


class _OpenBracket:
    __slots__ = ("done", "intent", "operation", "result", "run_id")

    def __init__(self, operation: str, intent: Record, run_id: str) -> None:
        self.operation = operation
        self.intent = intent
        self.run_id = run_id
        self.result: Record | None = None
        self.done = False


class _Pending(Protocol):
    done: bool


_P = TypeVar("_P", bound=_Pending)


class OpenQueue(Generic[_P]):
    """Open ancestor intents, paired by position in O(1) amortised per record.

    One FIFO per operation and, for orders, one per (operation, symbol); a matched intent is
    marked ``done`` and dropped lazily when it reaches the front of the other queue.
    """

    __slots__ = ("by_op", "by_symbol")

    def __init__(self) -> None:
        self.by_op: dict[str, deque[_P]] = {}
        self.by_symbol: dict[tuple[str, str], deque[_P]] = {}

    def add(self, item: _P, operation: str, symbol: str | None) -> None:
        """Open ``item`` (an intent of ``operation``, for ``symbol`` when it names one)."""
        self.by_op.setdefault(operation, deque()).append(item)
        if operation == "place_order" and symbol is not None:
            self.by_symbol.setdefault((operation, symbol), deque()).append(item)

    @staticmethod
    def _front(queue: deque[_P] | None) -> _P | None:
        while queue:
            if not queue[0].done:
                return queue[0]
            queue.popleft()
        return None

    def match(self, operation: str, symbol: str | None) -> _P | None:
        """Close and return the intent a result answers: the oldest open intent of
        ``operation`` (for an order result naming a symbol, the oldest with that symbol first)."""
        found: _P | None = None
        if operation == "place_order" and symbol is not None:
            found = self._front(self.by_symbol.get((operation, symbol)))
        if found is None:
            found = self._front(self.by_op.get(operation))
        if found is not None:
            found.done = True
        return found

    def remaining(self) -> list[_P]:
        """The intents still open (per operation, in file order)."""
        return [item for queue in self.by_op.values() for item in queue if not item.done]


def parse_log(data: bytes, *, run_ids: Collection[str] | None = None) -> AuditLogView:
    """Parse a whole log's bytes into records, runs and brackets. Never raises on bad content.

    ``run_ids`` keeps only those runs/invocations (see ``read_log``).
    """
    return parse_lines(io.BytesIO(data), run_ids=run_ids)


def read_log(path: Path | str, *, run_ids: Collection[str] | None = None) -> AuditLogView:
    """Read and parse the log at ``path`` in one streaming pass (``OSError`` propagates).

    With ``run_ids``, only the records of those runs/invocations are kept (plus results that
    answer their intents from other invocations), which bounds memory on a long log: e.g.
    ``read_log(p, run_ids={report.last_run_id, *(i.run_id for i in report.incomplete_intents)})``
    after ``validate_file(p)``. Ancestor run ids are ``nanobook@<line>``.
    """
    with Path(path).open("rb") as handle:
        return parse_lines(handle, run_ids=run_ids)


def parse_lines(
    chunks: Iterable[bytes], *, run_ids: Collection[str] | None = None
) -> AuditLogView:
    """Parse a log given as its physical lines (each with its ``\\n``; the last may lack it)."""
    builder = _ViewBuilder(None if run_ids is None else frozenset(run_ids))
    problems: list[LineProblem] = []
    torn: TornTail | None = None
    before: Mapping[str, Any] | None = None  # the previous line's record, if it was one
    offset = 0
    number = 0
    for chunk in chunks:
        if not chunk:
            continue
        number += 1
        start = offset
        offset += len(chunk)
        if not chunk.endswith(b"\n"):
            # Only the bytes after the last newline can be a torn tail (the writer's rule).
            record = complete_tail(chunk, before, number == 1)
            if record is not None:
                builder.add(Record(line=number, offset=start, format="rebalancer", fields=record))
            torn = TornTail(
                line=number, offset=start, length=len(chunk), complete=record is not None,
                reason=fragment_reason(chunk, complete=record is not None),
            )
            continue
        body = chunk[:-1]
        obj, code, message = parse_line(body)
        if obj is None:
            problems.append(LineProblem(
                line=number, offset=start, code=code or "malformed_json", message=message
            ))
            before = None
            continue
        before = obj
        builder.add(Record(line=number, offset=start, format=record_format(obj), fields=obj))
    runs, brackets = builder.freeze()
    return AuditLogView(
        records=tuple(builder.records),
        problems=tuple(problems),
        torn_tail=torn,
        runs=runs,
        brackets=brackets,
        size=offset,
        format=builder.log_format(),
    )


def fragment_reason(fragment: bytes, *, complete: bool) -> str:
    """Why the unterminated last bytes are a torn tail."""
    if complete:
        return "the last record is complete and sound but has no newline (repair keeps it)"
    if b"\x00" in fragment:
        return "NUL bytes after the last record"
    if not fragment.strip():
        return "whitespace without a newline after the last record"
    return "last line has no newline"


class _ViewBuilder:
    """Groups records into runs and pairs brackets, one record at a time."""

    def __init__(self, keep: frozenset[str] | None) -> None:
        self.keep = keep
        self.records: list[Record] = []
        self.groups: dict[str, _Group] = {}
        self.order: list[_Group] = []
        self.by_op: dict[str, _OpenBracket] = {}
        self.brackets: list[_OpenBracket] = []
        self.ancestor: _Group | None = None
        self.formats: set[str] = set()

    def log_format(self) -> LogFormat:
        if len(self.formats) > 1:
            return "mixed"
        return "nanobook" if self.formats == {"nanobook"} else "rebalancer"

    def _group_of(self, record: Record) -> _Group:
        if record.format == "rebalancer":
            key = record.run_id or "?"
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group(key, "rebalancer")
                group.kept = self.keep is None or key in self.keep
                if group.kept:
                    self.order.append(group)
            return group
        if self.ancestor is None or record.event == "run_started":
            key = f"nanobook@{record.line}"
            self.ancestor = self.groups[key] = _Group(key, "nanobook")
            self.ancestor.kept = self.keep is None or key in self.keep
            if self.ancestor.kept:
                self.order.append(self.ancestor)
        return self.ancestor

    def add(self, record: Record) -> None:
        self.formats.add(record.format)
        group = self._group_of(record)
        event = record.event
        if not group.kept:
            # Only a result answering a kept intent (e.g. written by a recover invocation).
            op_id = record.op_id if record.format == "rebalancer" else None
            answered = self.by_op.get(op_id) if op_id is not None else None
            if answered is not None and answered.result is None and (
                RESULT_EVENTS.get(event) == answered.operation
            ):
                answered.result = record
            return
        self.records.append(record)
        group.records.append(record)
        operation = INTENT_EVENTS.get(event)
        if operation is not None:
            bracket = _OpenBracket(operation, record, group.run_id)
            group.brackets.append(bracket)
            self.brackets.append(bracket)
            if record.format == "rebalancer":
                op_id = record.op_id
                if op_id is not None and op_id not in self.by_op:
                    self.by_op[op_id] = bracket
            else:
                group.open.add(bracket, operation, record.symbol)
            return
        operation = RESULT_EVENTS.get(event)
        if operation is None:
            return
        match: _OpenBracket | None
        if record.format == "rebalancer":
            op_id = record.op_id
            match = self.by_op.get(op_id) if op_id is not None else None
            if match is not None and (match.result is not None or match.operation != operation):
                match = None
        else:
            match = group.open.match(operation, record.symbol)
        if match is None:
            group.orphans.append(record)
        else:
            match.result = record

    def freeze(self) -> tuple[tuple[Run, ...], tuple[Bracket, ...]]:
        frozen: dict[int, Bracket] = {
            id(b): Bracket(operation=b.operation, intent=b.intent, result=b.result,
                           run_id=b.run_id)
            for b in self.brackets
        }
        runs = tuple(
            Run(
                run_id=g.run_id,
                format=g.format,
                records=tuple(g.records),
                brackets=tuple(frozen[id(b)] for b in g.brackets),
                orphan_results=tuple(g.orphans),
            )
            for g in self.order
        )
        return runs, tuple(frozen[id(b)] for b in self.brackets)
