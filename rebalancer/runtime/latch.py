"""The safety latch: a file next to the audit log that stops unattended runs until a person
clears it.

``kill``, an audit write failure, a fresh log that fails validation and a ``manual_review``
verdict set it; ``run --cron`` refuses to start while it is set; only ``latch clear --reason``
removes it. The file is JSON (0600)::

    {"version": 1, "reason": "...", "source": "kill", "run_id": "...",
     "set_at": "2026-12-04T20:15:03.123456Z", "history": [{reason, source, run_id, set_at}, ...]}

The first reason is kept; setting an already set latch appends to ``history``. Writes are
atomic (temp file, fsync, rename, directory fsync) and serialised across processes by a
``flock`` on ``.SAFETY_LATCH.lock`` in the same directory.

Fail safe: a latch file that exists but cannot be read or parsed counts as SET, with the
reason ``"latch file unreadable"``. Only a missing file means clear.

The functions block on disk I/O (fsync); async callers run them in a worker thread
(``anyio.to_thread.run_sync``). The ``latch_set`` / ``latch_cleared`` audit records are the
caller's job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.errors import RebalancerError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

LATCH_FILE_NAME = "SAFETY_LATCH"
"""Name of the latch file inside the audit directory."""

UNREADABLE_REASON = "latch file unreadable"
"""The reason reported for a latch file that exists but cannot be understood."""

_LOCK_FILE_NAME = f".{LATCH_FILE_NAME}.lock"
_MAX_LATCH_BYTES = 1 << 20
_LOCK_TIMEOUT_SECS = 10.0
_FORMAT_VERSION = 1


class LatchSource(StrEnum):
    """Who set the latch (callers may pass any short string; these are the usual ones)."""

    RUN = "run"
    KILL = "kill"
    AUDIT_FAILURE = "audit_failure"
    VALIDATION_FAILED = "validation_failed"
    MANUAL_REVIEW = "manual_review"
    OPERATOR = "operator"
    UNKNOWN = "unknown"


class LatchError(RebalancerError):
    """Raised when the latch file cannot be written, removed or locked."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class LatchChanged(RebalancerError):
    """Raised by ``clear_latch`` when the latch is no longer what the caller reviewed."""

    def __init__(self, path: Path, current: LatchState) -> None:
        self.path = path
        self.current = current
        super().__init__(
            f"{path}: the safety latch changed while clearing it (now: "
            f"{'; '.join(current.reasons)}); nothing was cleared, review and run again"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LatchEntry:
    """One time the latch was set."""

    reason: str
    source: str
    run_id: str | None
    set_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The entry as it is stored."""
        return {
            "reason": self.reason,
            "source": self.source,
            "run_id": self.run_id,
            "set_at": _rfc3339(self.set_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LatchState:
    """A set latch: the first entry (why it was set) and every later one, in order."""

    entries: tuple[LatchEntry, ...]
    path: Path
    unreadable: str | None = None
    """Why the file could not be read (then the only reason is ``UNREADABLE_REASON``)."""

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("a set latch has at least one entry")

    @property
    def first(self) -> LatchEntry:
        """The entry that set the latch."""
        return self.entries[0]

    @property
    def reason(self) -> str:
        """The first reason: why the latch was set."""
        return self.entries[0].reason

    @property
    def source(self) -> str:
        """Who set it first."""
        return self.entries[0].source

    @property
    def run_id(self) -> str | None:
        """The run (or invocation) that set it first."""
        return self.entries[0].run_id

    @property
    def set_at(self) -> datetime:
        """When it was set first."""
        return self.entries[0].set_at

    @property
    def history(self) -> tuple[LatchEntry, ...]:
        """The entries added while it was already set."""
        return self.entries[1:]

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason, first one first."""
        return tuple(entry.reason for entry in self.entries)

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "version": _FORMAT_VERSION,
            **self.first.to_json(),
            "history": [entry.to_json() for entry in self.history],
        }


def latch_path(audit_dir: Path) -> Path:
    """Where the latch of the audit log in ``audit_dir`` lives."""
    return audit_dir / LATCH_FILE_NAME


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_entry(data: Any) -> LatchEntry:
    if not isinstance(data, dict):
        raise ValueError("entry is not an object")
    reason, source, run_id, set_at = (data.get(k) for k in ("reason", "source", "run_id", "set_at"))
    if not isinstance(reason, str) or not reason:
        raise ValueError("reason is missing")
    if not isinstance(source, str):
        raise ValueError("source is missing")
    if run_id is not None and not isinstance(run_id, str):
        raise ValueError("run_id is not a string")
    if not isinstance(set_at, str):
        raise ValueError("set_at is missing")
    moment = datetime.fromisoformat(set_at)
    if moment.tzinfo is None:
        raise ValueError("set_at has no time zone")
    return LatchEntry(reason=reason, source=source, run_id=run_id, set_at=moment.astimezone(UTC))


