"""One runner at a time: an exclusive ``flock`` on a lock file in the audit directory.

The runner opens ``<audit dir>/rebalancer.lock`` (0600), takes ``LOCK_EX | LOCK_NB`` and keeps
the file open and locked for its whole life; the kernel drops the lock when the process dies,
however it dies. The file holds who the runner is, as JSON::

    {"pid": 4242, "process_start_time": 9137455, "boot_id": "…", "run_id": "…",
     "started_at": "2026-12-04T20:15:03.123456Z"}

``process_start_time`` is field 22 of ``/proc/<pid>/stat`` (clock ticks since boot) and
``boot_id`` is ``/proc/sys/kernel/random/boot_id``: together with the pid they name one
process, so a pid reused after a crash or a reboot is never mistaken for the runner.

The kill switch and ``status`` use ``read_holder``, ``holder_is_alive``, ``signal_holder`` and
``wait_until_released``. A holder counts as
alive only if the identity matches *and* the lock is still held (probed with a non-blocking
shared ``flock`` on a separate descriptor). That probe holds the lock for an instant when no
runner does; a runner starting in that instant gets ``AlreadyRunning`` and may simply retry.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from rebalancer.errors import RebalancerError
from rebalancer.exit_codes import ExitCode

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

LOCK_FILE_NAME = "rebalancer.lock"
"""Name of the run lock file inside the audit directory."""

_MAX_LOCK_BYTES = 4096
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def lock_path(audit_dir: Path) -> Path:
    """Where the run lock of the audit log in ``audit_dir`` lives."""
    return audit_dir / LOCK_FILE_NAME


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolder:
    """The runner named by a lock file."""

    pid: int
    process_start_time: int
    """Field 22 of ``/proc/<pid>/stat``: clock ticks after boot when the process started."""
    boot_id: str
    run_id: str
    started_at: datetime
    lock_path: Path
    """The lock file this was read from (not part of the file's content)."""

    def to_json(self) -> dict[str, Any]:
        """The lock file's content."""
        return {
            "pid": self.pid,
            "process_start_time": self.process_start_time,
            "boot_id": self.boot_id,
            "run_id": self.run_id,
            "started_at": _rfc3339(self.started_at),
        }

    def describe(self) -> str:
        """``pid 4242, run <id>, started <time>`` for messages."""
        return f"pid {self.pid}, run {self.run_id}, started {_rfc3339(self.started_at)}"


class AlreadyRunning(RebalancerError):
    """Raised by ``RunLock.acquire`` when another process holds the run lock."""

    exit_code = ExitCode.ALREADY_RUNNING

    def __init__(self, path: Path, holder: LockHolder | None) -> None:
        self.path = path
        self.holder = holder
        who = "holder not identifiable" if holder is None else holder.describe()
        super().__init__(f"another runner holds the run lock {path} ({who})")


class LockFileError(RebalancerError):
    """Raised when the lock file cannot be opened safely (symlink, permissions, I/O)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def current_boot_id() -> str:
    """This boot's id (``/proc/sys/kernel/random/boot_id``)."""
    return _BOOT_ID_PATH.read_text(encoding="ascii").strip()


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks), or None if no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Field 2 (the command name) is in parentheses and may itself contain spaces or ')'.
    rest = raw.rpartition(b")")[2].split()
    try:
        return int(rest[22 - 3])
    except (IndexError, ValueError):
        return None


