"""Sanity of the broker's position report before anything is sized from it (pure).

The diff and the risk checks trust one row per symbol for the configured account. A row for
another account (a multi-account login) or two rows for one symbol would otherwise be added
together and size a sell beyond what the account holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from brokers.types import Position


def position_problems(positions: Sequence[Position], *, account_id: str) -> tuple[str, ...]:
    """Every reason the report cannot be used, in report order (empty when it is fine)."""
    problems: list[str] = []
    seen: set[str] = set()
    for p in positions:
        if p.account_id != account_id:
            problems.append(
                f"{p.symbol}: position reported for account {p.account_id!r}, "
                f"not {account_id!r}"
            )
        elif p.symbol in seen:
            problems.append(f"{p.symbol}: reported more than once")
        seen.add(p.symbol)
    return tuple(problems)