def _parse(raw: bytes, path: Path) -> LatchState:
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("version") != _FORMAT_VERSION:
        raise ValueError(f"unknown version {data.get('version')!r}")
    history = data.get("history", [])
    if not isinstance(history, list):
        raise ValueError("history is not a list")
    entries = (_parse_entry(data), *(_parse_entry(item) for item in history))
    return LatchState(entries=entries, path=path)


def _unreadable(path: Path, why: str, when: datetime) -> LatchState:
    entry = LatchEntry(reason=UNREADABLE_REASON, source=LatchSource.UNKNOWN, run_id=None,
                       set_at=when)
    return LatchState(entries=(entry,), path=path, unreadable=why)


def read_latch(audit_dir: Path) -> LatchState | None:
    """The latch in ``audit_dir``, or None when it is clear (no latch file).

    Never raises for a bad file: anything at the latch path that cannot be read and parsed
    (a symlink, a directory, garbage, no permission) is reported as set with the reason
    ``"latch file unreadable"`` and the cause in ``unreadable``.
    """
    path = latch_path(audit_dir)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _unreadable(path, f"cannot stat: {exc.strerror or exc}", _utcnow())
    when = datetime.fromtimestamp(info.st_mtime, UTC)
    if not stat.S_ISREG(info.st_mode):
        return _unreadable(path, "not a regular file", when)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # cleared between lstat and open
    except OSError as exc:
        return _unreadable(path, f"cannot open: {exc.strerror or exc}", when)
    try:
        raw = os.read(fd, _MAX_LATCH_BYTES + 1)
    except OSError as exc:
        return _unreadable(path, f"cannot read: {exc.strerror or exc}", when)
    finally:
        os.close(fd)
    if len(raw) > _MAX_LATCH_BYTES:
        return _unreadable(path, f"larger than {_MAX_LATCH_BYTES} bytes", when)
    try:
        return _parse(raw, path)
    except (UnicodeDecodeError, ValueError) as exc:
        return _unreadable(path, f"not a valid latch file: {exc}", when)


@contextlib.contextmanager
def _locked(audit_dir: Path) -> Iterator[int]:
    """Hold the latch lock; yields a descriptor of the directory for fsync."""
    lock = audit_dir / _LOCK_FILE_NAME
    try:
        audit_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise LatchError(lock, f"cannot open the latch lock: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT_SECS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LatchError(lock, "latch lock busy for too long") from None
                time.sleep(0.01)
        dir_fd = os.open(audit_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield dir_fd
        finally:
            os.close(dir_fd)
    finally:
        os.close(fd)


def _write_atomically(state: LatchState, dir_fd: int) -> None:
    path = state.path
    data = json.dumps(state.to_json(), sort_keys=True, indent=2, ensure_ascii=True) + "\n"
    payload = data.encode("ascii")
    tmp = path.with_name(f".{LATCH_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        os.fsync(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise LatchError(path, f"cannot write the safety latch: {exc.strerror or exc}") from None


def set_latch(
    audit_dir: Path,
    *,
    reason: str,
    source: str,
    run_id: str | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> LatchState:
    """Set the latch (or add ``reason`` to the history of a set one) and return it.

    Raises:
        ValueError: ``reason`` is empty.
        LatchError: the file could not be written durably.
    """
    if not reason.strip():
        raise ValueError("a latch needs a non-empty reason")
    entry = LatchEntry(reason=reason, source=str(source), run_id=run_id,
                       set_at=now().astimezone(UTC))
    with _locked(audit_dir) as dir_fd:
        current = read_latch(audit_dir)
        entries = (entry,) if current is None else (*current.entries, entry)
        state = LatchState(entries=entries, path=latch_path(audit_dir))
        _write_atomically(state, dir_fd)
    return state


def clear_latch(
    audit_dir: Path,
    *,
    reason: str,
    expected: LatchState | None = None,
    before_remove: Callable[[LatchState], None] | None = None,
) -> LatchState | None:
    """Remove the latch and return what was cleared, or None if it was not set.

    Args:
        reason: why a person cleared it (for the caller's ``latch_cleared`` record).
        expected: the latch the person reviewed; if the file now holds something else,
            ``LatchChanged`` is raised and nothing is removed.
        before_remove: called under the latch lock with the state about to be cleared, e.g.
            to write the ``latch_cleared`` audit record first; if it raises, the latch stays.

    Raises:
        ValueError: ``reason`` is empty.
        LatchChanged: the latch differs from ``expected``.
        LatchError: the file could not be removed.
    """
    if not reason.strip():
        raise ValueError("clearing the latch needs a non-empty reason")
    with _locked(audit_dir) as dir_fd:
        current = read_latch(audit_dir)
        if current is None:
            return None
        if expected is not None and current.reasons != expected.reasons:
            raise LatchChanged(current.path, current)
        if before_remove is not None:
            before_remove(current)
        try:
            current.path.unlink()
            os.fsync(dir_fd)
        except OSError as exc:
            raise LatchError(
                current.path, f"cannot remove the safety latch: {exc.strerror or exc}"
            ) from None
    return current
