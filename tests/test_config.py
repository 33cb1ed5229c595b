"""Config parsing: defaults, strictness, the key path in every error."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from rebalancer.config import load_config, parse_config
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"x = \n", "not valid TOML: Invalid value (at line 1, column 5)"),
        (b"\xff", "not valid UTF-8 at byte 0"),
        (b'[account]\nid = "DU1"\n[risk]\nmax_leverage = 0.5\n',
         "risk.max_leverage: must be between 1 and 10, got 0.5"),
        (b'[account]\nid = "DU1"\n[risk]\nmax_position_pct = 0\n',
         "risk.max_position_pct: must be greater than 0 and at most 1, got 0"),
        (b'[account]\nid = "DU1"\n[risk]\nmin_trade_usd = -1\n',
         "risk.min_trade_usd: must be at least 0, got -1"),
        (b'[account]\nid = "DU1"\n[risk]\nmax_leverage = inf\n',
         "risk.max_leverage: must be a finite number, got inf"),
        (b'[account]\nid = "DU1"\ntype = "margin"\n[risk]\nallow_short = "yes"\n',
         "risk.allow_short: must be true or false, got a string"),
        (b'[account]\nid = "DU1"\n[quotes]\non_unusable = "ignore"\n',
         "quotes.on_unusable: must be one of 'stop', 'skip', got 'ignore'"),
        (b'[account]\nid = "DU1"\n[schedule]\nwindow_period = "week"\n',
         "schedule.window_period: must be one of 'none', 'day', got 'week'"),
        (b'[account]\nid = "DU1"\n[connection]\nport = 70000\n',
         "connection.port: must be between 1 and 65535, got 70000"),
        (b'[account]\nid = "DU1"\n[audit]\nfile = "../x.jsonl"\n',
         "audit.file: must be a plain file name, not a path"),
        (b'[account]\nid = "DU1"\n[risk]\nmax_leverage = 2\n',
         'risk.max_leverage: must be 1 for a cash account (account.type = "cash"), got 2'),
        (b'[account]\nid = "DU1"\n[execution]\nmax_orders_per_run = 0\n',
         "execution.max_orders_per_run: must be between 1 and 10000, got 0"),
        (b'[account]\nid = "DU1"\n[nonsense]\n',
         "nonsense: unknown key (known keys: account, audit, broker, connection, cost, "
         "execution, kill, logging, quotes, risk, schedule)"),
    ],
)
def test_bad_config_file_names_file_key_and_reason(
    tmp_path: Path, text: bytes, message: str
) -> None:
    """Each bad config file is refused with the file, the key path and the exact reason."""
    from rebalancer.config import load_config

    path = tmp_path / "bad.toml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_oversize_config_file_is_refused(tmp_path: Path) -> None:
    """A config over 1 MiB is refused without being parsed."""
    from rebalancer.config import MAX_CONFIG_BYTES, load_config

    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: larger than {MAX_CONFIG_BYTES} bytes"


def test_shipped_configs_are_valid() -> None:
    """Every TOML file under configs/ parses."""
    from rebalancer.config import load_config

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
    assert configs
    for path in configs:
        assert load_config(path).account.id


def test_misspelt_section_is_an_unknown_key(tmp_path: Path) -> None:
    """A typo in a section name is reported as that unknown key, not as a missing account."""
    with pytest.raises(ConfigError) as info:
        parse_config({"acount": {"id": "DU1"}}, base_dir=tmp_path)
    assert str(info.value).startswith("acount: unknown key (known keys: account, audit, broker,")
    assert "source" not in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[account]\nid = "DU1"\n[audit]\ndir = "~nosuchuser_xyz/audit"\n',
         "audit.dir: cannot expand the home directory in '~nosuchuser_xyz/audit'"),
        ('[account]\nid = "DU1"\n[risk]\nmin_trade_usd = 5000\nmax_trade_usd = 1000\n',
         "risk.min_trade_usd: must not exceed risk.max_trade_usd (1000), got 5000"),
        ('[account]\nid = "DU1\\n"\n',
         "account.id: must not contain control characters (found '\\n')"),
    ],
)
def test_more_bad_config_files(tmp_path: Path, body: str, message: str) -> None:
    """Home-directory typos, inverted trade limits and control characters are refused cleanly."""
    path = tmp_path / "c.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_toml_decimals_are_read_exactly(tmp_path: Path) -> None:
    """A TOML float is read as the exact decimal written, not through a binary float."""
    path = tmp_path / "c.toml"
    path.write_text('[account]\nid = "DU1"\n[risk]\nmin_trade_usd = 100.000000000000000001\n')
    assert load_config(path).risk.min_trade_usd == Decimal("100.000000000000000001")
