"""Target files: strict parsing, the exact message of every refusal, the window identity."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rebalancer.config import RiskConfig, WindowPeriod
from rebalancer.errors import TargetError
from rebalancer.exit_codes import ExitCode
from rebalancer.model import Target, TargetConstraints, TargetWeight
from rebalancer.target import (
    MAX_TARGET_BYTES,
    compute_window_id,
    effective_risk,
    load_target,
    parse_target_bytes,
    window_key,
)

REPO = Path(__file__).resolve().parents[2]
SYMBOL_RULE = (
    "(1-12 characters of A-Z, 0-9, and single '.', '-' or spaces between them, "
    "starting and ending with a letter or digit)"
)
ONE = '"targets": [{"symbol": "AAPL", "weight": 0.1}]'


def _doc(body: str) -> bytes:
    return ("{" + body + "}").encode()


def test_example_target_is_valid_under_the_paper_config() -> None:
    """The shipped example target parses, stays long-only and within 25% per symbol."""
    from rebalancer.config import load_config

    cfg = load_config(REPO / "configs" / "ib-paper.toml")
    target = load_target(REPO / "configs" / "targets" / "example.json", risk=cfg.risk)
    assert target.metadata_id == "example-balanced"
    assert 6 <= len(target.targets) <= 10
    assert all(Decimal(0) < t.weight <= Decimal("0.25") for t in target.targets)
    assert sum(t.weight for t in target.targets) <= 1
    assert target.timestamp == datetime(2026, 12, 4, 14, 0, tzinfo=UTC)


def test_valid_target_fields() -> None:
    """Every field of a full target is read, numbers as exact Decimals, time in UTC."""
    data = _doc(
        '"timestamp": "2026-12-04T10:00:00.1234567+01:00", "metadata": {"id": "m-1"}, '
        '"targets": [{"symbol": "BRK B", "weight": 0.25}, {"symbol": "SPY", "weight": -0.1}], '
        '"constraints": {"max_position_pct": 0.3, "max_leverage": null, "min_trade_usd": 50}'
    )
    target = parse_target_bytes(data)
    assert target.targets == (
        TargetWeight(symbol="BRK B", weight=Decimal("0.25")),
        TargetWeight(symbol="SPY", weight=Decimal("-0.1")),
    )
    assert target.metadata_id == "m-1"
    assert target.timestamp == datetime(2026, 12, 4, 9, 0, 0, 123456, tzinfo=UTC)
    assert target.constraints == TargetConstraints(
        max_position_pct=Decimal("0.3"), min_trade_usd=Decimal("50")
    )
    assert target.source is None


def test_weights_summing_to_exactly_one_are_accepted() -> None:
    """Ten weights of 0.1 sum to exactly 1 in Decimal arithmetic (no float error)."""
    lines = ", ".join(f'{{"symbol": "S{i}", "weight": 0.1}}' for i in range(10))
    target = parse_target_bytes(_doc(f'"targets": [{lines}]'))
    assert sum(t.weight for t in target.targets) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not valid UTF-8 at byte 0"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": NaN}]'),
         "NaN is not allowed (numbers must be finite)"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": Infinity}]'),
         "Infinity is not allowed (numbers must be finite)"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": -Infinity}]'),
         "-Infinity is not allowed (numbers must be finite)"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 1e400}]'),
         "number 1e400 is out of range (it overflows to infinity)"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 1e-400}]'),
         "number 1e-400 is out of range (it underflows to zero)"),
        (_doc('"targets": [{"symbol": "A", "weight": 0.5}, {"symbol": "B", "weight": 0.5}, '
              '{"symbol": "C", "weight": 1e-30}]'),
         "targets: the positive weights sum to 1.000000000000000000000000000001, above 1"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 0.123456789012345678901}]'),
         "number 0.123456789012345678901 has more than 20 significant digits"),
        (_doc('"targets": [], "targets": []'), 'duplicate key "targets"'),
        (_doc('"targets": [{"symbol": "AAPL", "symbol": "MSFT", "weight": 0.1}]'),
         'duplicate key "symbol"'),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 0.1}, {"symbol": "AAPL", "weight": 0.2}]'),
         "targets[1].symbol: duplicate symbol AAPL"),
        (_doc(ONE + ', "extra": 1'),
         "extra: unknown key (known keys: constraints, metadata, targets, timestamp)"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 0.1, "side": "buy"}]'),
         "targets[0].side: unknown key (known keys: symbol, weight)"),
        (_doc('"metadata": {"id": "x", "owner": "me"}, ' + ONE),
         "metadata.owner: unknown key (known keys: id)"),
        (_doc('"constraints": {"max drawdown": 0.1}, ' + ONE),
         'constraints."max drawdown": unknown key (known keys: max_leverage, '
         "max_position_pct, max_trade_usd, min_trade_usd)"),
        (_doc('"targets": []'), "targets: is empty (at least one symbol is needed)"),
        (b"{}", "targets: is required"),
        (b"[]", "the top level must be a JSON object, got an array"),
        (_doc('"targets": {}'), "targets: must be an array, got an object"),
        (_doc('"targets": [1]'), "targets[0]: must be an object, got a number"),
        (_doc('"targets": [{"symbol": "AAPL"}]'), "targets[0].weight: is required"),
        (_doc('"targets": [{"symbol": "", "weight": 0.1}]'),
         f'targets[0].symbol: "" is not a valid symbol {SYMBOL_RULE}'),
        (_doc('"targets": [{"symbol": "aapl", "weight": 0.1}]'),
         f'targets[0].symbol: "aapl" is not a valid symbol {SYMBOL_RULE}'),
        (_doc('"targets": [{"symbol": " AAPL", "weight": 0.1}]'),
         f'targets[0].symbol: " AAPL" is not a valid symbol {SYMBOL_RULE}'),
        (_doc('"targets": [{"symbol": "ABCDEFGHIJKLM", "weight": 0.1}]'),
         f'targets[0].symbol: "ABCDEFGHIJKLM" is not a valid symbol {SYMBOL_RULE}'),
        (_doc('"targets": [{"symbol": 7, "weight": 0.1}]'),
         "targets[0].symbol: must be a string, got a number"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": "0.1"}]'),
         "targets[0].weight: must be a number, got a string"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": true}]'),
         "targets[0].weight: must be a number, got a boolean"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 0}]'),
         "targets[0].weight: weight for AAPL is zero (omit the symbol; a held symbol that is "
         "not in the target is closed)"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 1.5}]'),
         "targets[0].weight: |1.5| for AAPL is above 1"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": -1.01}]'),
         "targets[0].weight: |-1.01| for AAPL is above 1"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 0.6}, '
              '{"symbol": "MSFT", "weight": 0.4000000001}]'),
         "targets: the positive weights sum to 1.0000000001, above 1"),
        (_doc('"timestamp": "yesterday", ' + ONE),
         'timestamp: "yesterday" is not RFC 3339 (e.g. 2026-12-04T14:30:00Z, '
         "with a time zone offset)"),
        (_doc('"timestamp": "2026-12-04T14:00:00", ' + ONE),
         'timestamp: "2026-12-04T14:00:00" is not RFC 3339 (e.g. 2026-12-04T14:30:00Z, '
         "with a time zone offset)"),
        (_doc('"timestamp": "2026-02-30T14:00:00Z", ' + ONE),
         'timestamp: "2026-02-30T14:00:00Z" is not a valid time (day is out of range for month)'),
        (_doc('"timestamp": 5, ' + ONE), "timestamp: must be an RFC 3339 string, got a number"),
        (_doc('"metadata": {"id": ""}, ' + ONE),
         "metadata.id: must not be empty (omit it instead)"),
        (_doc('"metadata": {"id": 5}, ' + ONE), "metadata.id: must be a string, got a number"),
        (_doc('"metadata": {"id": "a\\nb"}, ' + ONE),
         "metadata.id: must be printable text without leading or trailing spaces"),
        (_doc('"metadata": [], ' + ONE), "metadata: must be an object, got an array"),
        (_doc('"constraints": {"max_position_pct": 1.5}, ' + ONE),
         "constraints.max_position_pct: must be greater than 0 and at most 1, got 1.5"),
        (_doc('"constraints": {"max_leverage": 0}, ' + ONE),
         "constraints.max_leverage: must be greater than 0, got 0"),
        (_doc('"constraints": {"min_trade_usd": -1}, ' + ONE),
         "constraints.min_trade_usd: must be at least 0, got -1"),
        (_doc('"constraints": {"max_trade_usd": "big"}, ' + ONE),
         "constraints.max_trade_usd: must be a number or null, got a string"),
        (_doc('"constraints": {"min_trade_usd": 500, "max_trade_usd": 100}, ' + ONE),
         "constraints: min_trade_usd 500 is above max_trade_usd 100 (no trade could pass)"),
        (_doc('"constraints": [], ' + ONE), "constraints: must be an object or null, got an array"),
        (_doc('"constraints": {"max_position_pct": 0.1}, '
              '"targets": [{"symbol": "AAPL", "weight": 0.2}]'),
         "targets: weight 0.2 for AAPL is above constraints.max_position_pct 0.1"),
        (_doc('"constraints": {"max_leverage": 0.5}, "targets": [{"symbol": "AAPL", '
              '"weight": 0.3}, {"symbol": "MSFT", "weight": 0.3}]'),
         "targets: the gross weight 0.6 is above constraints.max_leverage 0.5"),
        (_doc('"targets": [{"symbol": "AAPL", "weight": 0.1}'),
         "not valid JSON: Expecting ',' delimiter at line 1 column 47"),
        (_doc(ONE) + b" x", "not valid JSON: Extra data at line 1 column 50"),
        (b"\xef\xbb\xbf" + _doc(ONE),
         "not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig) at line 1 column 1"),
        (b"[" * 9 + b"]" * 9, "nested deeper than 8 levels"),
        (b"[" * 200_000, "nested deeper than 8 levels"),
        (b" " * (MAX_TARGET_BYTES + 1), f"larger than {MAX_TARGET_BYTES} bytes (1 MiB)"),
    ],
)
def test_bad_target_is_refused_with_exact_message(data: bytes, message: str) -> None:
    """Each bad target is refused with one line: the source and the exact reason."""
    with pytest.raises(TargetError) as info:
        parse_target_bytes(data)
    assert str(info.value) == f"target: {message}"
    assert info.value.exit_code is ExitCode.BAD_INPUT


SHORTS = replace(
    RiskConfig(), allow_short=True, max_leverage=Decimal("1.2"), max_short_pct=Decimal("0.3")
)


@pytest.mark.parametrize(
    ("risk", "data", "message"),
    [
        (RiskConfig(), _doc('"targets": [{"symbol": "AAPL", "weight": -0.1}]'),
         "targets: negative weight -0.1 for AAPL but the config does not allow short selling "
         "(risk.allow_short = false)"),
        (RiskConfig(), _doc('"targets": [{"symbol": "AAPL", "weight": 0.3}]'),
         "targets: weight 0.3 for AAPL is above risk.max_position_pct 0.25"),
        (RiskConfig(), _doc('"constraints": {"max_position_pct": 0.5}, ' + ONE),
         "constraints.max_position_pct: 0.5 loosens the config's risk.max_position_pct 0.25 "
         "(target constraints may only tighten the config's limits)"),
        (RiskConfig(), _doc('"constraints": {"max_leverage": 2}, ' + ONE),
         "constraints.max_leverage: 2 loosens the config's risk.max_leverage 1.0 "
         "(target constraints may only tighten the config's limits)"),
        (RiskConfig(), _doc('"constraints": {"max_trade_usd": 1000000}, ' + ONE),
         "constraints.max_trade_usd: 1000000 loosens the config's risk.max_trade_usd 100000 "
         "(target constraints may only tighten the config's limits)"),
        (RiskConfig(), _doc('"constraints": {"min_trade_usd": 10}, ' + ONE),
         "constraints.min_trade_usd: 10 loosens the config's risk.min_trade_usd 100 "
         "(target constraints may only tighten the config's limits)"),
        (RiskConfig(), _doc('"constraints": {"min_trade_usd": 200000}, ' + ONE),
         "constraints: min_trade_usd 200000 is above max_trade_usd 100000 (no trade could pass)"),
        (SHORTS, _doc('"targets": [{"symbol": "SPY", "weight": -0.4}]'),
         "targets: the short weights sum to 0.4, above risk.max_short_pct 0.3"),
        (SHORTS, _doc(
            '"targets": [{"symbol": "SPY", "weight": -0.25}, {"symbol": "A", "weight": 0.25}, '
            '{"symbol": "B", "weight": 0.25}, {"symbol": "C", "weight": 0.25}, '
            '{"symbol": "D", "weight": 0.25}]'),
         "targets: the gross weight 1.25 is above risk.max_leverage 1.2"),
    ],
)
def test_target_breaking_config_limits_is_refused(
    risk: RiskConfig, data: bytes, message: str
) -> None:
    """With the config's [risk] given, each target breaking a limit is refused exactly."""
    with pytest.raises(TargetError) as info:
        parse_target_bytes(data, risk=risk)
    assert str(info.value) == f"target: {message}"


