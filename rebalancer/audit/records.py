"""The audit record format: canonical JSON, the header keys and the hash chain. Pure, no I/O.

A record is one JSON object per line, written as canonical JSON (sorted keys, no spaces, ASCII
only, no NaN). The header keys sit beside the payload keys at top level. ``hash`` is the hex
SHA-256 of the canonical bytes of the record without its ``hash`` key; ``prev_hash`` is the
previous record's ``hash`` (``GENESIS_HASH`` for the first record of a file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from types import MappingProxyType
from typing import Any, Final

from rebalancer.audit.errors import AuditCorruptError, AuditPayloadError

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first record of a file."""

HEADER_KEYS: Final = frozenset(
    {"event", "ts", "sequence_number", "run_id", "config_hash", "prev_hash", "hash"}
)
"""Keys every record carries; no payload key may use one of these names."""

_TS_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_ts(dt: datetime) -> str:
    """RFC 3339 UTC with six fractional digits and ``Z``, e.g. ``2026-12-04T20:01:02.000345Z``.

    Raises ``ValueError`` for a naive ``datetime`` (no time zone).
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no time zone")
    return dt.astimezone(UTC).strftime(_TS_FORMAT)


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset) into an aware UTC ``datetime``."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return value.astimezone(UTC)


def _decimal_str(value: Decimal) -> str:
    if not value.is_finite():
        raise AuditPayloadError(f"decimal {value} is not finite")
    return format(value, "f")


def to_json_value(value: Any) -> Any:
    """Convert a payload value into plain JSON values.

    ``Decimal`` → decimal string (``"185.09"``), aware ``datetime`` → ``format_ts``, ``date`` →
    ISO date, ``Enum`` → its value, tuples and lists → lists, mappings → dicts with ``str`` keys,
    dataclass instances → dicts of their fields, paths → strings. ``None``, ``bool``, ``int``,
    ``str`` and finite ``float`` pass through. Anything else raises ``AuditPayloadError``.
    """
    if isinstance(value, Enum):
        # Checked first: StrEnum and IntEnum members are also str and int.
        return to_json_value(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise AuditPayloadError(f"float {value} is not finite")
        return value
    if isinstance(value, Decimal):
        return _decimal_str(value)
    if isinstance(value, datetime):
        try:
            return format_ts(value)
        except ValueError as exc:
            raise AuditPayloadError(str(exc)) from None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditPayloadError(f"mapping key {key!r} is not a string")
            out[key] = to_json_value(item)
        return out
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise AuditPayloadError(f"value of type {type(value).__name__} cannot be written as JSON")


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The canonical JSON encoding of ``record`` (no trailing newline).

    Values are passed through ``to_json_value`` first, so a record read back from disk and the
    record as built encode to the same bytes.
    """
    return _dumps(to_json_value(record))


def _dumps(value: Any) -> bytes:
    """The pinned ``json.dumps`` call over values that are already plain JSON."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except ValueError as exc:  # non-finite: to_json_value rejects it first; parsed lines reach it
        raise AuditPayloadError(str(exc)) from None
    return text.encode("ascii")


def record_hash(record_without_hash: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical bytes of the record, any ``hash`` key left out."""
    if "hash" in record_without_hash:
        record_without_hash = {k: v for k, v in record_without_hash.items() if k != "hash"}
    return hashlib.sha256(canonical_bytes(record_without_hash)).hexdigest()


def verify_record_hash(record: Mapping[str, Any]) -> bool:
    """True when ``record`` carries a ``hash`` equal to the hash of the rest of the record.

    A check over parsed values only: a line re-spelled to the same values (``1E-05`` for
    ``1e-05``, extra whitespace) still passes. To check a line as it is on disk, use
    ``verify_line``.
    """
    stored = record.get("hash")
    return isinstance(stored, str) and stored == record_hash(record)


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedRecord:
    """A fully built record: the dict (with ``hash``) and its line bytes (``\\n``-terminated)."""

    record: Mapping[str, Any]
    line: bytes
    hash: str


