"""Turn a parsed TOML table into frozen dataclasses, strictly.

A section is a ``@dataclass(frozen=True, kw_only=True)`` whose fields carry their own limits in
``field(metadata=...)`` (see ``setting``). The parser rejects unknown keys, wrong types and
out-of-range values with the dotted key path and the reason. Supported field types: ``bool``,
``int``, ``str``, ``Decimal`` (TOML floats are read through their shortest repr, so ``0.1``
becomes ``Decimal("0.1")``), ``pathlib.Path`` (relative paths resolved against a base directory),
``StrEnum`` subclasses, nested section dataclasses, ``tuple[T, ...]`` and ``dict[str, Section]``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SchemaError(Exception):
    """A value in the table does not fit the schema. ``key`` is the dotted path."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    lo: int | float | str | None = None,
    hi: int | float | str | None = None,
    lo_open: bool = False,
    doc: str = "",
) -> Any:
    """A dataclass field with an inclusive range ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "doc": doc}
    if isinstance(default, dict | list):
        raise TypeError("mutable defaults are not allowed; use a tuple or a section")
    return dataclasses.field(default=default, metadata=meta)


def parse_section(cls: type[T], table: Any, key: str, *, base_dir: Path) -> T:
    """Build ``cls`` from ``table`` or raise ``SchemaError`` naming the offending key."""
    if not isinstance(table, Mapping):
        raise SchemaError(key or "(top level)", f"must be a table, got {_kind(table)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in table:
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise SchemaError(_join(key, name), f"unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        path = _join(key, name)
        if name in table:
            values[name] = _convert(hints[name], table[name], path, fld.metadata, base_dir)
        elif dataclasses.is_dataclass(hints[name]):
            # Parsed from an empty table so that its relative default paths get resolved too.
            values[name] = parse_section(hints[name], {}, path, base_dir=base_dir)
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            raise SchemaError(path, "is required")
        elif isinstance(fld.default, Path) and not fld.default.is_absolute():
            values[name] = _normal(base_dir / fld.default)
    return cls(**values)


def to_plain(value: Any) -> Any:
    """The JSON-ready form of a parsed section (for hashing and display)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal | Path):
        return str(value)
    return value


def _normal(path: Path) -> Path:
    # Lexical only: symlinks are left for the audit writer to see and refuse.
    return Path(os.path.normpath(path))


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float | Decimal):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _convert(tp: Any, raw: Any, key: str, meta: Mapping[str, Any], base_dir: Path) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw is None:
            return None
        return _convert(args[0], raw, key, meta, base_dir)
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, raw, key, base_dir=base_dir)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(raw, list):
            raise SchemaError(key, f"must be an array, got {_kind(raw)}")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(
            _convert(item_tp, item, f"{key}[{i}]", meta, base_dir) for i, item in enumerate(raw)
        )
    if origin is dict:
        if not isinstance(raw, Mapping):
            raise SchemaError(key, f"must be a table, got {_kind(raw)}")
        _k, item_tp = typing.get_args(tp)
        return {
            name: _convert(item_tp, item, _join(key, name), meta, base_dir)
            for name, item in raw.items()
        }
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if not isinstance(raw, str) or raw not in allowed:
            shown = raw if isinstance(raw, str) else _kind(raw)
            raise SchemaError(key, f"must be one of {', '.join(map(repr, allowed))}, got {shown!r}")
        return tp(raw)
    if tp is bool:
        if not isinstance(raw, bool):
            raise SchemaError(key, f"must be true or false, got {_kind(raw)}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise SchemaError(key, f"must be an integer, got {_kind(raw)}")
        _check_range(raw, key, meta)
        return raw
    if tp is Decimal:
        value = _to_decimal(raw, key)
        _check_range(value, key, meta)
        return value
    if tp is str:
        if not isinstance(raw, str):
            raise SchemaError(key, f"must be a string, got {_kind(raw)}")
        _refuse_control_chars(raw, key)
        if meta.get("lo") is not None and len(raw.strip()) < int(meta["lo"]):
            raise SchemaError(key, "must not be empty")
        return raw
    if tp is Path:
        if not isinstance(raw, str) or not raw.strip():
            raise SchemaError(key, f"must be a non-empty path string, got {_kind(raw)}")
        _refuse_control_chars(raw, key)
        try:
            path = Path(raw).expanduser()
        except RuntimeError:  # "~nosuchuser/..."
            raise SchemaError(key, f"cannot expand the home directory in {raw!r}") from None
        return path if path.is_absolute() else _normal(base_dir / path)
    raise TypeError(f"unsupported schema type {tp!r} at {key}")  # a programming error


def _refuse_control_chars(raw: str, key: str) -> None:
    bad = next((c for c in raw if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise SchemaError(key, f"must not contain control characters (found {bad!r})")


def _to_decimal(raw: Any, key: str) -> Decimal:
    if isinstance(raw, Decimal):  # TOML floats parsed exactly (tomllib parse_float=Decimal)
        if not raw.is_finite():
            shown = "nan" if raw.is_nan() else ("inf" if raw > 0 else "-inf")  # TOML spelling
            raise SchemaError(key, f"must be a finite number, got {shown}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise SchemaError(key, f"must be a number, got {_kind(raw)}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise SchemaError(key, f"must be a finite number, got {raw}")
    try:
        return Decimal(repr(raw)) if isinstance(raw, float) else Decimal(raw)
    except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
        raise SchemaError(key, f"is not a number: {raw!r}") from None


def _check_range(value: int | Decimal, key: str, meta: Mapping[str, Any]) -> None:
    lo, hi, lo_open = meta.get("lo"), meta.get("hi"), meta.get("lo_open", False)
    lo_d = None if lo is None else Decimal(str(lo))
    hi_d = None if hi is None else Decimal(str(hi))
    too_low = lo_d is not None and (value <= lo_d if lo_open else value < lo_d)
    too_high = hi_d is not None and value > hi_d
    if not (too_low or too_high):
        return
    if lo is not None and hi is not None:
        if lo_open:
            raise SchemaError(key, f"must be greater than {lo} and at most {hi}, got {value}")
        raise SchemaError(key, f"must be between {lo} and {hi}, got {value}")
    if lo is not None:
        rel = "greater than" if lo_open else "at least"
        raise SchemaError(key, f"must be {rel} {lo}, got {value}")
    raise SchemaError(key, f"must be at most {hi}, got {value}")