def test_negative_weights_pass_when_shorting_is_allowed() -> None:
    """A short line within max_short_pct and the leverage limit is accepted."""
    data = _doc('"targets": [{"symbol": "SPY", "weight": -0.2}, {"symbol": "A", "weight": 0.2}]')
    target = parse_target_bytes(data, risk=SHORTS)
    assert [t.weight for t in target.targets] == [Decimal("-0.2"), Decimal("0.2")]


def test_tightening_constraints_are_accepted() -> None:
    """Constraints tighter than the config pass and become the effective limits."""
    data = _doc(
        '"constraints": {"max_position_pct": 0.2, "max_leverage": 0.9, "min_trade_usd": 250, '
        '"max_trade_usd": 5000}, ' + ONE
    )
    target = parse_target_bytes(data, risk=RiskConfig())
    limits = effective_risk(RiskConfig(), target.constraints)
    assert limits.max_position_pct == Decimal("0.2")
    assert limits.max_leverage == Decimal("0.9")
    assert limits.min_trade_usd == Decimal("250")
    assert limits.max_trade_usd == Decimal("5000")


def test_effective_risk_keeps_config_where_no_constraint() -> None:
    """Without constraints the effective limits are the config's own."""
    assert effective_risk(RiskConfig(), TargetConstraints()) == RiskConfig()


