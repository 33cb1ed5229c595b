"""The process exit codes of the ``rebalancer`` command, one per distinct outcome.

The README documents this table; keep the two in step.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Why the process ended. Zero only when the thing asked for happened."""

    OK = 0
    """The command did what was asked."""
    ERROR = 1
    """Generic failure: broker unreachable, unexpected broker reply, an I/O error."""
    BAD_INPUT = 2
    """Bad usage, or a config, target or audit file that cannot be accepted as input."""
    RISK_FAILED = 3
    """A pre-trade risk check failed; nothing was sent."""
    WINDOW_COMPLETED = 4
    """``run --cron``: this target window was already completed; nothing was done."""
    LATCH_SET = 5
    """The safety latch is set; unattended runs refuse to start until it is cleared."""
    MANUAL_REVIEW = 6
    """The state cannot be decided safely by the program; an operator must look."""
    KILL_INCOMPLETE = 7
    """The kill switch could not confirm that every order of ours is gone."""
    AUDIT_FAILURE = 8
    """The audit log could not be written or synced, is torn, or failed validation."""
    INTERRUPTED = 9
    """A signal stopped the run; its working orders were cancelled (graceful stop)."""
    QUOTES_UNUSABLE = 10
    """Quotes were stale, delayed, missing or too wide; the run stopped before any order."""
    ALREADY_RUNNING = 11
    """Another runner holds the run lock."""
    NOT_CONFIRMED = 12
    """The operator declined the confirmation, or no terminal was there to ask."""
    ORDERS_INCOMPLETE = 13
    """The run completed but some orders were rejected, cancelled unfilled or only partly filled."""
