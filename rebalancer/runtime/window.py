"""Cron idempotency: has this rebalance window already been completed in the audit log?"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def completed_window_sequence(audit_path: Path, window_key: str) -> int | None:
    """The sequence number of the last ``cron_completed`` record for ``window_key``, if any.

    Lines that are not JSON objects are skipped here: the audit writer refuses to open a torn
    or corrupt log before this is ever asked, and the validator reports damage separately.
    """
    found: int | None = None
    try:
        fh = audit_path.open("rb")
    except FileNotFoundError:
        return None
    with fh:
        for raw in fh:
            if b"cron_completed" not in raw:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if (
                isinstance(record, dict)
                and record.get("event") == "cron_completed"
                and record.get("window_id") == window_key
            ):
                seq = record.get("sequence_number")
                found = seq if isinstance(seq, int) else -1
    return found
