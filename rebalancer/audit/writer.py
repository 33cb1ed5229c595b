"""The durable audit appender: one ``os.write`` + ``fdatasync`` per record, under ``flock``.

Rules (CONTRACT §5.2):

1. A record is durable before ``append`` returns: one ``os.write`` of the whole line with the
   returned length checked, then ``fdatasync``. Every open fsyncs the file and its directory
   (so a file whose creating open died before the directory fsync is made durable by the next).
2. Any write or sync error, including a short write, is fail-stop: the log is *poisoned*, the
   caller gets ``AuditWriteError``, nothing is retried (never an fsync), and every later append
   raises at once without touching the file.
3. Several processes (the runner and the kill switch) may append to one file. Each append takes
   ``flock(LOCK_EX)``; when the file grew since our last append, the appender first reads the
   records the other writer added and checks their chain, so numbering continues from the true
   last record. Records never interleave and sequence numbers are never reused.
4. The file is 0600 in a 0700 directory whatever the umask. A symlinked file or directory is
   refused. An existing directory or file we own is tightened to 0700/0600; one owned by
   someone else is refused when group or others can access it.
5. Opening a log whose tail is torn (non-empty bytes after its last ``\\n``, even a complete
   record that only lacks its newline) raises ``TornTailError`` (repair it with
   ``rebalancer audit repair``); any ``\\n``-terminated line that is not a sound, canonical,
   chained record raises ``AuditCorruptError``; a log in the ancestor format (no hash chain)
   raises ``AncestorLogError``.

The blocking work runs in a worker thread (``anyio.to_thread.run_sync``). A cancelled caller
does not interrupt it: the record is either fully appended and synced, or the log is poisoned.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, NoReturn, Self

import anyio.to_thread

from rebalancer.audit.errors import (
    AncestorLogError,
    AuditCorruptError,
    AuditError,
    AuditPathError,
    AuditWriteError,
    TornTailError,
)
from rebalancer.audit.fileio import OS_FILE_IO, FileIO, read_all
from rebalancer.audit.records import AuditRecord, encode_record, scan_log, to_json_value

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from rebalancer.audit.bracket import Bracket, Classifier

_FILE_FLAGS: Final = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
_SAMPLES: Final = 10_000
"""Latency samples kept per series (the most recent ones)."""


# --- statistics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    """Latency of a series of calls, in milliseconds (over the most recent samples)."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples_ms: tuple[float, ...]

    @classmethod
    def of(cls, count: int, samples: tuple[float, ...]) -> LatencySummary:
        """Summarise ``samples`` (``count`` is the total number of calls ever made)."""
        if not samples:
            return cls(count=count, p50_ms=0.0, p99_ms=0.0, max_ms=0.0, samples_ms=())
        ordered = sorted(samples)
        return cls(
            count=count,
            p50_ms=_quantile(ordered, 0.50),
            p99_ms=_quantile(ordered, 0.99),
            max_ms=ordered[-1],
            samples_ms=samples,
        )


def _quantile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationStatistics:
    """One bracketed broker operation: how often, how long, how it failed."""

    operation: str
    latency: LatencySummary
    failures: Mapping[str, int]
    """Failed calls by error class (``rejected``/``ambiguous``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditStatistics:
    """Monitoring signals of one open log (this process only)."""

    path: Path
    poisoned: bool
    records_written: int
    bytes_written: int
    append_latency: LatencySummary
    """Whole append (lock, catch-up, write, fdatasync), per record."""
    write_errors: Mapping[str, int]
    """Failed appends by event name."""
    operations: Mapping[str, OperationStatistics]
    """Bracketed broker operations by operation name."""


class _Stats:
    """Mutable counters behind ``AuditLog.statistics()``; guarded by its own lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records = 0
        self.bytes = 0
        self.appends = 0
        self.append_ms: deque[float] = deque(maxlen=_SAMPLES)
        self.write_errors: Counter[str] = Counter()
        self.op_count: Counter[str] = Counter()
        self.op_ms: dict[str, deque[float]] = {}
        self.op_failures: dict[str, Counter[str]] = {}


