"""Errors of the audit log. Every one maps to exit code ``AUDIT_FAILURE`` (8).

- ``AuditWriteError``: a write or sync failed (or the log was already poisoned). Fail-stop.
- ``TornTailError``: the log ends in a partial or unparseable line (a crash mid-write).
  ``rebalancer audit repair LOG`` fixes it.
- ``AuditCorruptError``: damage that is not a torn tail (a bad record followed by good ones,
  a broken hash chain, a sequence gap or duplicate). Never repaired by the program.
- ``AncestorLogError``: the log is in the ancestor (nanobook) format, without a hash chain; it
  can be read but not appended to.
- ``AuditPathError``: the log path is a symlink, not a regular file, or its directory is unsafe.
- ``AuditPayloadError``: a programming error: a payload key shadows a header key, or a value
  cannot be written as JSON.
"""

from __future__ import annotations

from pathlib import Path

from rebalancer.errors import RebalancerError
from rebalancer.exit_codes import ExitCode


class AuditError(RebalancerError):
    """Base of every audit-log error."""

    exit_code = ExitCode.AUDIT_FAILURE


class AuditWriteError(AuditError):
    """Writing or syncing an audit record failed; the log is poisoned (fail-stop).

    Raised for the failing append and, immediately, for every later append on the same log.
    Nothing retries the write or the sync.
    """

    def __init__(self, path: Path | str, operation: str, reason: str) -> None:
        self.path = Path(path)
        self.operation = operation
        self.reason = reason
        super().__init__(f"{path}: audit write failed during {operation}: {reason}")


class TornTailError(AuditError):
    """The log's last line is torn (no newline, unparseable, or junk after the last record)."""

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"{path}: torn tail at byte offset {offset} ({reason}); "
            f"run `rebalancer audit repair {path}`"
        )


class AuditCorruptError(AuditError):
    """The log is damaged somewhere other than its tail; an operator must look at it."""

    def __init__(
        self, path: Path | str | None, reason: str, *, offset: int | None = None,
        line: int | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        self.offset = offset
        self.line = line
        where = "" if path is None else f"{path}: "
        at = []
        if line is not None:
            at.append(f"line {line}")
        if offset is not None:
            at.append(f"byte offset {offset}")
        pos = f" at {', '.join(at)}" if at else ""
        super().__init__(f"{where}audit log corrupt{pos}: {reason}")


class AncestorLogError(AuditError):
    """The log holds ancestor-format records (no hash chain); appending to it is refused."""

    def __init__(self, path: Path | str, line: int) -> None:
        self.path = Path(path)
        self.line = line
        super().__init__(
            f"{path}: line {line} has no hash (ancestor nanobook format); refusing to append "
            "to it: point the audit log at a new file"
        )


class AuditPathError(AuditError):
    """The log path or its directory is unsafe (symlink, wrong type, wrong owner or mode)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class AuditPayloadError(AuditError, ValueError):
    """A record cannot be built: a payload key shadows a header key, or a value is not JSON."""
