"""The README's exit-code table stays in step with ``rebalancer.exit_codes``."""

from __future__ import annotations

import re
from pathlib import Path

from rebalancer.exit_codes import ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_exit_code_with_its_name() -> None:
    """Each ExitCode appears once in the README table as `| value | NAME |`."""
    rows = re.findall(r"^\| (\d+) \| ([A-Z_]+) \|", README.read_text(), flags=re.MULTILINE)
    assert [(int(v), n) for v, n in rows] == [(int(c), c.name) for c in ExitCode]
