"""The demo market and demo account of the simulated broker (pinned so examples agree).

Fourteen symbols priced between $20 and $1,000, and an account of about $250,000 holding ten of
them plus cash, so that an example target of 6-10 symbols produces a handful of orders.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

DEMO_UNIVERSE: Final[dict[str, tuple[Decimal, int]]] = {
    # symbol: (base mid price, spread in basis points)
    "AAPL": (Decimal("190.00"), 4),
    "MSFT": (Decimal("420.00"), 4),
    "AMZN": (Decimal("180.00"), 4),
    "GOOGL": (Decimal("170.00"), 4),
    "META": (Decimal("500.00"), 4),
    "NVDA": (Decimal("120.00"), 4),
    "JPM": (Decimal("200.00"), 4),
    "XOM": (Decimal("110.00"), 4),
    "JNJ": (Decimal("155.00"), 4),
    "PG": (Decimal("165.00"), 4),
    "SPY": (Decimal("560.00"), 2),
    "TLT": (Decimal("92.00"), 4),
    "GLD": (Decimal("240.00"), 4),
    "VTI": (Decimal("270.00"), 2),
}

DEMO_STARTING_CASH: Final = Decimal("40000")

DEMO_HOLDINGS: Final[tuple[tuple[str, int, Decimal], ...]] = (
    # symbol, shares, average cost: about $21,000 each, $210,000 in all
    ("AAPL", 110, Decimal("172.40")),
    ("MSFT", 50, Decimal("385.10")),
    ("AMZN", 120, Decimal("151.25")),
    ("GOOGL", 125, Decimal("139.80")),
    ("META", 42, Decimal("455.00")),
    ("NVDA", 175, Decimal("96.30")),
    ("JPM", 105, Decimal("181.60")),
    ("XOM", 190, Decimal("112.75")),
    ("JNJ", 135, Decimal("158.90")),
    ("SPY", 38, Decimal("521.00")),
)