def _open_lock_file(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockFileError(path, "is a symbolic link; refusing to use it") from None
        if isinstance(exc, FileNotFoundError):
            raise
        raise LockFileError(path, f"cannot open: {exc.strerror or exc}") from None


def _parse_holder(raw: bytes, path: Path) -> LockHolder | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    pid, start, boot, run_id, started = (
        data.get(k) for k in ("pid", "process_start_time", "boot_id", "run_id", "started_at")
    )
    if not (isinstance(pid, int) and not isinstance(pid, bool) and pid > 0):
        return None
    if not (isinstance(start, int) and not isinstance(start, bool) and start >= 0):
        return None
    if not (isinstance(boot, str) and isinstance(run_id, str) and isinstance(started, str)):
        return None
    try:
        started_at = datetime.fromisoformat(started)
    except ValueError:
        return None
    if started_at.tzinfo is None:
        return None
    return LockHolder(
        pid=pid,
        process_start_time=start,
        boot_id=boot,
        run_id=run_id,
        started_at=started_at.astimezone(UTC),
        lock_path=path,
    )


def read_holder(path: Path) -> LockHolder | None:
    """The runner recorded in the lock file, or None when there is none.

    None means: no file, an empty file (released cleanly, or a runner that has not written
    it yet) or content that cannot be parsed. Whether that runner still lives is a separate
    question: ask ``holder_is_alive``; and ``lock_is_held`` says whether *someone* holds it.
    """
    try:
        fd = _open_lock_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        raw = os.read(fd, _MAX_LOCK_BYTES)
    finally:
        os.close(fd)
    return _parse_holder(raw, path) if raw.strip() else None


def lock_is_held(path: Path) -> bool:
    """True when some process holds the run lock at ``path`` right now."""
    try:
        fd = _open_lock_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def holder_is_alive(holder: LockHolder) -> bool:
    """True only when ``holder`` is a live process of this boot, not a reused pid, and the
    lock it names is still held."""
    try:
        if holder.boot_id != current_boot_id():
            return False
    except OSError:
        return False
    if process_start_time(holder.pid) != holder.process_start_time:
        return False
    return lock_is_held(holder.lock_path)


def signal_holder(holder: LockHolder, signum: int) -> bool:
    """Send ``signum`` to the runner ``holder`` names, only if it is still that very process.

    The process is pinned with a pidfd before its identity is checked, so a pid reused between
    the check and the signal cannot receive it. Returns False (and sends nothing) when the
    holder is not alive (see ``holder_is_alive``).

    Raises:
        PermissionError: the runner belongs to another user.
    """
    try:
        pidfd = os.pidfd_open(holder.pid)
    except ProcessLookupError:
        return False
    except OSError as exc:  # pragma: no cover - kernels without pidfd (before Linux 5.3)
        if exc.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
        if not holder_is_alive(holder):
            return False
        os.kill(holder.pid, signum)
        return True
    try:
        if not holder_is_alive(holder):
            return False
        try:
            signal.pidfd_send_signal(pidfd, signum)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(pidfd)


async def wait_until_released(holder: LockHolder, *, poll_secs: float = 0.1) -> None:
    """Return once ``holder`` is no longer alive (process gone or lock released).

    Wrap it in ``anyio.fail_after`` / ``move_on_after``: it waits for as long as it takes.
    """
    # Another process: nothing signals us when it lets go, so poll.
    while await anyio.to_thread.run_sync(holder_is_alive, holder):  # noqa: ASYNC110
        await anyio.sleep(poll_secs)


class RunLock:
    """The run lock, held from ``acquire`` until ``release`` or process death.

    Use it as a context manager: ``with RunLock(path, run_id=run_id) as holder: ...``.

    Args:
        path: the lock file (``lock_path(cfg.audit.dir)``).
        run_id: written into the file so ``kill`` and ``status`` can name the run.
        now: the clock for ``started_at``.
    """

    def __init__(
        self, path: Path, *, run_id: str, now: Callable[[], datetime] = _utcnow
    ) -> None:
        self.path = path
        self.run_id = run_id
        self._now = now
        self._fd: int | None = None
        self._holder: LockHolder | None = None

    @property
    def holder(self) -> LockHolder | None:
        """What this lock wrote, while it is held."""
        return self._holder

    @property
    def held(self) -> bool:
        """True between a successful ``acquire`` and ``release``."""
        return self._fd is not None

    def acquire(self) -> LockHolder:
        """Take the lock without waiting and record this process in the file.

        Raises:
            AlreadyRunning: another process (or another ``RunLock`` in this one) holds it.
            LockFileError: the file is a symlink or cannot be opened or written.
        """
        if self._fd is not None:
            raise RuntimeError("RunLock.acquire called twice")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = _open_lock_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raw = os.pread(fd, _MAX_LOCK_BYTES, 0)
                raise AlreadyRunning(self.path, _parse_holder(raw, self.path)) from None
            pid = os.getpid()
            start = process_start_time(pid)
            if start is None:  # pragma: no cover - /proc/self always exists on Linux
                raise LockFileError(self.path, "cannot read this process's start time")
            holder = LockHolder(
                pid=pid,
                process_start_time=start,
                boot_id=current_boot_id(),
                run_id=self.run_id,
                started_at=self._now().astimezone(UTC),
                lock_path=self.path,
            )
            data = json.dumps(holder.to_json(), sort_keys=True).encode("ascii") + b"\n"
            try:
                os.fchmod(fd, 0o600)
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
                os.fsync(fd)
            except OSError as exc:
                raise LockFileError(self.path, f"cannot write: {exc.strerror or exc}") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._holder = holder
        return holder

    def release(self) -> None:
        """Empty the file and drop the lock. Safe to call when not held."""
        fd, self._fd, self._holder = self._fd, None, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def __enter__(self) -> LockHolder:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
