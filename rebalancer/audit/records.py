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

from rebalancer.audit.errors import AuditPayloadError

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
    try:
        text = json.dumps(
            to_json_value(record),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )
    except ValueError as exc:  # pragma: no cover - to_json_value already rejects non-finite
        raise AuditPayloadError(str(exc)) from None
    return text.encode("ascii")


def record_hash(record_without_hash: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical bytes of the record, any ``hash`` key left out."""
    if "hash" in record_without_hash:
        record_without_hash = {k: v for k, v in record_without_hash.items() if k != "hash"}
    return hashlib.sha256(canonical_bytes(record_without_hash)).hexdigest()


def verify_record_hash(record: Mapping[str, Any]) -> bool:
    """True when ``record`` carries a ``hash`` equal to the hash of the rest of the record."""
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
    digest = hashlib.sha256(canonical_bytes(body)).hexdigest()
    body["hash"] = digest
    line = canonical_bytes(body) + b"\n"
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