# --- the appender ----------------------------------------------------------------------------


class AuditLog:
    """An open, append-only audit log. Create it with ``await AuditLog.open(...)``."""

    def __init__(
        self,
        *,
        path: Path,
        fd: int,
        io: FileIO,
        run_id: str,
        config_hash: str,
        clock: Callable[[], datetime],
        end_offset: int,
        lines: int,
        last_sequence_number: int,
        last_hash: str,
    ) -> None:
        """Internal: use ``AuditLog.open``."""
        self._path = path
        self._fd = fd
        self._io = io
        self._run_id = run_id
        self._config_hash = config_hash
        self._clock = clock
        self._end = end_offset
        self._lines = lines
        self._last_seq = last_sequence_number
        self._last_hash = last_hash
        self._lock = threading.Lock()
        self._poison: str | None = None
        self._closed = False
        self._stats = _Stats()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        run_id: str,
        config_hash: str,
        io: FileIO | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> AuditLog:
        """Open (creating if needed) the log at ``path`` for appending.

        Raises ``AuditPathError`` (symlink, unsafe directory or file), ``TornTailError``,
        ``AuditCorruptError``, ``AncestorLogError``, or ``AuditWriteError`` when creating the
        file fails.
        """
        # Shielded: a worker thread is not interrupted by cancellation anyway, and an open log
        # dropped on the floor by a cancelled caller would leak its descriptor. A pending
        # cancellation is delivered at the caller's next checkpoint, with the log in hand.
        log: AuditLog | None = None
        with anyio.CancelScope(shield=True):
            log = await anyio.to_thread.run_sync(
                lambda: cls.open_sync(
                    Path(path), run_id=run_id, config_hash=config_hash, io=io, clock=clock
                )
            )
        assert log is not None  # a shielded scope is never cancelled
        return log

    @classmethod
    def open_sync(
        cls,
        path: Path | str,
        *,
        run_id: str,
        config_hash: str,
        io: FileIO | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> AuditLog:
        """Blocking twin of ``open`` (for repair and other synchronous callers)."""
        fio = io if io is not None else OS_FILE_IO
        # Absolute (symlinks not resolved): a later chdir must not change which file we check.
        path = Path(os.path.abspath(path))
        try:
            return cls._open(path, run_id=run_id, config_hash=config_hash, io=fio, clock=clock)
        except OSError as exc:
            raise AuditWriteError(path, "open", _os_reason(exc)) from exc

    @classmethod
    def _open(
        cls,
        path: Path,
        *,
        run_id: str,
        config_hash: str,
        io: FileIO,
        clock: Callable[[], datetime] | None,
    ) -> AuditLog:
        fio = io
        directory = path.parent
        prepare_directory(directory)
        fd, created = _open_file(fio, path)
        try:
            _check_file(fd, path, fio)
            # On every open, not only when this call created the file: an earlier open that
            # crashed or failed between O_CREAT and the directory fsync left an entry that a
            # power loss could still drop, with every record in it. Two syncs per open.
            try:
                fio.fsync(fd)
                fio.fsync_dir(directory)
            except OSError as exc:
                raise AuditWriteError(
                    path, "create" if created else "open", _os_reason(exc)
                ) from exc
            fio.flock(fd, fcntl.LOCK_EX)
            try:
                size = fio.fstat(fd).st_size
                scan = scan_log(read_all(fio, fd, 0, size), path=path)
            finally:
                fio.flock(fd, fcntl.LOCK_UN)
            if scan.ancestor_line is not None:
                raise AncestorLogError(path, scan.ancestor_line)
            if scan.torn_offset is not None:
                raise TornTailError(path, scan.torn_offset, scan.torn_reason or "torn")
        except BaseException:
            fio.close(fd)
            raise
        return cls(
            path=path,
            fd=fd,
            io=fio,
            run_id=run_id,
            config_hash=config_hash,
            clock=clock if clock is not None else _utc_now,
            end_offset=scan.end_offset,
            lines=scan.lines,
            last_sequence_number=scan.last_sequence_number,
            last_hash=scan.last_hash,
        )

    # -- properties ------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The log file."""
        return self._path

    @property
    def run_id(self) -> str:
        """The ``run_id`` written on every record of this appender."""
        return self._run_id

    @property
    def config_hash(self) -> str:
        """The ``config_hash`` written on every record of this appender."""
        return self._config_hash

    @property
    def poisoned(self) -> bool:
        """True once a write or sync failed; every append then raises ``AuditWriteError``."""
        return self._poison is not None

    @property
    def last_sequence_number(self) -> int:
        """Sequence number of the last record this appender knows of (0 for an empty log)."""
        return self._last_seq

    # -- appending -------------------------------------------------------------------------

    async def append(self, event: str, payload: Mapping[str, Any] | None = None) -> AuditRecord:
        """Append one record and make it durable (write + fdatasync) before returning.

        Raises ``AuditWriteError`` when the record could not be made durable (the log is then
        poisoned) or when the log is already poisoned or closed, and ``AuditPayloadError``
        (nothing written) when the payload cannot be encoded or shadows a header key.
        """
        return await self._append(event, payload, op_id=False)

    def append_sync(self, event: str, payload: Mapping[str, Any] | None = None) -> AuditRecord:
        """Blocking twin of ``append`` (for synchronous callers such as repair)."""
        return self._append_sync(event, _snapshot(payload), op_id=False)

    async def _append(
        self, event: str, payload: Mapping[str, Any] | None, *, op_id: bool
    ) -> AuditRecord:
        """Append; when ``op_id`` is set, add ``op_id = <run_id>:<sequence_number>``."""
        snapshot = _snapshot(payload)
        self._raise_if_unusable(event)
        return await anyio.to_thread.run_sync(
            lambda: self._append_sync(event, snapshot, op_id=op_id)
        )

    def _raise_if_unusable(self, event: str) -> None:
        if self._poison is not None:
            self._count_error(event)
            raise AuditWriteError(self._path, event, f"log is poisoned ({self._poison})")
        if self._closed:
            raise AuditWriteError(self._path, event, "log is closed")

    def _append_sync(self, event: str, payload: dict[str, Any], *, op_id: bool) -> AuditRecord:
        with self._lock:
            self._raise_if_unusable(event)
            started = time.perf_counter()
            try:
                self._io.flock(self._fd, fcntl.LOCK_EX)
            except OSError as exc:
                self._fail(event, f"flock: {_os_reason(exc)}", exc)
            try:
                record = self._append_locked(event, payload, op_id=op_id)
            finally:
                # An unlock error needs no handling: closing the descriptor releases it anyway.
                with contextlib.suppress(OSError):
                    self._io.flock(self._fd, fcntl.LOCK_UN)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            with self._stats.lock:
                self._stats.records += 1
                self._stats.appends += 1
                self._stats.bytes += record.size
                self._stats.append_ms.append(elapsed_ms)
            return record

    def _append_locked(self, event: str, payload: dict[str, Any], *, op_id: bool) -> AuditRecord:
        try:
            self._catch_up()
        except AuditError as exc:
            self._fail(event, f"cannot continue the log: {exc}", exc)
        except OSError as exc:
            self._fail(event, f"reading the tail: {_os_reason(exc)}", exc)
        seq = self._last_seq + 1
        if op_id:
            payload = {**payload, "op_id": f"{self._run_id}:{seq}"}
        ts = self._clock()
        encoded = encode_record(  # AuditPayloadError here: nothing written, not poisoned.
            event=event,
            sequence_number=seq,
            run_id=self._run_id,
            config_hash=self._config_hash,
            prev_hash=self._last_hash,
            ts=ts,
            payload=payload,
        )
        line = encoded.line
        try:
            written = self._io.write(self._fd, line)
        except OSError as exc:
            self._fail(event, f"write: {_os_reason(exc)}", exc)
        if written != len(line):
            self._fail(event, f"short write: {written} of {len(line)} bytes", None)
        try:
            self._io.fdatasync(self._fd)
        except OSError as exc:
            self._fail(event, f"fdatasync: {_os_reason(exc)}", exc)
        offset = self._end
        self._end += len(line)
        self._lines += 1
        self._last_seq = seq
        self._last_hash = encoded.hash
        return AuditRecord(
            event=event,
            sequence_number=seq,
            hash=encoded.hash,
            ts=ts,
            record=encoded.record,
            offset=offset,
            size=len(line),
        )

    def _catch_up(self) -> None:
        """Under the lock: read and check whatever another writer appended since our last look."""
        mine = self._io.fstat(self._fd)
        try:
            on_disk = os.stat(self._path, follow_symlinks=False)
        except OSError as exc:
            raise AuditCorruptError(self._path, f"log path vanished: {_os_reason(exc)}") from exc
        if (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino):
            # Renamed or replaced under us: appending would go to a file nobody reads.
            raise AuditCorruptError(self._path, "log path now names another file (replaced)")
        size = mine.st_size
        if size == self._end:
            return
        if size < self._end:
            raise AuditCorruptError(
                self._path, f"file shrank from {self._end} to {size} bytes while open"
            )
        scan = scan_log(
            read_all(self._io, self._fd, self._end, size),
            base_offset=self._end,
            base_line=self._lines,
            last_sequence_number=self._last_seq,
            last_hash=self._last_hash,
            path=self._path,
        )
        if scan.ancestor_line is not None:
            raise AncestorLogError(self._path, scan.ancestor_line)
        if scan.torn_offset is not None:
            raise TornTailError(self._path, scan.torn_offset, scan.torn_reason or "torn")
        self._end = scan.end_offset
        self._lines = scan.lines
        self._last_seq = scan.last_sequence_number
        self._last_hash = scan.last_hash

    def _fail(self, event: str, reason: str, cause: BaseException | None) -> NoReturn:
        """Poison the log and raise ``AuditWriteError`` (never returns)."""
        self._poison = reason
        self._count_error(event)
        raise AuditWriteError(self._path, event, reason) from cause

    def _count_error(self, event: str) -> None:
        with self._stats.lock:
            self._stats.write_errors[event] += 1

    # -- brackets and statistics -------------------------------------------------------------

    def bracket(
        self,
        operation: str,
        intent: Mapping[str, Any],
        *,
        classify: Classifier | None = None,
    ) -> AbstractAsyncContextManager[Bracket]:
        """Write-ahead pair around one broker operation (see ``rebalancer.audit.bracket``)."""
        from rebalancer.audit.bracket import open_bracket

        return open_bracket(self, operation, intent, classify=classify)

    def note_operation(self, operation: str, latency_ms: float, error_class: str | None) -> None:
        """Record one bracketed operation's latency and (on failure) its error class."""
        with self._stats.lock:
            self._stats.op_count[operation] += 1
            self._stats.op_ms.setdefault(operation, deque(maxlen=_SAMPLES)).append(latency_ms)
            failures = self._stats.op_failures.setdefault(operation, Counter())
            if error_class is not None:
                failures[error_class] += 1

    def statistics(self) -> AuditStatistics:
        """A frozen snapshot of this appender's monitoring signals."""
        s = self._stats
        with s.lock:
            operations = {
                op: OperationStatistics(
                    operation=op,
                    latency=LatencySummary.of(s.op_count[op], tuple(s.op_ms.get(op, ()))),
                    failures=MappingProxyType(dict(s.op_failures.get(op, {}))),
                )
                for op in sorted(s.op_count)
            }
            return AuditStatistics(
                path=self._path,
                poisoned=self.poisoned,
                records_written=s.records,
                bytes_written=s.bytes,
                append_latency=LatencySummary.of(s.appends, tuple(s.append_ms)),
                write_errors=MappingProxyType(dict(s.write_errors)),
                operations=MappingProxyType(operations),
            )

    # -- closing -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the file. Idempotent. Every record is already durable; nothing is flushed."""
        await anyio.to_thread.run_sync(self.close_sync)

    def close_sync(self) -> None:
        """Blocking twin of ``aclose``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # The records are synced already; a close error changes nothing on disk.
            with contextlib.suppress(OSError):
                self._io.close(self._fd)

    async def __aenter__(self) -> Self:
        """``async with await AuditLog.open(...) as log:`` closes it on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the log (shielded from cancellation)."""
        with anyio.CancelScope(shield=True):
            await self.aclose()


# --- helpers -----------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _snapshot(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain-JSON copy of the payload, taken before any await (the caller may mutate it)."""
    if not payload:
        return {}
    converted: dict[str, Any] = to_json_value(payload)
    return converted


def _os_reason(exc: OSError) -> str:
    name = os.strerror(exc.errno) if exc.errno else str(exc)
    code = f"[Errno {exc.errno}] " if exc.errno else ""
    return f"{code}{name}"


def prepare_directory(directory: Path) -> None:
    """Make sure ``directory`` exists as a real (not symlinked) 0700 directory.

    A missing directory is created (its parents with default modes) and chmod-ed to 0700 (the
    umask cannot loosen it), then its parent is fsynced. An existing directory we own is
    tightened to 0700; one owned by another user is refused when group or others can access it.
    Raises ``AuditPathError``.
    """
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass  # Created concurrently (runner and kill switch); checked below.
        else:
            _chmod_dir(directory)
            OS_FILE_IO.fsync_dir(directory.parent)
        info = os.lstat(directory)
    except OSError as exc:
        raise AuditPathError(directory, f"cannot inspect the log directory: {exc}") from exc
    if stat.S_ISLNK(info.st_mode):
        raise AuditPathError(directory, "the log directory is a symlink; refusing to use it")
    if not stat.S_ISDIR(info.st_mode):
        raise AuditPathError(directory, "the log directory is not a directory")
    if stat.S_IMODE(info.st_mode) & 0o077:
        if info.st_uid != os.geteuid():
            raise AuditPathError(
                directory,
                f"the log directory (mode {stat.S_IMODE(info.st_mode):04o}) belongs to uid "
                f"{info.st_uid} and is open to group/others; refusing to use it",
            )
        try:
            _chmod_dir(directory)
        except OSError as exc:
            raise AuditPathError(directory, f"cannot chmod the log directory: {exc}") from exc


def _chmod_dir(directory: Path) -> None:
    """chmod 0700 through a descriptor opened without following a symlink."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def _open_file(io: FileIO, path: Path) -> tuple[int, bool]:
    """Open the log without following a symlink; returns (fd, created)."""
    try:
        fd, created = io.open(path, _FILE_FLAGS | os.O_CREAT | os.O_EXCL, 0o600), True
    except FileExistsError:
        try:
            fd, created = io.open(path, _FILE_FLAGS, 0), False
        except OSError as exc:
            raise _open_error(path, exc) from exc
    except OSError as exc:
        raise _open_error(path, exc) from exc
    if fd < 3:
        # Never keep the log on fd 0-2: a stray print would land in it.
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
        io.close(fd)
        fd = high
    if created:
        os.fchmod(fd, 0o600)
    return fd, created


def _open_error(path: Path, exc: OSError) -> AuditError:
    import errno

    if exc.errno == errno.ELOOP or os.path.islink(path):
        return AuditPathError(path, "the log path is a symlink; refusing to open it")
    return AuditWriteError(path, "open", _os_reason(exc))


def _check_file(fd: int, path: Path, io: FileIO) -> None:
    """Refuse a non-regular file; tighten our own file to 0600; refuse someone else's open file."""
    info = io.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise AuditPathError(path, "the log path is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o177:
        if info.st_uid != os.geteuid():
            raise AuditPathError(
                path,
                f"the log file (mode {mode:04o}) belongs to uid {info.st_uid} and is open to "
                "group/others; refusing to use it",
            )
        os.fchmod(fd, 0o600)
