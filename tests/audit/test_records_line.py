"""Line checks shared with the validator: strict parsing, canonical and hash-verified lines."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from rebalancer.audit.records import GENESIS_HASH, encode_record, parse_strict, verify_line

TS = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def _line(payload: dict[str, object]) -> bytes:
    """One valid record line (without its newline) carrying ``payload``."""
    enc = encode_record(
        event="order_status", sequence_number=1, run_id="r", config_hash="c",
        prev_hash=GENESIS_HASH, ts=TS, payload=payload,
    )
    return enc.line[:-1]


def _rehash(raw: bytes, old: bytes, new: bytes) -> bytes:
    """``raw`` with ``old`` replaced by ``new`` and ``hash`` recomputed over the edited text."""
    record = parse_strict(raw)
    edited = raw.replace(old, new)
    assert edited != raw
    body = edited.replace(f',"hash":"{record["hash"]}"'.encode(), b"")
    digest = hashlib.sha256(body).hexdigest()
    return edited.replace(record["hash"].encode(), digest.encode())


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"a":{"b":1,"b":1}}', "duplicate key"),
        (b'{"a":NaN}', "NaN"),
        (b'{"a":-Infinity}', "Infinity"),
        (b"[1,2]", "not an object"),
        (b"7", "not an object"),
        (b'{"a":"\xff"}', "UTF-8"),
        (b'{"a":', "Expecting"),
    ],
)
def test_parse_strict_refuses_what_is_not_a_plain_object(raw: bytes, needle: str) -> None:
    """parse_strict raises ValueError naming duplicate keys, constants, non-objects, bad bytes."""
    with pytest.raises(ValueError, match=needle):
        parse_strict(raw)


def test_parse_strict_returns_the_object() -> None:
    """A plain JSON object line parses to the equal dict."""
    assert parse_strict(b'{"b":[1,2.5],"a":null}') == {"a": None, "b": [1, 2.5]}


def test_verify_line_accepts_a_written_line() -> None:
    """A line exactly as the writer encodes it verifies and returns its record."""
    raw = _line({"limit": "185.09", "ratio": 1e-05, "note": "é"})
    record = verify_line(raw)
    assert record is not None
    assert record["ratio"] == 1e-05
    assert record["note"] == "é"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"1e-05", b"1E-05"),  # same float, different spelling
        (b"0.1", b"0.10000000000000000001"),  # digit change that parses to the same float
        (b'"limit":"185.09",', b'"limit": "185.09",'),  # extra whitespace
        (b'"note":"\\u00e9"', '"note":"\u00e9"'.encode()),  # raw UTF-8, not an ASCII escape
    ],
)
def test_verify_line_refuses_non_canonical_spellings(old: bytes, new: bytes) -> None:
    """A line re-spelled to the same values is refused, keeping its hash or rehashed."""
    raw = _line({"limit": "185.09", "ratio": 1e-05, "step": 0.1, "note": "\u00e9"})
    assert old in raw
    same_hash = raw.replace(old, new)
    assert parse_strict(same_hash) == parse_strict(raw)  # the old value-level check passed this
    assert verify_line(same_hash) is None
    assert verify_line(_rehash(raw, old, new)) is None


def test_verify_line_refuses_a_duplicate_key_and_a_bad_hash() -> None:
    """A repeated key, a flipped hash digit and a missing hash each fail verification."""
    raw = _line({"filled": 3})
    twice = raw.replace(b'{"config_hash":"c"', b'{"config_hash":"c","config_hash":"c"')
    assert verify_line(twice) is None
    record = parse_strict(raw)
    flipped = "0" if record["hash"][0] != "0" else "1"
    bad_hash = (flipped + record["hash"][1:]).encode()
    assert verify_line(raw.replace(record["hash"].encode(), bad_hash)) is None
    assert verify_line(raw.replace(b'"filled":3', b'"filled":4')) is None
    assert verify_line(b'{"event":"x"}') is None
    assert verify_line(b"") is None