def test_effective_risk_takes_the_tighter_of_each() -> None:
    """A looser constraint (unchecked input) never loosens the effective limit."""
    loose = TargetConstraints(
        max_position_pct=Decimal("0.9"), max_leverage=Decimal("5"),
        min_trade_usd=Decimal("1"), max_trade_usd=Decimal("1e9"),
    )
    assert effective_risk(RiskConfig(), loose) == RiskConfig()


def test_load_target_names_the_file(tmp_path: Path) -> None:
    """Errors from a file carry its path; a missing file is a TargetError too."""
    path = tmp_path / "t.json"
    path.write_bytes(b'{"targets": []}')
    with pytest.raises(TargetError) as info:
        load_target(path)
    assert str(info.value) == f"{path}: targets: is empty (at least one symbol is needed)"
    with pytest.raises(TargetError) as missing:
        load_target(tmp_path / "nope.json")
    assert str(missing.value) == f"{tmp_path / 'nope.json'}: cannot read: No such file or directory"


def test_load_target_refuses_oversize_file(tmp_path: Path) -> None:
    """A file over 1 MiB is refused without reading it all."""
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (MAX_TARGET_BYTES + 10))
    with pytest.raises(TargetError) as info:
        load_target(path)
    assert str(info.value) == f"{path}: larger than {MAX_TARGET_BYTES} bytes (1 MiB)"


