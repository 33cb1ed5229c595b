"""The durable write-ahead audit log: record format, appender, brackets, repair.

Writers use ``AuditLog`` (``rebalancer.audit.writer``), ``AuditLog.bracket`` around every broker
operation, and ``AuditedBroker`` (``rebalancer.audit.gateway``) as the only way the runtime
reaches a broker. The record format lives in ``rebalancer.audit.records``.
"""

from __future__ import annotations

from rebalancer.audit.errors import (
    AncestorLogError,
    AuditCorruptError,
    AuditError,
    AuditPathError,
    AuditPayloadError,
    AuditWriteError,
    TornTailError,
)
from rebalancer.audit.records import (
    GENESIS_HASH,
    HEADER_KEYS,
    AuditRecord,
    EncodedRecord,
    canonical_bytes,
    encode_record,
    format_ts,
    parse_ts,
    record_hash,
    to_json_value,
    verify_record_hash,
)

__all__ = [
    "GENESIS_HASH",
    "HEADER_KEYS",
    "AncestorLogError",
    "AuditCorruptError",
    "AuditError",
    "AuditPathError",
    "AuditPayloadError",
    "AuditRecord",
    "AuditWriteError",
    "EncodedRecord",
    "TornTailError",
    "canonical_bytes",
    "encode_record",
    "format_ts",
    "parse_ts",
    "record_hash",
    "to_json_value",
    "verify_record_hash",
]
