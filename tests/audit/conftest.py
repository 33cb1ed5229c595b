"""Fixtures of the audit tests: a fault-injecting FileIO and small log helpers."""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from rebalancer.audit.fileio import OsFileIO
from rebalancer.audit.records import LogScan, scan_log

FaultKind = int | Literal["short"]


class FaultyIO(OsFileIO):
    """A ``FileIO`` over the real file system that fails on command and can lose power.

    ``fail_op`` is ``"write"`` or ``"sync"`` (fdatasync, fsync and directory fsync all count as
    syncs); the ``at``-th such call fails with ``OSError(error)``, or with ``error="short"``
    writes only half the bytes. ``persistent`` makes every later call of that kind fail too.

    Durability model: a file's *durable* content is what it held at its last successful
    fdatasync/fsync; a file created by ``open`` is durable only after its directory is fsynced.
    ``power_loss()`` puts every file back to its durable content (or removes it).
    """

    def __init__(
        self,
        *,
        fail_op: Literal["write", "sync"] | None = None,
        at: int = 0,
        error: FaultKind = errno.EIO,
        persistent: bool = False,
    ) -> None:
        """Configure the fault (none by default)."""
        self.fail_op = fail_op
        self.at = at
        self.error = error
        self.persistent = persistent
        self.counts: Counter[str] = Counter()
        self.faults = 0
        self.fd_paths: dict[int, Path] = {}
        self.durable: dict[Path, bytes] = {}
        self.undurable_entries: set[Path] = set()

    def _fault(self, op: str) -> FaultKind | None:
        self.counts[op] += 1
        n = self.counts[op]
        if op == self.fail_op and (n == self.at or (self.persistent and n > self.at)):
            self.faults += 1
            if self.error == "short":
                return "short"
            raise OSError(self.error, os.strerror(self.error))
        return None

    def open(self, path: Path, flags: int, mode: int) -> int:
        """Open and remember which path the descriptor names."""
        existed = os.path.lexists(path)
        fd = super().open(path, flags, mode)
        path = Path(path)
        self.fd_paths[fd] = path
        if not existed:
            self.durable[path] = b""
            self.undurable_entries.add(path)
        elif path not in self.durable:
            self.durable[path] = Path(path).read_bytes()
        return fd

    def write(self, fd: int, data: bytes) -> int:
        """Write, unless the fault says fail or shorten."""
        if self._fault("write") == "short":
            return super().write(fd, data[: len(data) // 2])
        return super().write(fd, data)

    def _synced(self, fd: int) -> None:
        path = self.fd_paths[fd]
        self.durable[path] = path.read_bytes()

    def fdatasync(self, fd: int) -> None:
        """Sync, unless the fault says fail; then the file's content is durable."""
        self._fault("sync")
        super().fdatasync(fd)
        self._synced(fd)

    def fsync(self, fd: int) -> None:
        """Like ``fdatasync``."""
        self._fault("sync")
        super().fsync(fd)
        self._synced(fd)

    def fsync_dir(self, path: Path) -> None:
        """Sync the directory; files created in it become durable entries."""
        self._fault("sync")
        super().fsync_dir(path)
        self.undurable_entries = {p for p in self.undurable_entries if p.parent != Path(path)}

    def close(self, fd: int) -> None:
        """Close and forget the descriptor."""
        self.fd_paths.pop(fd, None)
        super().close(fd)

    def durable_bytes(self, path: Path) -> bytes | None:
        """What ``path`` would hold after a power loss now (``None``: the file would be gone)."""
        if path in self.undurable_entries:
            return None
        return self.durable.get(path)

    def power_loss(self) -> None:
        """Put every file back to its durable state: drop unsynced bytes and unsynced entries."""
        for path, content in self.durable.items():
            if path in self.undurable_entries:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)


@pytest.fixture(name="log_path")
def fixture_log_path(tmp_path: Path) -> Path:
    """A log path in a not-yet-existing directory under the test's tmp dir."""
    return tmp_path / "logs" / "audit.jsonl"


def scan_file(path: Path) -> LogScan:
    """Scan a log file's chain (raises on mid-file damage)."""
    return scan_log(path.read_bytes(), path=path)


@pytest.fixture(name="faulty_io")
def fixture_faulty_io() -> type[FaultyIO]:
    """The ``FaultyIO`` class (fixtures avoid importing ``conftest`` by module name)."""
    return FaultyIO


@pytest.fixture(name="scan")
def fixture_scan() -> Callable[[Path], LogScan]:
    """``scan_file``: check a log file's chain and return where it ends."""
    return scan_file