def encode_record(
    *,
    event: str,
    sequence_number: int,
    run_id: str,
    config_hash: str,
    prev_hash: str,
    ts: datetime,
    payload: Mapping[str, Any] | None = None,
) -> EncodedRecord:
    """Build the full record dict and its canonical line.

    Raises ``AuditPayloadError`` when a payload key shadows a header key, when the event name
    is empty, or when a value cannot be written as JSON.
    """
    if not isinstance(event, str) or not event:
        raise AuditPayloadError(f"event name {event!r} must be a non-empty string")
    if isinstance(sequence_number, bool) or not isinstance(sequence_number, int) or (
        sequence_number < 1
    ):
        raise AuditPayloadError(f"sequence_number {sequence_number!r} must be an int >= 1")
    body: dict[str, Any] = {}
    if payload:
        shadowed = sorted(k for k in payload if k in HEADER_KEYS)
        if shadowed:
            raise AuditPayloadError(
                f"payload of {event} uses reserved header key(s): {', '.join(shadowed)}"
            )
        converted = to_json_value(payload)
        body.update(converted)
    body.update(
        event=event,
        ts=format_ts(ts),
        sequence_number=sequence_number,
        run_id=run_id,
        config_hash=config_hash,
        prev_hash=prev_hash,
    )
    # ``body`` holds plain JSON values only, so the conversion pass is not repeated.
    digest = hashlib.sha256(_dumps(body)).hexdigest()
    body["hash"] = digest
    line = _dumps(body) + b"\n"
    return EncodedRecord(record=MappingProxyType(body), line=line, hash=digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """A record that is durable in the log (written and fdatasynced)."""

    event: str
    sequence_number: int
    hash: str
    ts: datetime
    record: Mapping[str, Any]
    offset: int
    """Byte offset of the record's line in the file."""
    size: int
    """Length of the line in bytes, newline included."""


# --- Scanning a log's bytes (shared by the appender, which reads what other writers added, and
# by repair). The reader/validator has its own richer classifier; this one only answers "where
# does the valid chain end, and is what follows a torn tail or damage?". The rule, shared with
# the validator: a torn tail is only the non-empty bytes after the file's last ``\n``; every
# ``\n``-terminated line must be a sound record (``verify_line`` plus the chain).


@dataclass(frozen=True, slots=True, kw_only=True)
class LogScan:
    """Where the valid hash chain of a log (or of the bytes after a known point) ends."""

    records: int
    """Valid records found."""
    end_offset: int
    """File offset just after the last valid record's newline."""
    lines: int
    """Line number of the last valid record (counting from the start of the file)."""
    last_sequence_number: int
    last_hash: str
    last_record: Mapping[str, Any] | None
    torn_offset: int | None = None
    """File offset where a torn tail starts (it runs to end of file), or ``None``."""
    torn_reason: str | None = None
    tail_record: Mapping[str, Any] | None = None
    """The torn tail when it is itself a complete, valid next record that only lacks its
    ``\\n`` (repair completes it instead of cutting it); ``None`` otherwise. Not counted in
    ``records``/``last_*``."""
    ancestor_line: int | None = None
    """Line number of the first record without a hash (ancestor format), or ``None``."""
    repaired_copies: tuple[str, ...] = ()
    """``original_copy`` of every ``tail_repaired`` record seen."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_strict(raw: bytes) -> dict[str, Any]:
    """Strictly parse one line (without its newline) into a JSON object.

    Raises ``ValueError`` for bad UTF-8, bad JSON, the constants ``NaN``/``Infinity``/
    ``-Infinity``, a duplicate key in any object, nesting too deep, or a top-level value that
    is not an object.
    """
    try:
        value = json.loads(
            raw.decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc.reason}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f"top-level JSON value is a {type(value).__name__}, not an object")
    return value


def parse_line(line: bytes) -> dict[str, Any] | None:
    """Strictly parse one line (without its newline) into a JSON object, or ``None``.

    ``None`` for anything ``parse_strict`` refuses: bad UTF-8, bad JSON, NaN/Infinity,
    duplicate keys, a top-level array or scalar.
    """
    try:
        return parse_strict(line)
    except ValueError:
        return None


def is_canonical(raw: bytes, record: Mapping[str, Any]) -> bool:
    """True when ``raw`` (a line without its newline) is exactly ``canonical_bytes(record)``."""
    try:
        return raw == canonical_bytes(record)
    except AuditPayloadError:
        return False


def _line_problem(raw: bytes, record: dict[str, Any]) -> str | None:
    """Why ``raw`` is not the canonical, hash-verified line of ``record`` (parsed from it).

    ``record`` came from ``parse_strict`` and so holds plain JSON values only: the pinned
    ``json.dumps`` applies directly (a float overflowing to infinity fails it).
    """
    try:
        if raw != _dumps(record):
            return "line is not the canonical JSON of its record (bytes altered or re-encoded)"
        stored = record.get("hash")
        body = _dumps({k: v for k, v in record.items() if k != "hash"})
    except AuditPayloadError:
        return "line holds a number that is not finite"
    if not isinstance(stored, str) or stored != hashlib.sha256(body).hexdigest():
        return "hash does not match the record"
    return None


def verify_line(raw: bytes) -> dict[str, Any] | None:
    """The record on one line of a hash-chained log when the line is sound, else ``None``.

    ``raw`` is the line without its ``\\n``. Sound means: ``parse_strict`` accepts it, the bytes
    are exactly the canonical encoding of the parsed record (so a rewritten float, extra
    whitespace or raw non-ASCII bytes are refused even when they parse to the same values), and
    the record's ``hash`` is the SHA-256 of those canonical bytes without the ``hash`` key.
    Chain checks (``prev_hash``, sequence numbers) are the caller's.
    """
    record = parse_line(raw)
    if record is None or _line_problem(raw, record) is not None:
        return None
    return record


def _chain_problem(
    raw: bytes, record: dict[str, Any], last_seq: int, last_hash: str
) -> str | None:
    """Why ``record`` (parsed from ``raw``) cannot follow ``last_seq``/``last_hash``, if so."""
    for key, kind in (
        ("event", str), ("ts", str), ("run_id", str), ("config_hash", str),
        ("prev_hash", str), ("hash", str),
    ):
        if not isinstance(record.get(key), kind):
            return f"header key {key} missing or not a {kind.__name__}"
    seq = record.get("sequence_number")
    if isinstance(seq, bool) or not isinstance(seq, int):
        return "header key sequence_number missing or not an int"
    problem = _line_problem(raw, record)
    if problem is not None:
        return problem
    if seq != last_seq + 1:
        kind_of = "duplicate or out of order" if seq <= last_seq else "gap"
        return f"sequence_number {seq} after {last_seq} ({kind_of})"
    if record["prev_hash"] != last_hash:
        return "prev_hash does not match the previous record's hash (broken chain)"
    return None


def scan_log(
    data: bytes,
    *,
    base_offset: int = 0,
    base_line: int = 0,
    last_sequence_number: int = 0,
    last_hash: str = GENESIS_HASH,
    path: Any = None,
) -> LogScan:
    """Walk ``data`` (the file's bytes from ``base_offset``) and check the hash chain.

    ``last_sequence_number``/``last_hash`` describe the record just before ``base_offset``.

    Every ``\\n``-terminated line must be a sound record: strictly parsed, exactly its canonical
    JSON bytes, its hash verified, numbered and chained after the one before. Any other such line
    (unparseable, blank, non-canonical, a hash mismatch, a sequence gap or duplicate, a broken
    chain) raises ``AuditCorruptError`` naming the line and offset, even when it is the last one.

    Only the non-empty bytes after the last ``\\n`` (a cut line, NUL or junk fill) are a torn
    tail, returned in ``torn_offset``. When that fragment is itself a complete, valid next
    record, it is still a torn tail, with the record in ``tail_record``.

    A first record with neither ``hash`` nor ``prev_hash`` stops the walk (``ancestor_line``:
    the ancestor format, readable but not appendable); any other record without ``hash`` is
    corruption.
    """
    body_end = data.rfind(b"\n") + 1  # 0 when there is no newline at all
    offset = 0
    line_no = base_line
    records = 0
    last_seq, prev = last_sequence_number, last_hash
    last_record: dict[str, Any] | None = None
    copies: list[str] = []

    def result(**extra: Any) -> LogScan:
        return LogScan(
            records=records, end_offset=base_offset + offset, lines=line_no,
            last_sequence_number=last_seq, last_hash=prev, last_record=last_record,
            repaired_copies=tuple(copies), **extra,
        )

    def corrupt(reason: str) -> AuditCorruptError:
        return AuditCorruptError(path, reason, offset=base_offset + offset, line=line_no + 1)

    while offset < body_end:
        newline = data.index(b"\n", offset)
        raw = data[offset:newline]
        if not raw.strip():
            raise corrupt("blank line" if not raw else "whitespace-only line")
        record = parse_line(raw)
        if record is None:
            reason = "NUL bytes in a line" if b"\x00" in raw else "unparseable line"
            raise corrupt(reason)
        if "hash" not in record:
            if last_seq == 0 and prev == GENESIS_HASH and "prev_hash" not in record:
                # The file starts in the ancestor format (no chain): readable, not appendable.
                line_no += 1
                offset = newline + 1
                return result(ancestor_line=line_no)
            raise corrupt("record without hash inside a hash-chained log")
        problem = _chain_problem(raw, record, last_seq, prev)
        if problem is not None:
            raise corrupt(problem)
        line_no += 1
        records += 1
        last_seq, prev, last_record = record["sequence_number"], record["hash"], record
        if record["event"] == "tail_repaired" and isinstance(record.get("original_copy"), str):
            copies.append(record["original_copy"])
        offset = newline + 1
    if offset == len(data):
        return result()
    tail = data[offset:]
    tail_record = parse_line(tail)
    if tail_record is not None and _chain_problem(tail, tail_record, last_seq, prev) is None:
        return result(
            torn_offset=base_offset + offset,
            torn_reason="the last record is complete but has no newline",
            tail_record=tail_record,
        )
    reason = "NUL bytes after the last record" if b"\x00" in tail else "last line has no newline"
    return result(torn_offset=base_offset + offset, torn_reason=reason)
