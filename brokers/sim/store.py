"""The state file: one JSON document, locked while used, replaced atomically.

A transaction takes an exclusive ``flock`` on a separate lock file (``<state>.lock``; the state
file itself is replaced on every write, so it cannot carry the lock), reads the document, lets
the caller change it, and writes it back through a temporary file, ``fsync`` and ``rename``
(plus an ``fsync`` of the directory). Waiting for the lock is bounded. Blocking: run it in a
worker thread.

Parsing a long history on every call would make polling slow, so each store keeps the state it
last saw and reuses it while the file is unchanged. "Unchanged" is decided by a generation token
that every writer puts in the lock file *before* it replaces the state file (so a crash between
the two can only cause a needless re-read), plus the state file's inode and size (so a state
file deleted or replaced by hand is noticed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import TYPE_CHECKING, TypeVar

from brokers.errors import BrokerUnavailable
from brokers.sim.state import SimState, dump_state, load_state

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

T = TypeVar("T")

LOCK_POLL_SECS = 0.002
TOKEN_BYTES = 32


class StateStore:
    """Locked, atomic access to one state file."""

    def __init__(self, path: Path, *, lock_timeout: float = 5.0) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock_timeout = lock_timeout
        self._cache: tuple[bytes, tuple[int, int], SimState] | None = None

    def transact(
        self,
        init: Callable[[], SimState],
        apply: Callable[[SimState], tuple[T, bool]],
    ) -> T:
        """Run ``apply`` on the current state (``init()`` when there is none yet) under the
        lock; write the state back when ``apply`` says it changed it (or it is new)."""
        with self._locked(exclusive=True) as lock_fd:
            token = os.pread(lock_fd, TOKEN_BYTES, 0)
            state = self._cached(token)
            created = False
            if state is None:
                self._cache = None
                state = self._read()
                created = state is None
                if state is None:
                    state = init()
            try:
                result, changed = apply(state)
                if changed or created:
                    token = os.urandom(TOKEN_BYTES // 2).hex().encode()
                    os.pwrite(lock_fd, token, 0)
                    self._write(state)
            except BaseException:
                self._cache = None
                raise
            self._cache = (token, self._identity() or (0, 0), state)
            return result

    def _cached(self, token: bytes) -> SimState | None:
        if self._cache is None or not token or self._cache[0] != token:
            return None
        if self._identity() != self._cache[1]:
            return None
        return self._cache[2]

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size

    def read(self) -> SimState | None:
        """The stored state as it is (no simulation step), or ``None`` when there is none."""
        if not self.path.exists():
            return None
        with self._locked(exclusive=False):
            return self._read()

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[int]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise BrokerUnavailable(
                f"simulated broker state {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BrokerUnavailable(
                            f"simulated broker state {self.path} stayed locked for "
                            f"{self.lock_timeout:g} s"
                        ) from None
                    time.sleep(LOCK_POLL_SECS)
            yield fd
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _read(self) -> SimState | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BrokerUnavailable(
                f"simulated broker state {self.path}: {exc.strerror or exc}"
            ) from None
        return load_state(raw, source=str(self.path))

    def _write(self, state: SimState) -> None:
        data = dump_state(state)
        # Writes happen only under the exclusive lock, so any temp file found now was left by a
        # writer that died mid-write: remove it.
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise BrokerUnavailable(
                f"simulated broker state {self.path}: cannot write: {exc.strerror or exc}"
            ) from None


def hold_client_id(state_path: Path, client_id: int) -> int:
    """Take the exclusive lock that marks ``client_id`` as connected; returns the descriptor
    to close on disconnect. ``BrokerUnavailable`` (code 326) when another connection holds it.
    The lock dies with its process, so a killed client frees its id."""
    path = state_path.with_name(f"{state_path.name}.client-{client_id}.lock")
    try:
        state_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BrokerUnavailable(f"simulated broker state {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BrokerUnavailable(
            f"[326] client id {client_id} is already in use at the simulated broker"
        ) from None
    return fd
