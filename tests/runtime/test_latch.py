"""The safety latch file: set keeps the first reason, read fails safe, clear removes it."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rebalancer.runtime.latch import (
    LATCH_FILE_NAME,
    UNREADABLE_REASON,
    LatchChanged,
    LatchError,
    LatchSource,
    LatchState,
    clear_latch,
    latch_path,
    read_latch,
    set_latch,
)

T0 = datetime(2026, 12, 4, 20, 0, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _doc(**changes: object) -> bytes:
    doc: dict[str, object] = {"version": 1, "reason": "x", "source": "run", "run_id": None,
                              "set_at": "2026-12-04T20:00:00Z", "history": []}
    return json.dumps({**doc, **changes}).encode()


@pytest.fixture(name="audit_dir")
def fixture_audit_dir(tmp_path: Path) -> Path:
    """An audit directory that does not exist yet."""
    return tmp_path / "audit"


def test_no_file_means_clear(audit_dir: Path) -> None:
    """A missing latch file (even a missing directory) reads as clear."""
    assert read_latch(audit_dir) is None


def test_set_writes_a_private_json_file(audit_dir: Path) -> None:
    """Setting the latch writes its reason, source, run and time to a 0600 file."""
    state = set_latch(audit_dir, reason="audit fsync failed", source=LatchSource.AUDIT_FAILURE,
                      run_id="run-1", now=lambda: T0)
    path = audit_dir / LATCH_FILE_NAME
    assert state.path == path == latch_path(audit_dir)
    assert json.loads(path.read_text()) == {
        "version": 1,
        "reason": "audit fsync failed",
        "source": "audit_failure",
        "run_id": "run-1",
        "set_at": "2026-12-04T20:00:00.000000Z",
        "history": [],
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit_dir.stat().st_mode) == 0o700
    assert read_latch(audit_dir) == state
    assert sorted(p.name for p in audit_dir.iterdir()) == [".SAFETY_LATCH.lock", "SAFETY_LATCH"]


def test_setting_again_keeps_the_first_reason_and_appends_history(audit_dir: Path) -> None:
    """A second and third set keep the first reason and list the later ones in order."""
    set_latch(audit_dir, reason="kill requested", source="kill", now=lambda: _at(0))
    set_latch(audit_dir, reason="manual review", source="manual_review", run_id="rec-1",
              now=lambda: _at(1))
    state = set_latch(audit_dir, reason="validation failed", source="run", now=lambda: _at(2))
    assert state.reason == "kill requested"
    assert (state.source, state.run_id, state.set_at) == ("kill", None, _at(0))
    assert state.reasons == ("kill requested", "manual review", "validation failed")
    assert [e.run_id for e in state.history] == ["rec-1", None]
    assert read_latch(audit_dir) == state
    assert [h["reason"] for h in json.loads(latch_path(audit_dir).read_text())["history"]] == [
        "manual review", "validation failed"
    ]


def test_empty_reason_is_refused(audit_dir: Path) -> None:
    """Neither set nor clear accepts a blank reason."""
    with pytest.raises(ValueError, match="non-empty reason"):
        set_latch(audit_dir, reason="  ", source="run")
    set_latch(audit_dir, reason="x", source="run")
    with pytest.raises(ValueError, match="non-empty reason"):
        clear_latch(audit_dir, reason="")
    assert read_latch(audit_dir) is not None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe\x00",
        b"[]",
        _doc(version=2),
        _doc(reason=""),
        _doc(set_at="2026-12-04T20:00:00"),
        _doc(set_at="yesterday"),
        _doc(run_id=7),
        _doc(history=[1]),
    ],
    ids=["empty", "garbage", "binary", "array", "version", "blank-reason", "naive-time",
         "bad-time", "bad-run-id", "bad-history"],
)
def test_corrupt_latch_file_counts_as_set(audit_dir: Path, content: bytes) -> None:
    """Any latch file that cannot be parsed reads as SET with reason 'latch file unreadable'."""
    audit_dir.mkdir(mode=0o700)
    latch_path(audit_dir).write_bytes(content)
    state = read_latch(audit_dir)
    assert state is not None
    assert state.reasons == (UNREADABLE_REASON,)
    assert state.unreadable


def test_symlink_or_directory_at_the_latch_path_counts_as_set(
    audit_dir: Path, tmp_path: Path
) -> None:
    """A symlink is not followed and a directory is not a latch file: both fail safe."""
    audit_dir.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.json"
    set_latch(tmp_path / "other", reason="elsewhere", source="run")
    target.write_bytes(latch_path(tmp_path / "other").read_bytes())
    latch_path(audit_dir).symlink_to(target)
    state = read_latch(audit_dir)
    assert state is not None
    assert (state.reason, state.unreadable) == (UNREADABLE_REASON, "not a regular file")
    latch_path(audit_dir).unlink()
    latch_path(audit_dir).mkdir()
    state = read_latch(audit_dir)
    assert state is not None
    assert state.reason == UNREADABLE_REASON


def test_setting_over_a_corrupt_file_keeps_the_unreadable_marker_first(audit_dir: Path) -> None:
    """The corrupt file's 'unreadable' reason stays first; the new reason is appended."""
    audit_dir.mkdir(mode=0o700)
    latch_path(audit_dir).write_bytes(b"garbage")
    state = set_latch(audit_dir, reason="kill requested", source="kill")
    assert state.reasons == (UNREADABLE_REASON, "kill requested")
    assert read_latch(audit_dir) == state


