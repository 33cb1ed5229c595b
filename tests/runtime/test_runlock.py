"""The run lock: one runner at a time, its identity on disk, liveness that survives PID reuse."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from rebalancer.exit_codes import ExitCode
from rebalancer.runtime.runlock import (
    AlreadyRunning,
    LockFileError,
    RunLock,
    current_boot_id,
    holder_is_alive,
    lock_is_held,
    lock_path,
    process_start_time,
    read_holder,
    signal_holder,
    wait_until_released,
)

FIXED = datetime(2026, 12, 4, 20, 15, 3, 123456, tzinfo=UTC)

_HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from rebalancer.runtime.runlock import RunLock
RunLock(Path(sys.argv[1]), run_id=sys.argv[2]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture(name="path")
def fixture_path(tmp_path: Path) -> Path:
    """A lock path inside a not-yet-existing audit directory."""
    return lock_path(tmp_path / "audit")


@pytest.fixture(name="other_runner")
def fixture_other_runner(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A separate Python process holding the lock until the test SIGKILLs it (or teardown)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER_SCRIPT, str(path), "run-other"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_acquire_writes_identity_with_private_modes(path: Path) -> None:
    """The lock file (0600, in a new 0700 directory) names this process, its boot and the run."""
    with RunLock(path, run_id="run-1", now=lambda: FIXED) as holder:
        content = json.loads(path.read_text())
        assert content == {
            "pid": os.getpid(),
            "process_start_time": process_start_time(os.getpid()),
            "boot_id": current_boot_id(),
            "run_id": "run-1",
            "started_at": "2026-12-04T20:15:03.123456Z",
        }
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert read_holder(path) == holder
        assert holder_is_alive(holder)
        assert lock_is_held(path)


def test_second_acquirer_gets_already_running_naming_the_holder(path: Path) -> None:
    """A second RunLock on the same file fails with the holder's pid, run id and start time."""
    with RunLock(path, run_id="run-1", now=lambda: FIXED), pytest.raises(AlreadyRunning) as info:
        RunLock(path, run_id="run-2").acquire()
    err = info.value
    assert err.exit_code is ExitCode.ALREADY_RUNNING
    assert str(err) == (
        f"another runner holds the run lock {path} "
        f"(pid {os.getpid()}, run run-1, started 2026-12-04T20:15:03.123456Z)"
    )
    assert err.holder is not None
    assert err.holder.run_id == "run-1"


def test_release_lets_the_next_runner_in_and_empties_the_file(path: Path) -> None:
    """After a clean release the file is empty, nobody is alive, and a new run can lock."""
    lock = RunLock(path, run_id="run-1")
    holder = lock.acquire()
    assert lock.held
    lock.release()
    lock.release()  # idempotent
    assert not lock.held
    assert path.read_bytes() == b""
    assert read_holder(path) is None
    assert not lock_is_held(path)
    assert not holder_is_alive(holder)
    with RunLock(path, run_id="run-2") as second:
        assert second.run_id == "run-2"


def test_acquire_twice_on_one_object_is_a_programming_error(path: Path) -> None:
    """Calling acquire on an already held RunLock raises RuntimeError and keeps the lock."""
    lock = RunLock(path, run_id="run-1")
    holder = lock.acquire()
    with pytest.raises(RuntimeError, match="twice"):
        lock.acquire()
    assert lock.held
    assert holder_is_alive(holder)
    lock.release()


@pytest.mark.parametrize(
    "change",
    [
        {"boot_id": "00000000-0000-0000-0000-000000000000"},  # written before a reboot
        {"process_start_time": 1},  # the pid was reused by a younger process
        {"pid": 2**22 + 12345},  # no such process
    ],
    ids=["other-boot", "reused-pid", "no-process"],
)
def test_identity_mismatch_is_not_alive_even_while_locked(
    path: Path, change: dict[str, object]
) -> None:
    """A holder whose boot id, start time or pid does not match is dead, lock or no lock."""
    with RunLock(path, run_id="run-1") as holder:
        assert holder_is_alive(holder)
        assert not holder_is_alive(replace(holder, **change))  # type: ignore[arg-type]