def test_load_target_records_source(tmp_path: Path) -> None:
    """A loaded target remembers its file."""
    path = tmp_path / "t.json"
    path.write_bytes(_doc(ONE))
    assert load_target(path).source == path


# --- window identity -----------------------------------------------------------------------

AAPL_MSFT = '"metadata": {"id": "test-123"}, "targets": [{"symbol": "AAPL", "weight": 0.5}, ' \
    '{"symbol": "MSFT", "weight": 0.5}]'


def test_window_id_vector_is_stable() -> None:
    """The window id of a fixed target is a pinned SHA-256 (same in every process/version)."""
    target = parse_target_bytes(_doc(AAPL_MSFT))
    assert target.window_id == "cb5f0ed71a7d0a9ac48bd064f7128fe91a52a026719c4959312f258a1f4d02f2"


def test_window_id_ignores_order_spelling_and_timestamp() -> None:
    """Re-ordered lines, 0.50 for 0.5 and a new timestamp keep the same window."""
    other = _doc(
        '"timestamp": "2027-01-01T00:00:00Z", "metadata": {"id": "test-123"}, '
        '"targets": [{"symbol": "MSFT", "weight": 0.50}, {"symbol": "AAPL", "weight": 5e-1}]'
    )
    assert parse_target_bytes(other).window_id == parse_target_bytes(_doc(AAPL_MSFT)).window_id


