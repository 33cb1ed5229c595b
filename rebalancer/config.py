"""The TOML configuration: frozen, keyword-only sections with a default for every key but
``account.id``, parsed strictly (unknown keys, wrong types and out-of-range values are refused
with the dotted key path), and a stable hash written into every audit record.

Relative paths in the file are resolved against the directory holding the config file, so a
run behaves the same whatever the working directory (cron starts in ``$HOME``).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from brokers.sim.settings import SimSettings
from rebalancer._tomlschema import SchemaError, parse_section, setting, to_plain
from rebalancer.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20


class AccountType(StrEnum):
    """Cash accounts cannot short or borrow; buys must be covered by cash and sell proceeds."""

    CASH = "cash"
    MARGIN = "margin"


class BrokerKind(StrEnum):
    """Which broker implementation a run talks to."""

    SIM = "sim"
    IB = "ib"


class TimeInForceSetting(StrEnum):
    """Time in force of the orders a run sends."""

    DAY = "DAY"
    GTC = "GTC"


class UnusableQuotePolicy(StrEnum):
    """What the run does when a symbol's quote fails the gate: stop before any order, or
    leave that symbol out of this run."""

    STOP = "stop"
    SKIP = "skip"


class WindowPeriod(StrEnum):
    """``none``: a target's window is its content alone; ``day``: the UTC date is part of it,
    so the same target may run again the next day."""

    NONE = "none"
    DAY = "day"


class LogFormat(StrEnum):
    """stderr log rendering; ``auto`` is JSON when stderr is not a terminal."""

    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionConfig:
    """Where the broker (IB Gateway/TWS) listens and how long to wait for it."""

    host: str = setting("127.0.0.1", lo=1)
    port: int = setting(4002, lo=1, hi=65535)
    client_id: int = setting(1, lo=0, hi=2**31 - 1)
    kill_client_id: int = setting(0, lo=0, hi=2**31 - 1, doc="client id the kill switch uses")
    view_client_id: int = setting(
        2, lo=0, hi=2**31 - 1, doc="client id of the read-only views (status, positions)"
    )
    timeout_secs: int = setting(30, lo=1, hi=600)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfig:
    """The one account this runtime trades. ``id`` has no default on purpose."""

    id: str = setting(lo=1)
    type: AccountType = AccountType.CASH


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    """Broker selection and the simulated broker's parameters."""

    kind: BrokerKind = BrokerKind.SIM
    sim: SimSettings = field(default_factory=SimSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionConfig:
    """How orders are priced, paced, bounded and timed out."""

    limit_offset_bps: int = setting(5, lo=0, hi=500)
    order_timeout_secs: int = setting(300, lo=1, hi=86_400)
    ack_timeout_secs: int = setting(10, lo=1, hi=600)
    request_timeout_secs: int = setting(30, lo=1, hi=600)
    cancel_timeout_secs: int = setting(30, lo=1, hi=600)
    max_orders_per_run: int = setting(50, lo=1, hi=10_000)
    max_in_flight: int = setting(5, lo=1, hi=100)
    messages_per_second: int = setting(40, lo=1, hi=50)
    time_in_force: TimeInForceSetting = TimeInForceSetting.DAY


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskConfig:
    """Pre-trade limits, evaluated on post-trade exposure. Fractions of net liquidation."""

    max_position_pct: Decimal = setting(Decimal("0.25"), lo=0, hi=1, lo_open=True)
    max_leverage: Decimal = setting(Decimal("1.0"), lo=1, hi=10)
    min_trade_usd: Decimal = setting(Decimal("100"), lo=0)
    max_trade_usd: Decimal = setting(Decimal("100000"), lo=0, lo_open=True)
    allow_short: bool = False
    max_short_pct: Decimal = setting(Decimal("0.30"), lo=0, hi=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class CostConfig:
    """Cost model used for the plan's estimate and the cash-sufficiency check."""

    commission_per_share: Decimal = setting(Decimal("0.0035"), lo=0, hi=10)
    commission_min: Decimal = setting(Decimal("0.35"), lo=0, hi=1000)
    slippage_bps: int = setting(5, lo=0, hi=1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotesConfig:
    """The quote gate: how old and how wide a quote may be before the symbol is unusable."""

    staleness_secs: int = setting(30, lo=1, hi=86_400)
    max_spread_bps: int = setting(100, lo=1, hi=10_000)
    on_unusable: UnusableQuotePolicy = UnusableQuotePolicy.STOP


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditConfig:
    """Where the audit log, its safety latch, the run lock and the log file live."""

    dir: Path = setting(Path("../var/audit"))
    file: str = setting("audit.jsonl", lo=1)

    @property
    def path(self) -> Path:
        """The audit log file."""
        return self.dir / self.file


@dataclass(frozen=True, slots=True, kw_only=True)
class KillConfig:
    """Kill switch settings."""

    timeout_secs: int = setting(30, lo=1, hi=3600)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleConfig:
    """Unattended (cron) runs."""

    window_period: WindowPeriod = WindowPeriod.NONE


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    """structlog output on stderr and in a file beside the audit log."""

    format: LogFormat = LogFormat.AUTO
    level: str = setting("info", lo=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration. Build it with ``load_config`` or ``parse_config``."""

    account: AccountConfig
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    quotes: QuotesConfig = field(default_factory=QuotesConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    kill: KillConfig = field(default_factory=KillConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: Path | None = None

    @property
    def config_hash(self) -> str:
        """A stable 16-hex-digit hash of every setting (not of comments or key order)."""
        return config_hash(self)


_LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})


def parse_config(data: dict[str, Any], *, base_dir: Path, source: Path | None = None) -> Config:
    """Build a ``Config`` from a parsed TOML document; raise ``ConfigError`` naming the key."""
    known = [f.name for f in fields(Config) if f.name != "source"]
    for name in data:
        if name not in known:
            listed = ", ".join(sorted(known))
            raise ConfigError(source, f"unknown key (known keys: {listed})", key=name)
    if "account" not in data:
        raise ConfigError(source, "is required (the account this runtime trades)", key="account.id")
    try:
        cfg = parse_section(Config, {**data}, "", base_dir=base_dir)
    except SchemaError as exc:
        raise ConfigError(source, exc.reason, key=exc.key) from None
    _check_invariants(cfg, source)
    return _with_source(cfg, source)


def load_config(path: Path | str) -> Config:
    """Read, parse and validate a TOML config file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(path, f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not valid UTF-8 at byte {exc.start}") from None
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"not valid TOML: {exc}") from None
    return parse_config(data, base_dir=path.resolve().parent, source=path)


def config_hash(cfg: Config) -> str:
    """Hash of the canonical JSON of every setting; the source path is not part of it."""
    plain = to_plain(cfg)
    plain.pop("source", None)
    canonical = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]


def _check_invariants(cfg: Config, source: Path | None) -> None:
    if cfg.logging.level.lower() not in _LOG_LEVELS:
        allowed = ", ".join(sorted(_LOG_LEVELS))
        raise ConfigError(
            source, f"must be one of {allowed}, got {cfg.logging.level!r}", key="logging.level"
        )
    sim = cfg.broker.sim
    if sim.fill_delay_ms_min > sim.fill_delay_ms_max:
        raise ConfigError(
            source,
            f"must be at least fill_delay_ms_min ({sim.fill_delay_ms_min}), "
            f"got {sim.fill_delay_ms_max}",
            key="broker.sim.fill_delay_ms_max",
        )
    if cfg.account.type is AccountType.CASH and cfg.risk.allow_short:
        raise ConfigError(
            source, "must be false for a cash account (account.type = \"cash\")",
            key="risk.allow_short",
        )
    if cfg.account.type is AccountType.CASH and cfg.risk.max_leverage > 1:
        raise ConfigError(
            source,
            f"must be 1 for a cash account (account.type = \"cash\"), got {cfg.risk.max_leverage}",
            key="risk.max_leverage",
        )
    if cfg.risk.min_trade_usd > cfg.risk.max_trade_usd:
        raise ConfigError(
            source,
            f"must not exceed risk.max_trade_usd ({cfg.risk.max_trade_usd}), "
            f"got {cfg.risk.min_trade_usd}",
            key="risk.min_trade_usd",
        )
    if cfg.connection.view_client_id == cfg.connection.client_id:
        raise ConfigError(
            source,
            f"must differ from connection.client_id ({cfg.connection.client_id}): a broker "
            "allows one connection per client id, so status would fail while a run is live",
            key="connection.view_client_id",
        )
    if "/" in cfg.audit.file or cfg.audit.file in {".", ".."}:
        raise ConfigError(source, "must be a plain file name, not a path", key="audit.file")


def _with_source(cfg: Config, source: Path | None) -> Config:
    from dataclasses import replace

    return replace(cfg, source=source)
