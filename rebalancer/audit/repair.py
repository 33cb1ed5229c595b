"""Repair a torn audit-log tail: keep a copy, cut (or complete) the tail, record the repair.

Only a *torn tail* is repaired: the non-empty bytes after the file's last ``\\n`` (a line cut by
a crash, NUL or junk fill without a newline). Every ``\\n``-terminated line must already be a
sound record; anything else there (even on the last line) raises ``AuditCorruptError`` and the
file is left untouched: the program never rewrites history.

Steps, each durable before the next:

1. copy the whole original file to ``<name>.torn-<UTC timestamp>`` (0600, fsynced, directory
   fsynced);
2. truncate the log to the end of its last valid record (``ftruncate`` + ``fsync``), or, when
   the torn tail is itself a complete, valid next record that only lacks its newline, append
   that ``\\n`` (``write`` + ``fsync``) and keep the record;
3. append a ``tail_repaired`` record (``original_copy``, ``truncated_at_offset``,
   ``bytes_removed``, ``completed_line``) through the normal appender. ``truncated_at_offset``
   is the length of the original kept verbatim: the cut point, or the original file size when
   the line was completed (``bytes_removed`` 0, ``completed_line`` true).

Running it again on a repaired log is a no-op. If a crash stopped an earlier repair between
steps 2 and 3, the next repair finds the copy that no ``tail_repaired`` record mentions and
writes the missing record.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.audit.errors import (
    AncestorLogError,
    AuditError,
    AuditPathError,
    AuditWriteError,
)
from rebalancer.audit.fileio import OS_FILE_IO, FileIO, read_all
from rebalancer.audit.records import LogScan, scan_log
from rebalancer.audit.writer import AuditLog, prepare_directory

if TYPE_CHECKING:
    from collections.abc import Mapping

COPY_MARKER = ".torn-"
"""The original is kept as ``<log name>.torn-<YYYYMMDDTHHMMSSffffffZ>``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RepairReport:
    """What ``repair_log`` did."""

    repaired: bool
    original_copy: Path | None
    truncated_at_offset: int | None
    bytes_removed: int
    message: str
    completed_line: bool = False
    """True when the torn tail was a complete record and repair only added its newline."""


def repair_log(
    path: Path | str,
    *,
    now: datetime | None = None,
    run_id: str | None = None,
    config_hash: str | None = None,
    io: FileIO | None = None,
) -> RepairReport:
    """Repair a torn tail of the log at ``path`` (blocking; call it from a thread if async).

    ``now`` names the copy (default: the current UTC time). ``run_id`` is the repair
    invocation's id on the ``tail_repaired`` record (default ``repair-<timestamp>``);
    ``config_hash`` defaults to that of the log's last valid record.

    Raises ``AuditCorruptError`` for damage that is not a torn tail, ``AncestorLogError`` for
    an ancestor-format log, ``AuditPathError`` for a missing or symlinked log, and
    ``AuditWriteError`` when a copy, truncate or sync fails (nothing is retried).
    """
    fio = io if io is not None else OS_FILE_IO
    path = Path(os.path.abspath(path))
    moment = (now if now is not None else datetime.now(UTC)).astimezone(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S%fZ")
    invocation = run_id if run_id is not None else f"repair-{stamp}"
    prepare_directory(path.parent)
    fd = _open_existing(fio, path)
    try:
        try:
            fio.flock(fd, fcntl.LOCK_EX)
            data = read_all(fio, fd, 0, fio.fstat(fd).st_size)
        except OSError as exc:
            raise AuditWriteError(path, "repair", f"reading the log: {exc}") from exc
        scan = scan_log(data, path=path)  # raises AuditCorruptError for mid-file damage
        if scan.ancestor_line is not None:
            raise AncestorLogError(path, scan.ancestor_line)
        if scan.torn_offset is None:
            fio.flock(fd, fcntl.LOCK_UN)
            return _finish_interrupted_repair(
                path, scan, data, invocation, config_hash, fio
            )
        completed = scan.tail_record is not None
        # ``offset``: how much of the original stays verbatim.
        offset = len(data) if completed else scan.torn_offset
        removed = len(data) - offset
        copy = path.with_name(f"{path.name}{COPY_MARKER}{stamp}")
        try:
            _write_copy(fio, copy, data)
            if completed:
                # The descriptor is O_APPEND: the newline lands at the end of the file.
                written = fio.write(fd, b"\n")
                if written != 1:
                    raise OSError(f"short write: {written} of 1 byte")
            else:
                fio.ftruncate(fd, offset)
            fio.fsync(fd)
        except OSError as exc:
            step = "copy/complete" if completed else "copy/truncate"
            raise AuditWriteError(path, "repair", f"{step}: {exc}") from exc
        fio.flock(fd, fcntl.LOCK_UN)
    finally:
        fio.close(fd)
    # The completed record is now part of the chain; the repair record follows it.
    last = scan.tail_record if scan.tail_record is not None else scan.last_record
    _record_repair(
        path, copy=copy, offset=offset, removed=removed, completed=completed,
        run_id=invocation, config_hash=_config_hash_of(last, config_hash), io=fio,
    )
    if completed:
        message = (
            f"{path}: the last record was complete but had no newline; newline added at "
            f"offset {offset}, nothing removed; original kept as {copy}"
        )
    else:
        message = (
            f"{path}: torn tail ({scan.torn_reason}) of {removed} bytes at offset {offset} "
            f"removed; original kept as {copy}"
        )
    return RepairReport(
        repaired=True,
        original_copy=copy,
        truncated_at_offset=offset,
        bytes_removed=removed,
        message=message,
        completed_line=completed,
    )


def _open_existing(io: FileIO, path: Path) -> int:
    try:
        return io.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0)
    except FileNotFoundError as exc:
        raise AuditPathError(path, "no such audit log") from exc
    except OSError as exc:
        if os.path.islink(path):
            raise AuditPathError(path, "the log path is a symlink; refusing to open it") from exc
        raise AuditWriteError(path, "repair", f"open: {exc}") from exc


