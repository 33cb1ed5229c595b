"""The pinned record format: canonical bytes, header keys, hash chain helpers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum

import pytest

from brokers.types import Side
from rebalancer.audit.errors import AuditPayloadError
from rebalancer.audit.records import (
    GENESIS_HASH,
    HEADER_KEYS,
    canonical_bytes,
    encode_record,
    format_ts,
    parse_ts,
    record_hash,
    to_json_value,
    verify_record_hash,
)

TS = datetime(2026, 12, 4, 20, 1, 2, 345, tzinfo=UTC)


def test_canonical_bytes_match_the_pinned_json_dumps() -> None:
    """canonical_bytes equals json.dumps with sorted keys, no spaces, ASCII, and no newline."""
    record = {"b": 1, "a": "é\n\u2028", "c": [1, {"z": None, "y": True}]}
    expected = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()
    assert canonical_bytes(record) == expected
    assert b"\n" not in canonical_bytes(record)


def test_format_ts_is_utc_with_six_digits_and_z() -> None:
    """A non-UTC aware time is converted to UTC and printed with microseconds and Z."""
    local = datetime(2026, 12, 4, 22, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert format_ts(local) == "2026-12-04T20:01:02.000000Z"
    assert format_ts(TS) == "2026-12-04T20:01:02.000345Z"
    assert parse_ts(format_ts(TS)) == TS


def test_format_ts_refuses_naive_datetimes() -> None:
    """A naive datetime has no defined instant and is refused."""
    with pytest.raises(ValueError, match="naive"):
        format_ts(datetime(2026, 1, 1))  # noqa: DTZ001


class _Colour(Enum):
    RED = "red"


@dataclass(frozen=True)
class _Leg:
    symbol: str
    limit: Decimal
    side: Side


def test_to_json_value_converts_money_times_enums_tuples_and_dataclasses() -> None:
    """Decimals become strings, times RFC 3339, enums values, tuples lists, dataclasses dicts."""
    value = {
        "limit": Decimal("185.09"),
        "big": Decimal("1E+2"),
        "at": TS,
        "colour": _Colour.RED,
        "side": Side.BUY,
        "legs": (_Leg(symbol="AAPL", limit=Decimal("1.50"), side=Side.SELL),),
    }
    assert to_json_value(value) == {
        "limit": "185.09",
        "big": "100",
        "at": "2026-12-04T20:01:02.000345Z",
        "colour": "red",
        "side": "BUY",
        "legs": [{"symbol": "AAPL", "limit": "1.50", "side": "SELL"}],
    }


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), Decimal("NaN"), object(), {1: "x"}, b"raw", datetime(2026, 1, 1)],  # noqa: DTZ001
)
def test_to_json_value_refuses_values_that_are_not_json(bad: object) -> None:
    """NaN, infinities, naive times, bytes, arbitrary objects and non-str keys are refused."""
    with pytest.raises(AuditPayloadError):
        to_json_value({"x": bad})


def test_encode_record_builds_header_payload_and_hash() -> None:
    """The record holds every header key, the payload at top level, and a hash over the rest."""
    enc = encode_record(
        event="order_intent",
        sequence_number=1,
        run_id="r1",
        config_hash="c0ffee",
        prev_hash=GENESIS_HASH,
        ts=TS,
        payload={"symbol": "AAPL", "limit": Decimal("185.09"), "shares": 10},
    )
    rec = dict(enc.record)
    assert set(HEADER_KEYS) <= set(rec)
    assert rec["limit"] == "185.09"
    assert rec["ts"] == "2026-12-04T20:01:02.000345Z"
    assert enc.line.endswith(b"\n")
    assert enc.line.count(b"\n") == 1
    assert json.loads(enc.line) == rec
    without = {k: v for k, v in rec.items() if k != "hash"}
    assert rec["hash"] == hashlib.sha256(canonical_bytes(without)).hexdigest() == enc.hash
    assert record_hash(without) == enc.hash
    assert verify_record_hash(json.loads(enc.line))


def test_verify_record_hash_detects_any_change() -> None:
    """Changing one payload value or dropping the hash makes verification fail."""
    enc = encode_record(
        event="x", sequence_number=3, run_id="r", config_hash="c", prev_hash=GENESIS_HASH, ts=TS,
        payload={"shares": 10},
    )
    rec = json.loads(enc.line)
    rec["shares"] = 11
    assert not verify_record_hash(rec)
    del rec["hash"]
    assert not verify_record_hash(rec)


@pytest.mark.parametrize("key", sorted(HEADER_KEYS))
def test_payload_may_not_shadow_header_keys(key: str) -> None:
    """Every header key is reserved; a payload using it is refused."""
    with pytest.raises(AuditPayloadError, match=key):
        encode_record(
            event="x", sequence_number=1, run_id="r", config_hash="c", prev_hash=GENESIS_HASH,
            ts=TS, payload={key: 1},
        )


def test_encode_record_refuses_bad_sequence_numbers_and_empty_event() -> None:
    """Sequence numbers start at 1 and are ints; the event name is non-empty."""
    common = {"run_id": "r", "config_hash": "c", "prev_hash": GENESIS_HASH, "ts": TS}
    with pytest.raises(AuditPayloadError):
        encode_record(event="x", sequence_number=0, **common)  # type: ignore[arg-type]
    with pytest.raises(AuditPayloadError):
        encode_record(event="", sequence_number=1, **common)  # type: ignore[arg-type]
