"""The durable write-ahead audit log: record format, appender, brackets, repair.

Writers use ``AuditLog`` (``rebalancer.audit.writer``), ``AuditLog.bracket`` around every broker
operation, and ``AuditedBroker`` (``rebalancer.audit.gateway``) as the only way the runtime
reaches a broker. The record format lives in ``rebalancer.audit.records``.
"""

from __future__ import annotations

from rebalancer.audit.bracket import (
    AMBIGUOUS,
    OPERATION_EVENTS,
    REJECTED,
    Bracket,
    default_classify,
)
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
from rebalancer.audit.repair import RepairReport, repair_log
from rebalancer.audit.writer import AuditLog, AuditStatistics

__all__ = [
    "AMBIGUOUS",
    "GENESIS_HASH",
    "HEADER_KEYS",
    "OPERATION_EVENTS",
    "REJECTED",
    "AncestorLogError",
    "AuditCorruptError",
    "AuditError",
    "AuditLog",
    "AuditPathError",
    "AuditPayloadError",
    "AuditRecord",
    "AuditStatistics",
    "AuditWriteError",
    "Bracket",
    "EncodedRecord",
    "RepairReport",
    "TornTailError",
    "canonical_bytes",
    "default_classify",
    "encode_record",
    "format_ts",
    "parse_ts",
    "record_hash",
    "repair_log",
    "to_json_value",
    "verify_record_hash",
]