def test_clear_removes_the_file_and_returns_what_was_cleared(audit_dir: Path) -> None:
    """clear_latch deletes the latch and hands back the reasons it had."""
    set_latch(audit_dir, reason="kill requested", source="kill", now=lambda: _at(0))
    set_latch(audit_dir, reason="manual review", source="manual_review", now=lambda: _at(1))
    cleared = clear_latch(audit_dir, reason="orders checked at the broker")
    assert cleared is not None
    assert cleared.reasons == ("kill requested", "manual review")
    assert not latch_path(audit_dir).exists()
    assert read_latch(audit_dir) is None
    assert clear_latch(audit_dir, reason="again") is None


def test_clear_of_a_corrupt_latch_is_allowed(audit_dir: Path) -> None:
    """An operator can clear an unreadable latch after looking at it."""
    audit_dir.mkdir(mode=0o700)
    latch_path(audit_dir).write_bytes(b"garbage")
    cleared = clear_latch(audit_dir, reason="looked at it")
    assert cleared is not None
    assert cleared.reasons == (UNREADABLE_REASON,)
    assert read_latch(audit_dir) is None


def test_clear_refuses_when_the_latch_changed_since_review(audit_dir: Path) -> None:
    """If a new reason was added after the operator looked, nothing is cleared."""
    reviewed = set_latch(audit_dir, reason="kill requested", source="kill")
    set_latch(audit_dir, reason="audit write failed", source="audit_failure")
    with pytest.raises(LatchChanged, match="audit write failed"):
        clear_latch(audit_dir, reason="ok", expected=reviewed)
    state = read_latch(audit_dir)
    assert state is not None
    assert len(state.entries) == 2


def test_before_remove_runs_first_and_its_failure_keeps_the_latch(audit_dir: Path) -> None:
    """The hook sees the state under the lock; if it raises, the latch is still set."""
    set_latch(audit_dir, reason="kill requested", source="kill")
    seen: list[LatchState] = []

    def failing(state: LatchState) -> None:
        seen.append(state)
        assert latch_path(audit_dir).exists()
        raise OSError("audit log unavailable")

    with pytest.raises(OSError, match="audit log unavailable"):
        clear_latch(audit_dir, reason="ok", before_remove=failing)
    assert [s.reasons for s in seen] == [("kill requested",)]
    assert read_latch(audit_dir) is not None
    cleared = clear_latch(audit_dir, reason="ok", before_remove=seen.append)
    assert cleared is not None
    assert read_latch(audit_dir) is None


def test_write_failure_raises_latch_error_and_leaves_no_temp_file(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the rename fails, set_latch raises LatchError, the old latch stays, no temp file."""
    set_latch(audit_dir, reason="first", source="run")

    def no_rename(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(LatchError, match="cannot write the safety latch: No space left"):
        set_latch(audit_dir, reason="second", source="run")
    monkeypatch.undo()
    state = read_latch(audit_dir)
    assert state is not None
    assert state.reasons == ("first",)
    assert not [p for p in audit_dir.iterdir() if p.name.endswith(".tmp")]


def test_state_needs_an_entry(tmp_path: Path) -> None:
    """A LatchState without entries cannot be built (a set latch always has a reason)."""
    with pytest.raises(ValueError, match="at least one entry"):
        LatchState(entries=(), path=tmp_path)


_SETTER = """
import sys
from pathlib import Path
from rebalancer.runtime.latch import set_latch
for i in range(10):
    set_latch(Path(sys.argv[1]), reason=f"{sys.argv[2]}-{i}", source="run")
"""


def test_concurrent_setters_in_separate_processes_lose_no_reason(audit_dir: Path) -> None:
    """Four processes setting the latch at once: every reason ends up in the file."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen([sys.executable, "-c", _SETTER, str(audit_dir), f"p{n}"])
        for n in range(4)
    ]
    assert [proc.wait(timeout=30) for proc in procs] == [0, 0, 0, 0]
    state = read_latch(audit_dir)
    assert state is not None
    assert sorted(state.reasons) == sorted(f"p{n}-{i}" for n in range(4) for i in range(10))
    for n in range(4):  # each process's reasons stay in its own order
        mine = [r for r in state.reasons if r.startswith(f"p{n}-")]
        assert mine == [f"p{n}-{i}" for i in range(10)]
