"""The target file: strict JSON parsing, validation, and the rebalance window's identity.

Schema (unknown keys are refused at every level)::

    {
      "timestamp":   "<RFC 3339 with offset>",            optional, normalised to UTC
      "metadata":    {"id": "<scope id>"},                 optional
      "targets":     [{"symbol": "AAPL", "weight": 0.2}],  required, non-empty
      "constraints": {"max_position_pct": n|null, "max_leverage": n|null,
                      "min_trade_usd": n|null, "max_trade_usd": n|null}   optional (or null)
    }

Rules, checked in this order (the first failure is reported, as one line naming the file):

1. the file is at most 1 MiB, valid UTF-8, nested at most 8 levels deep, valid JSON with no
   duplicate key in any object, no ``NaN``/``Infinity`` and no number beyond the range of a
   double or with more than 20 significant digits (numbers are read as ``Decimal``);
2. the shape: known keys only, the right types;
3. each symbol is 1-12 characters of ``A-Z``, ``0-9``, ``.``, ``-`` and inner spaces, starting
   and ending with a letter or digit (``BRK B`` is IB's spelling); no symbol twice;
4. each weight is a number with ``0 < |weight| <= 1``. A zero weight is refused: omit the
   symbol instead (a held symbol that is not in the target is closed in full);
5. the sum of the positive weights is at most 1 (exact ``Decimal`` arithmetic, no epsilon);
6. constraints are in range; with a config's ``[risk]`` given, a constraint may only tighten
   it, never loosen it;
7. with ``[risk]`` given: negative weights need ``allow_short``; the short weight is at most
   ``max_short_pct``; no weight is above the effective ``max_position_pct``; the gross weight
   is at most the effective ``max_leverage``. Without ``[risk]``, only a
   ``constraints.max_leverage``/``max_position_pct`` in the file itself applies.

``Target.window_id`` is the hex SHA-256 of canonical JSON of (scope, targets sorted by symbol
with normalised weights, constraints). The scope is ``metadata.id`` or ``""``. The file's
timestamp and the order of its lines are not part of the window: re-ordering the lines or
writing ``0.10`` for ``0.1`` gives the same window.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.config import WindowPeriod
from rebalancer.errors import TargetError
from rebalancer.model import Target, TargetConstraints, TargetWeight
from rebalancer.money import decimal_str

if TYPE_CHECKING:
    from rebalancer.config import RiskConfig

MAX_TARGET_BYTES = 1 << 20
MAX_DEPTH = 8
MAX_SIGNIFICANT_DIGITS = 20
MAX_METADATA_ID_CHARS = 128
SYMBOL_RULE = (
    "1-12 characters of A-Z, 0-9, and single '.', '-' or spaces between them, "
    "starting and ending with a letter or digit"
)

_SYMBOL_RE = re.compile(r"[A-Z0-9]+(?:[ .-][A-Z0-9]+)*")
_SYMBOL_MAX = 12
_RFC3339_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
# Strings (with escapes) and brackets; used to measure nesting before the parser recurses.
_DEPTH_TOKEN_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_DOUBLE_MAX = Decimal("1.7976931348623157e308")
_MIN_EXPONENT = -307  # smallest normal double is about 2.2e-308
_SUM_PRECISION = 1000  # enough digits for any exact sum of in-range 20-digit numbers
_ONE = Decimal(1)

_TOP_KEYS = ("constraints", "metadata", "targets", "timestamp")
_METADATA_KEYS = ("id",)
_LINE_KEYS = ("symbol", "weight")
_CONSTRAINT_KEYS = ("max_leverage", "max_position_pct", "max_trade_usd", "min_trade_usd")


class _Reject(Exception):
    """Internal: one validation failure; turned into ``TargetError`` with the file name."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def load_target(path: Path | str, *, risk: RiskConfig | None = None) -> Target:
    """Read and validate a target file; raise ``TargetError`` naming the file and the problem."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_TARGET_BYTES + 1)
    except OSError as exc:
        raise TargetError(path, f"cannot read: {exc.strerror or exc}") from None
    return parse_target_bytes(data, source=path, risk=risk)


def parse_target_bytes(
    data: bytes, *, source: Path | None = None, risk: RiskConfig | None = None
) -> Target:
    """Validate the bytes of a target file (see the module docstring for every rule).

    ``risk`` is the config's ``[risk]`` table; when given, shorting, short weight, position
    size, gross weight and the file's constraints are checked against it.
    """
    where = source if source is not None else "target"
    try:
        return _parse(data, source=source, risk=risk)
    except _Reject as exc:
        raise TargetError(where, exc.reason) from None


def effective_risk(risk: RiskConfig, constraints: TargetConstraints) -> RiskConfig:
    """The config's risk limits tightened by the target's constraints (the tighter of each)."""
    c = constraints
    return replace(
        risk,
        max_position_pct=_tighter_max(risk.max_position_pct, c.max_position_pct),
        max_leverage=_tighter_max(risk.max_leverage, c.max_leverage),
        max_trade_usd=_tighter_max(risk.max_trade_usd, c.max_trade_usd),
        min_trade_usd=(
            risk.min_trade_usd if c.min_trade_usd is None
            else max(risk.min_trade_usd, c.min_trade_usd)
        ),
    )


def window_key(target: Target, period: WindowPeriod, now: datetime) -> str:
    """The cron idempotency key: the window id, plus ``:YYYY-MM-DD`` (UTC) for daily windows."""
    if period is WindowPeriod.NONE:
        return target.window_id
    if now.tzinfo is None:
        raise ValueError("window_key needs a timezone-aware time")
    return f"{target.window_id}:{now.astimezone(UTC).date().isoformat()}"


def compute_window_id(
    scope: str, targets: tuple[TargetWeight, ...], constraints: TargetConstraints
) -> str:
    """Hex SHA-256 of the canonical JSON of scope, sorted normalised targets and constraints."""
    doc = {
        "constraints": {
            name: None if (v := getattr(constraints, name)) is None else decimal_str(v)
            for name in _CONSTRAINT_KEYS
        },
        "scope": scope,
        "targets": [[t.symbol, decimal_str(t.weight)] for t in sorted(targets, key=_by_symbol)],
        "version": 1,
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _by_symbol(t: TargetWeight) -> str:
    return t.symbol


def _tighter_max(limit: Decimal, override: Decimal | None) -> Decimal:
    return limit if override is None else min(limit, override)


# --- parsing ------------------------------------------------------------------------------


def _parse(data: bytes, *, source: Path | None, risk: RiskConfig | None) -> Target:
    if len(data) > MAX_TARGET_BYTES:
        raise _Reject(f"larger than {MAX_TARGET_BYTES} bytes (1 MiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Reject(f"not valid UTF-8 at byte {exc.start}") from None
    _check_depth(text)
    doc = _load_json(text)
    if not isinstance(doc, dict):
        raise _Reject(f"the top level must be a JSON object, got {_kind(doc)}")
    _check_keys(doc, _TOP_KEYS, "")
    timestamp = _parse_timestamp(doc["timestamp"]) if "timestamp" in doc else None
    metadata_id = _parse_metadata(doc["metadata"]) if "metadata" in doc else None
    if "targets" not in doc:
        raise _Reject("targets: is required")
    targets = _parse_targets(doc["targets"])
    constraints = _parse_constraints(doc.get("constraints"))
    _check_constraints(constraints, risk)
    _check_weights(targets, constraints, risk)
    return Target(
        targets=targets,
        metadata_id=metadata_id,
        constraints=constraints,
        timestamp=timestamp,
        window_id=compute_window_id(metadata_id or "", targets, constraints),
        source=source,
    )


def _check_depth(text: str) -> None:
    depth = 0
    for match in _DEPTH_TOKEN_RE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _Reject(f"nested deeper than {MAX_DEPTH} levels")
        elif token in "]}":
            depth -= 1


def _load_json(text: str) -> Any:
    try:
        return json.loads(
            text,
            parse_float=_number,
            parse_int=_number,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise _Reject(f"not valid JSON: {exc.msg} at {where}") from None
    except RecursionError:  # pragma: no cover - the depth check runs first
        raise _Reject(f"nested deeper than {MAX_DEPTH} levels") from None


def _symbol_key(symbol: str) -> str:
    return symbol.replace(".", " ").replace("-", " ")


def _number(token: str) -> Decimal:
    try:
        value = Decimal(token)
    except (InvalidOperation, ValueError):  # pragma: no cover - the JSON grammar guarantees it
        raise _Reject(f"not a number: {token[:40]}") from None
    shown = token if len(token) <= 40 else token[:37] + "..."
    # Exact comparisons: abs() and normalize() would round to the context's 28 digits.
    if value.copy_abs() > _DOUBLE_MAX:
        raise _Reject(f"number {shown} is out of range (it overflows to infinity)")
    if value != 0 and value.adjusted() < _MIN_EXPONENT:
        raise _Reject(f"number {shown} is out of range (it underflows to zero)")
    if value != 0 and _significant_digits(value) > MAX_SIGNIFICANT_DIGITS:
        raise _Reject(f"number {shown} has more than {MAX_SIGNIFICANT_DIGITS} significant digits")
    return value


def _significant_digits(value: Decimal) -> int:
    return len("".join(map(str, value.as_tuple().digits)).rstrip("0"))


def _constant(token: str) -> Any:
    raise _Reject(f"{token} is not allowed (numbers must be finite)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Reject(f"duplicate key {json.dumps(key)}")
        result[key] = value
    return result


def _check_keys(obj: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in obj:
        if key not in known:
            allowed = ", ".join(known)
            shown = key if key.isidentifier() and key.isascii() else json.dumps(key)
            raise _Reject(f"{where}{shown}: unknown key (known keys: {allowed})")


def _parse_timestamp(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise _Reject(f"timestamp: must be an RFC 3339 string, got {_kind(raw)}")
    match = _RFC3339_RE.fullmatch(raw)
    if match is None:
        raise _Reject(
            f"timestamp: {json.dumps(raw[:40])} is not RFC 3339 "
            "(e.g. 2026-12-04T14:30:00Z, with a time zone offset)"
        )
    date, time, frac, offset = match.groups()
    micro = (frac or "").ljust(6, "0")[:6]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{date}T{time}.{micro}{offset}")
    except ValueError as exc:
        raise _Reject(f"timestamp: {json.dumps(raw)} is not a valid time ({exc})") from None
    return parsed.astimezone(UTC)


def _parse_metadata(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        raise _Reject(f"metadata: must be an object, got {_kind(raw)}")
    _check_keys(raw, _METADATA_KEYS, "metadata.")
    if "id" not in raw:
        return None
    value = raw["id"]
    if not isinstance(value, str):
        raise _Reject(f"metadata.id: must be a string, got {_kind(value)}")
    if not value.strip():
        raise _Reject("metadata.id: must not be empty (omit it instead)")
    if len(value) > MAX_METADATA_ID_CHARS:
        raise _Reject(f"metadata.id: longer than {MAX_METADATA_ID_CHARS} characters")
    if value != value.strip() or not value.isprintable():
        raise _Reject(
            "metadata.id: must be printable text without leading or trailing spaces"
        )
    return value


def _parse_targets(raw: Any) -> tuple[TargetWeight, ...]:
    if not isinstance(raw, list):
        raise _Reject(f"targets: must be an array, got {_kind(raw)}")
    if not raw:
        raise _Reject("targets: is empty (at least one symbol is needed)")
    seen: dict[str, str] = {}
    lines: list[TargetWeight] = []
    for i, line in enumerate(raw):
        where = f"targets[{i}]"
        if not isinstance(line, dict):
            raise _Reject(f"{where}: must be an object, got {_kind(line)}")
        _check_keys(line, _LINE_KEYS, f"{where}.")
        for key in _LINE_KEYS:
            if key not in line:
                raise _Reject(f"{where}.{key}: is required")
        symbol = line["symbol"]
        if not isinstance(symbol, str):
            raise _Reject(f"{where}.symbol: must be a string, got {_kind(symbol)}")
        if len(symbol) > _SYMBOL_MAX or _SYMBOL_RE.fullmatch(symbol) is None:
            shown = json.dumps(symbol[:20])
            raise _Reject(f"{where}.symbol: {shown} is not a valid symbol ({SYMBOL_RULE})")
        # "BRK B", "BRK.B" and "BRK-B" are spellings of one stock: one line at most.
        key = _symbol_key(symbol)
        if key in seen:
            same = "duplicate symbol" if seen[key] == symbol else f"same stock as {seen[key]}:"
            raise _Reject(f"{where}.symbol: {same} {symbol}")
        seen[key] = symbol
        weight = line["weight"]
        if not isinstance(weight, Decimal):
            raise _Reject(f"{where}.weight: must be a number, got {_kind(weight)}")
        if weight == 0:
            raise _Reject(
                f"{where}.weight: weight for {symbol} is zero (omit the symbol; "
                "a held symbol that is not in the target is closed)"
            )
        if abs(weight) > _ONE:
            raise _Reject(f"{where}.weight: |{weight}| for {symbol} is above 1")
        lines.append(TargetWeight(symbol=symbol, weight=weight))
    return tuple(lines)


def _parse_constraints(raw: Any) -> TargetConstraints:
    if raw is None:
        return TargetConstraints()
    if not isinstance(raw, dict):
        raise _Reject(f"constraints: must be an object or null, got {_kind(raw)}")
    _check_keys(raw, _CONSTRAINT_KEYS, "constraints.")
    values: dict[str, Decimal | None] = {}
    for name in _CONSTRAINT_KEYS:
        value = raw.get(name)
        if value is not None and not isinstance(value, Decimal):
            raise _Reject(f"constraints.{name}: must be a number or null, got {_kind(value)}")
        values[name] = value
    c = TargetConstraints(**values)
    _in_range("max_position_pct", c.max_position_pct, "greater than 0 and at most 1",
              lambda v: 0 < v <= 1)
    _in_range("max_leverage", c.max_leverage, "greater than 0", lambda v: v > 0)
    _in_range("min_trade_usd", c.min_trade_usd, "at least 0", lambda v: v >= 0)
    _in_range("max_trade_usd", c.max_trade_usd, "greater than 0", lambda v: v > 0)
    return c


def _in_range(name: str, value: Decimal | None, rule: str, ok: Any) -> None:
    if value is not None and not ok(value):
        raise _Reject(f"constraints.{name}: must be {rule}, got {value}")


def _check_constraints(c: TargetConstraints, risk: RiskConfig | None) -> None:
    if risk is not None:
        for name in ("max_position_pct", "max_leverage", "max_trade_usd"):
            value: Decimal | None = getattr(c, name)
            limit: Decimal = getattr(risk, name)
            if value is not None and value > limit:
                raise _Reject(
                    f"constraints.{name}: {value} loosens the config's risk.{name} {limit} "
                    "(target constraints may only tighten the config's limits)"
                )
        if c.min_trade_usd is not None and c.min_trade_usd < risk.min_trade_usd:
            raise _Reject(
                f"constraints.min_trade_usd: {c.min_trade_usd} loosens the config's "
                f"risk.min_trade_usd {risk.min_trade_usd} "
                "(target constraints may only tighten the config's limits)"
            )
    low = c.min_trade_usd if c.min_trade_usd is not None else (
        risk.min_trade_usd if risk is not None else None
    )
    high = c.max_trade_usd if c.max_trade_usd is not None else (
        risk.max_trade_usd if risk is not None else None
    )
    if low is not None and high is not None and low > high:
        raise _Reject(
            f"constraints: min_trade_usd {low} is above max_trade_usd {high} "
            "(no trade could pass)"
        )


def _check_weights(
    targets: tuple[TargetWeight, ...], c: TargetConstraints, risk: RiskConfig | None
) -> None:
    with localcontext() as ctx:
        ctx.prec = _SUM_PRECISION
        long_sum = sum((t.weight for t in targets if t.weight > 0), Decimal(0))
        short_sum = sum((-t.weight for t in targets if t.weight < 0), Decimal(0))
        gross = long_sum + short_sum
    if long_sum > _ONE:
        raise _Reject(f"targets: the positive weights sum to {long_sum}, above 1")
    if risk is not None:
        shorts = [t for t in targets if t.weight < 0]
        if shorts and not risk.allow_short:
            t = shorts[0]
            raise _Reject(
                f"targets: negative weight {t.weight} for {t.symbol} but the config does not "
                "allow short selling (risk.allow_short = false)"
            )
        if short_sum > risk.max_short_pct:
            raise _Reject(
                f"targets: the short weights sum to {short_sum}, above "
                f"risk.max_short_pct {risk.max_short_pct}"
            )
    max_pos, max_pos_name = _limit(
        c.max_position_pct, None if risk is None else risk.max_position_pct, "max_position_pct"
    )
    if max_pos is not None:
        for t in targets:
            if abs(t.weight) > max_pos:
                raise _Reject(
                    f"targets: weight {t.weight} for {t.symbol} is above {max_pos_name} {max_pos}"
                )
    max_lev, max_lev_name = _limit(
        c.max_leverage, None if risk is None else risk.max_leverage, "max_leverage"
    )
    if max_lev is not None and gross > max_lev:
        raise _Reject(f"targets: the gross weight {gross} is above {max_lev_name} {max_lev}")


def _limit(
    override: Decimal | None, config: Decimal | None, name: str
) -> tuple[Decimal | None, str]:
    if override is not None and (config is None or override <= config):
        return override, f"constraints.{name}"
    if config is not None:
        return config, f"risk.{name}"
    return None, name


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - json yields only the kinds above
