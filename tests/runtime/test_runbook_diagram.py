"""The order-lifecycle runbook shows the diagram generated from the transition table."""

from __future__ import annotations

from pathlib import Path

from rebalancer.order_fsm import mermaid_diagram

RUNBOOK = Path(__file__).resolve().parents[2] / "runbooks" / "order-lifecycle.md"


def test_runbook_diagram_matches_the_table() -> None:
    """The mermaid block in the runbook is exactly what mermaid_diagram() prints today."""
    text = RUNBOOK.read_text(encoding="utf-8")
    block = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert block == mermaid_diagram().rstrip("\n")