@pytest.mark.parametrize(
    "changed",
    [
        '"metadata": {"id": "test-124"}, "targets": [{"symbol": "AAPL", "weight": 0.5}, '
        '{"symbol": "MSFT", "weight": 0.5}]',
        '"targets": [{"symbol": "AAPL", "weight": 0.5}, {"symbol": "MSFT", "weight": 0.5}]',
        '"metadata": {"id": "test-123"}, "targets": [{"symbol": "AAPL", "weight": 0.5}, '
        '{"symbol": "MSFT", "weight": 0.4}]',
        '"metadata": {"id": "test-123"}, "targets": [{"symbol": "AAPL", "weight": 0.5}, '
        '{"symbol": "MSFT", "weight": 0.5}], "constraints": {"min_trade_usd": 500}',
    ],
)
def test_window_id_changes_with_scope_weights_and_constraints(changed: str) -> None:
    """A different scope, weight or constraint is a different window."""
    assert parse_target_bytes(_doc(changed)).window_id != parse_target_bytes(
        _doc(AAPL_MSFT)
    ).window_id


def test_window_key_per_period() -> None:
    """NONE keys on content alone; DAY appends the UTC date of 'now'."""
    target = parse_target_bytes(_doc(AAPL_MSFT))
    late = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    assert window_key(target, WindowPeriod.NONE, late) == target.window_id
    assert window_key(target, WindowPeriod.DAY, late) == f"{target.window_id}:2026-12-04"
    with pytest.raises(ValueError, match="timezone-aware"):
        window_key(target, WindowPeriod.DAY, datetime(2026, 12, 4))  # noqa: DTZ001


def test_compute_window_id_treats_negative_zero_constraint_as_zero() -> None:
    """-0 and 0 constraints hash alike (canonical decimal form)."""
    lines = (TargetWeight(symbol="A", weight=Decimal("0.1")),)
    a = compute_window_id("", lines, TargetConstraints(min_trade_usd=Decimal("-0.0")))
    b = compute_window_id("", lines, TargetConstraints(min_trade_usd=Decimal("0")))
    assert a == b


