"""The file-system calls the audit appender and repair make, behind one seam.

Production code always uses ``OS_FILE_IO`` (plain ``os`` calls). Tests pass a fault-injecting
implementation of ``FileIO`` to fail the k-th write or sync, to shorten a write, or to simulate a
power loss that drops whatever was not synced. Directory creation and permission checks use
``os`` directly: they are tested on the real file system.
"""

from __future__ import annotations

import fcntl
import os
import sys
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from pathlib import Path


class FileIO(Protocol):
    """The system calls behind the appender. Each raises ``OSError`` like its ``os`` twin."""

    def open(self, path: Path, flags: int, mode: int) -> int:
        """``os.open``: a new descriptor."""
        ...

    def write(self, fd: int, data: bytes) -> int:
        """One ``os.write``; returns how many bytes were written (may be fewer than asked)."""
        ...

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        """``os.pread``: up to ``length`` bytes from ``offset`` (fewer at end of file)."""
        ...

    def fdatasync(self, fd: int) -> None:
        """Make the file's data (and its size) durable."""
        ...

    def fsync(self, fd: int) -> None:
        """Make the file's data and metadata durable."""
        ...

    def fsync_dir(self, path: Path) -> None:
        """Make the directory entries of ``path`` (a directory) durable."""
        ...

    def ftruncate(self, fd: int, length: int) -> None:
        """Cut the file to ``length`` bytes."""
        ...

    def fstat(self, fd: int) -> os.stat_result:
        """``os.fstat``."""
        ...

    def flock(self, fd: int, operation: int) -> None:
        """``fcntl.flock`` (``LOCK_EX`` blocks until the lock is ours; ``LOCK_UN`` releases)."""
        ...

    def close(self, fd: int) -> None:
        """``os.close``."""
        ...


class OsFileIO:
    """The real ``FileIO``: plain ``os`` calls (``F_FULLFSYNC`` on macOS, where fsync lies)."""

    def open(self, path: Path, flags: int, mode: int) -> int:
        """``os.open``."""
        return os.open(path, flags, mode)

    def write(self, fd: int, data: bytes) -> int:
        """One ``os.write``."""
        return os.write(fd, data)

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        """``os.pread``."""
        return os.pread(fd, length, offset)

    def fdatasync(self, fd: int) -> None:
        """``os.fdatasync`` (``F_FULLFSYNC`` on macOS)."""
        if sys.platform == "darwin":  # pragma: no cover - Linux CI
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
        else:
            os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        """``os.fsync`` (``F_FULLFSYNC`` on macOS)."""
        if sys.platform == "darwin":  # pragma: no cover - Linux CI
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
        else:
            os.fsync(fd)

    def fsync_dir(self, path: Path) -> None:
        """Open the directory read-only and fsync it."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        """``os.ftruncate``."""
        os.ftruncate(fd, length)

    def fstat(self, fd: int) -> os.stat_result:
        """``os.fstat``."""
        return os.fstat(fd)

    def flock(self, fd: int, operation: int) -> None:
        """``fcntl.flock``."""
        fcntl.flock(fd, operation)

    def close(self, fd: int) -> None:
        """``os.close``."""
        os.close(fd)


OS_FILE_IO: Final[FileIO] = OsFileIO()
"""The one real ``FileIO``."""


def read_all(io: FileIO, fd: int, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the file, read with ``pread`` until complete or end of file."""
    chunks: list[bytes] = []
    offset = start
    while offset < end:
        chunk = io.pread(fd, min(end - offset, 1 << 24), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