def _write_copy(io: FileIO, copy: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file, fsync it and its directory."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = io.open(copy, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            written = io.write(fd, bytes(view))
            if written <= 0:
                raise OSError(f"write to {copy} made no progress")
            view = view[written:]
        io.fsync(fd)
    finally:
        io.close(fd)
    io.fsync_dir(copy.parent)


def _config_hash_of(last: Mapping[str, Any] | None, explicit: str | None) -> str:
    """The explicit hash, else that of the log's last record, else empty."""
    if explicit is not None:
        return explicit
    if last is not None and isinstance(last.get("config_hash"), str):
        return str(last["config_hash"])
    return ""


def _record_repair(
    path: Path, *, copy: Path, offset: int, removed: int, completed: bool, run_id: str,
    config_hash: str, io: FileIO,
) -> None:
    log = AuditLog.open_sync(path, run_id=run_id, config_hash=config_hash, io=io)
    try:
        log.append_sync(
            "tail_repaired",
            {
                "original_copy": str(copy),
                "truncated_at_offset": offset,
                "bytes_removed": removed,
                "completed_line": completed,
            },
        )
    finally:
        log.close_sync()


def _finish_interrupted_repair(
    path: Path, scan: LogScan, data: bytes, run_id: str, config_hash: str | None, io: FileIO,
) -> RepairReport:
    """No torn tail: look for a copy an interrupted repair made but never recorded."""
    recorded = {Path(c).name for c in scan.repaired_copies}
    for copy in sorted(path.parent.glob(f"{path.name}{COPY_MARKER}*")):
        if copy.name in recorded or copy.is_symlink() or not copy.is_file():
            continue
        original = copy.read_bytes()
        try:
            copy_scan = scan_log(original, path=copy)
        except AuditError:
            continue  # A damaged stray copy is not one of ours.
        if copy_scan.torn_offset is None:
            continue
        # Only the exact state "cut (or completed), not yet recorded".
        completed = copy_scan.tail_record is not None
        if completed:
            if data != original + b"\n":
                continue
            cut = len(original)
            done = f"had already added the missing newline at offset {cut}"
        else:
            cut = copy_scan.torn_offset
            if len(data) != cut or original[:cut] != data:
                continue
            done = f"had already cut {len(original) - cut} bytes at offset {cut}"
        removed = len(original) - cut
        _record_repair(
            path, copy=copy, offset=cut, removed=removed, completed=completed, run_id=run_id,
            config_hash=_config_hash_of(scan.last_record, config_hash), io=io,
        )
        return RepairReport(
            repaired=True,
            original_copy=copy,
            truncated_at_offset=cut,
            bytes_removed=removed,
            message=(
                f"{path}: an interrupted repair {done} (original kept as {copy}); "
                "its tail_repaired record is now written"
            ),
            completed_line=completed,
        )
    return RepairReport(
        repaired=False,
        original_copy=None,
        truncated_at_offset=None,
        bytes_removed=0,
        message=f"{path}: no torn tail; nothing to repair",
    )