# --- properties ----------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_symbols = st.sampled_from(["AAPL", "MSFT", "BRK B", "SPY", "aapl", "", "X" * 13]) | st.text(
    max_size=14
)
_weights = st.decimals(min_value=-2, max_value=2, places=4) | st.floats() | st.integers(-2, 2)
_lines = st.lists(
    st.fixed_dictionaries({"symbol": _symbols, "weight": _weights}), min_size=0, max_size=6
)
_targetish = st.fixed_dictionaries(
    {"targets": _lines},
    optional={
        "metadata": st.fixed_dictionaries({}, optional={"id": st.text(max_size=10)}),
        "constraints": st.none() | st.dictionaries(
            st.sampled_from(["max_position_pct", "max_leverage", "min_trade_usd", "max_trade_usd"]),
            st.none() | st.decimals(min_value=-1, max_value=10**6, places=2),
        ),
        "timestamp": st.sampled_from(["2026-12-04T14:00:00Z", "x", "2026-13-01T00:00:00Z"]),
    },
)


def _check_outcome(data: bytes, risk: RiskConfig | None) -> None:
    try:
        target = parse_target_bytes(data, risk=risk)
    except TargetError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert "\n" not in message
        return
    assert isinstance(target, Target)
    assert target.targets
    assert sum(t.weight for t in target.targets if t.weight > 0) <= 1
    assert len({t.symbol for t in target.targets}) == len(target.targets)
    assert len(target.window_id) == 64


@settings(max_examples=300, deadline=None)
@given(doc=_json, risk=st.sampled_from([None, RiskConfig(), SHORTS]))
def test_any_json_gives_target_or_target_error(doc: object, risk: RiskConfig | None) -> None:
    """For any JSON document the parser returns a valid Target or raises TargetError."""
    _check_outcome(json.dumps(doc).encode(), risk)


@settings(max_examples=300, deadline=None)
@given(doc=_targetish, risk=st.sampled_from([None, RiskConfig(), SHORTS]))
def test_any_target_shaped_json_gives_target_or_target_error(
    doc: dict[str, object], risk: RiskConfig | None
) -> None:
    """Near-valid target documents also end in a valid Target or a TargetError only."""
    _check_outcome(json.dumps(doc, default=float).encode(), risk)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_give_target_or_target_error(data: bytes) -> None:
    """Arbitrary bytes never raise anything but TargetError."""
    _check_outcome(data, None)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ("BRK B", "BRK.B", "targets[1].symbol: same stock as BRK B: BRK.B"),
        ("BRK.B", "BRK-B", "targets[1].symbol: same stock as BRK.B: BRK-B"),
        ("AAPL", "AAPL", "targets[1].symbol: duplicate symbol AAPL"),
    ],
)
def test_two_spellings_of_one_stock_are_refused(first: str, second: str, message: str) -> None:
    """Class-share spellings that a broker maps to one stock count as the same symbol."""
    doc = {"targets": [{"symbol": first, "weight": 0.1}, {"symbol": second, "weight": 0.1}]}
    with pytest.raises(TargetError) as info:
        parse_target_bytes(json.dumps(doc).encode())
    assert str(info.value) == f"target: {message}"


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("0.10000000000000000000000000000000001",
         "number 0.10000000000000000000000000000000001 has more than 20 significant digits"),
        ("1.79769313486231570000000000000001e308",
         "number 1.79769313486231570000000000000001e308 is out of range "
         "(it overflows to infinity)"),
    ],
)
def test_numbers_are_checked_without_context_rounding(number: str, message: str) -> None:
    """Digit counts and range are checked exactly, beyond Decimal's default 28 digits."""
    raw = ('{"targets": [{"symbol": "AAPL", "weight": ' + number + "}]}").encode()
    with pytest.raises(TargetError) as info:
        parse_target_bytes(raw)
    assert str(info.value) == f"target: {message}"