def test_another_process_is_seen_alive_then_dead_after_sigkill(
    path: Path, other_runner: subprocess.Popen[str]
) -> None:
    """A runner in another process is alive; after SIGKILL the kernel frees the lock."""
    holder = read_holder(path)
    assert holder is not None
    assert (holder.pid, holder.run_id) == (other_runner.pid, "run-other")
    assert holder_is_alive(holder)
    with pytest.raises(AlreadyRunning, match=f"pid {other_runner.pid}, run run-other"):
        RunLock(path, run_id="run-2").acquire()

    other_runner.send_signal(signal.SIGKILL)
    other_runner.wait(timeout=10)

    stale = read_holder(path)
    assert stale == holder  # the file still names the dead runner
    assert not lock_is_held(path)
    assert not holder_is_alive(holder)
    with RunLock(path, run_id="run-2") as mine:
        assert mine.pid == os.getpid()


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1,2]", b'{"pid": "12"}', b"\xff\xfe",
     b'{"pid":1,"process_start_time":2,"boot_id":"b","run_id":"r","started_at":"2026-12-04"}'],
)
def test_unreadable_content_reads_as_no_holder(path: Path, content: bytes) -> None:
    """Garbage (or a naive timestamp) in the lock file gives None; the lock state is separate."""
    path.parent.mkdir(mode=0o700)
    path.write_bytes(content)
    assert read_holder(path) is None
    assert not lock_is_held(path)


def test_corrupt_file_under_a_live_lock_is_reported_as_unidentifiable(path: Path) -> None:
    """If the holder's details cannot be parsed, AlreadyRunning still says someone holds it."""
    with RunLock(path, run_id="run-1"):
        with path.open("wb") as fh:
            fh.write(b"{garbage")
        assert read_holder(path) is None
        assert lock_is_held(path)
        with pytest.raises(AlreadyRunning, match="holder not identifiable"):
            RunLock(path, run_id="run-2").acquire()


def test_missing_file_means_nobody(path: Path) -> None:
    """No lock file: no holder and no lock."""
    assert read_holder(path) is None
    assert not lock_is_held(path)


def test_symlinked_lock_file_is_refused(path: Path, tmp_path: Path) -> None:
    """A symlink at the lock path is never followed."""
    path.parent.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("")
    path.symlink_to(target)
    with pytest.raises(LockFileError, match="symbolic link"):
        RunLock(path, run_id="run-1").acquire()
    with pytest.raises(LockFileError, match="symbolic link"):
        read_holder(path)


def test_process_start_time_of_this_process_is_stable() -> None:
    """Field 22 of /proc/self/stat is read as an int and is the same on each read."""
    first = process_start_time(os.getpid())
    assert isinstance(first, int)
    assert first == process_start_time(os.getpid())
    assert process_start_time(2**22 + 12345) is None


async def test_signal_holder_stops_the_runner_and_wait_returns(
    path: Path, other_runner: subprocess.Popen[str]
) -> None:
    """SIGTERM reaches the verified runner; wait_until_released returns once it is gone."""
    holder = read_holder(path)
    assert holder is not None
    assert signal_holder(holder, signal.SIGTERM)
    with anyio.fail_after(10):
        await wait_until_released(holder, poll_secs=0.01)
    assert other_runner.wait(timeout=10) == -signal.SIGTERM
    assert not signal_holder(holder, signal.SIGTERM)


def test_signal_holder_refuses_a_reused_pid(
    path: Path, other_runner: subprocess.Popen[str]
) -> None:
    """A holder whose start time does not match the live pid gets no signal."""
    holder = read_holder(path)
    assert holder is not None
    impostor = replace(holder, process_start_time=holder.process_start_time + 1)
    assert not signal_holder(impostor, signal.SIGTERM)
    assert other_runner.poll() is None
    assert holder_is_alive(holder)
