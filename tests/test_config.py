"""Config parsing: defaults, strictness, the key path in every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebalancer.config import parse_config
from rebalancer.errors import ConfigError


def test_only_account_id_is_required(tmp_path: Path) -> None:
    """A config with just the account id parses, with defaults everywhere else."""
    cfg = parse_config({"account": {"id": "DU1"}}, base_dir=tmp_path)
    assert cfg.account.id == "DU1"
    assert cfg.execution.limit_offset_bps == 5
    assert cfg.audit.path == tmp_path.parent / "var" / "audit" / "audit.jsonl"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"account": {"id": "DU1"}, "execution": {"limit_offset_bps": 900}},
         "execution.limit_offset_bps: must be between 0 and 500, got 900"),
        ({}, "account.id: is required (the account this runtime trades)"),
        ({"account": {"id": " "}}, "account.id: must not be empty"),
        ({"account": {"id": "DU1", "typo": 1}}, "account.typo: unknown key (known keys: id, type)"),
        ({"account": {"id": "DU1"}, "risk": {"max_position_pct": float("nan")}},
         "risk.max_position_pct: must be a finite number, got nan"),
        ({"account": {"id": "DU1"}, "execution": {"max_in_flight": "5"}},
         "execution.max_in_flight: must be an integer, got a string"),
        ({"account": {"id": "DU1"}, "execution": {"max_in_flight": True}},
         "execution.max_in_flight: must be an integer, got a boolean"),
        ({"account": {"id": "DU1"}, "broker": {"kind": "paper"}},
         "broker.kind: must be one of 'sim', 'ib', got 'paper'"),
        ({"account": {"id": "DU1", "type": "cash"}, "risk": {"allow_short": True}},
         'risk.allow_short: must be false for a cash account (account.type = "cash")'),
    ],
)
def test_bad_config_names_key_and_reason(
    tmp_path: Path, data: dict[str, object], message: str
) -> None:
    """Each bad config is refused with the dotted key path and the exact reason."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path)
    assert str(info.value) == message


def test_config_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    """The hash is the same for equal settings and changes when a limit changes."""
    a = parse_config({"account": {"id": "DU1"}}, base_dir=tmp_path)
    b = parse_config({"account": {"id": "DU1"}}, base_dir=tmp_path)
    c = parse_config({"account": {"id": "DU1"}, "risk": {"min_trade_usd": 50}}, base_dir=tmp_path)
    assert a.config_hash == b.config_hash
    assert a.config_hash != c.config_hash
    assert len(a.config_hash) == 16
