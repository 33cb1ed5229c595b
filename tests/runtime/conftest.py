"""Fixtures for end-to-end runs on the simulated broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runenv import Env


@pytest.fixture(name="env")
def _env(tmp_path: Path) -> Env:
    return Env(tmp_path).write()


@pytest.fixture(name="run_json")
def _run_json(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, dict[str, Any]]]:
    def run(env: Env, *args: str) -> tuple[int, dict[str, Any]]:
        code = env.run(*args, "--json")
        out = capsys.readouterr().out
        return code, json.loads(out)

    return run
