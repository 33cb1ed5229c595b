"""Fixtures of the audit tests: a fault-injecting FileIO and small log helpers."""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

import anyio
import pytest

from brokers.types import (
    AccountSummary,
    Execution,
    OrderAck,
    OrderRequest,
    OrderSnapshot,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    Side,
    TimeInForce,
)
from rebalancer.audit.fileio import OsFileIO
from rebalancer.audit.records import LogScan, scan_log

FaultKind = int | Literal["short"]


class FaultyIO(OsFileIO):
    """A ``FileIO`` over the real file system that fails on command and can lose power.

    ``fail_op`` is ``"write"`` or ``"sync"`` (fdatasync, fsync and directory fsync all count as
    syncs); the ``at``-th such call fails with ``OSError(error)``, or with ``error="short"``
    writes only half the bytes. ``persistent`` makes every later call of that kind fail too.

    Durability model: a file's *durable* content is what it held at its last successful
    fdatasync/fsync; a file created by ``open`` is durable only after its directory is fsynced.
    ``power_loss()`` puts every file back to its durable content (or removes it).
    """

    def __init__(
        self,
        *,
        fail_op: Literal["write", "sync"] | None = None,
        at: int = 0,
        error: FaultKind = errno.EIO,
        persistent: bool = False,
    ) -> None:
        """Configure the fault (none by default)."""
        self.fail_op = fail_op
        self.at = at
        self.error = error
        self.persistent = persistent
        self.counts: Counter[str] = Counter()
        self.faults = 0
        self.fd_paths: dict[int, Path] = {}
        self.durable: dict[Path, bytes] = {}
        self.undurable_entries: set[Path] = set()

    def _fault(self, op: str) -> FaultKind | None:
        self.counts[op] += 1
        n = self.counts[op]
        if op == self.fail_op and (n == self.at or (self.persistent and n > self.at)):
            self.faults += 1
            if self.error == "short":
                return "short"
            raise OSError(self.error, os.strerror(self.error))
        return None

    def open(self, path: Path, flags: int, mode: int) -> int:
        """Open and remember which path the descriptor names."""
        existed = os.path.lexists(path)
        fd = super().open(path, flags, mode)
        path = Path(path)
        self.fd_paths[fd] = path
        if not existed:
            self.durable[path] = b""
            self.undurable_entries.add(path)
        elif path not in self.durable:
            self.durable[path] = Path(path).read_bytes()
        return fd

    def write(self, fd: int, data: bytes) -> int:
        """Write, unless the fault says fail or shorten."""
        if self._fault("write") == "short":
            return super().write(fd, data[: len(data) // 2])
        return super().write(fd, data)

    def _synced(self, fd: int) -> None:
        path = self.fd_paths[fd]
        self.durable[path] = path.read_bytes()

    def fdatasync(self, fd: int) -> None:
        """Sync, unless the fault says fail; then the file's content is durable."""
        self._fault("sync")
        super().fdatasync(fd)
        self._synced(fd)

    def fsync(self, fd: int) -> None:
        """Like ``fdatasync``."""
        self._fault("sync")
        super().fsync(fd)
        self._synced(fd)

    def fsync_dir(self, path: Path) -> None:
        """Sync the directory; files created in it become durable entries."""
        self._fault("sync")
        super().fsync_dir(path)
        self.undurable_entries = {p for p in self.undurable_entries if p.parent != Path(path)}

    def close(self, fd: int) -> None:
        """Close and forget the descriptor."""
        self.fd_paths.pop(fd, None)
        super().close(fd)

    def durable_bytes(self, path: Path) -> bytes | None:
        """What ``path`` would hold after a power loss now (``None``: the file would be gone)."""
        if path in self.undurable_entries:
            return None
        return self.durable.get(path)

    def power_loss(self) -> None:
        """Put every file back to its durable state: drop unsynced bytes and unsynced entries."""
        for path, content in self.durable.items():
            if path in self.undurable_entries:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)


@pytest.fixture(name="log_path")
def fixture_log_path(tmp_path: Path) -> Path:
    """A log path in a not-yet-existing directory under the test's tmp dir."""
    return tmp_path / "logs" / "audit.jsonl"


def scan_file(path: Path) -> LogScan:
    """Scan a log file's chain (raises on mid-file damage)."""
    return scan_log(path.read_bytes(), path=path)


@pytest.fixture(name="faulty_io")
def fixture_faulty_io() -> type[FaultyIO]:
    """The ``FaultyIO`` class (fixtures avoid importing ``conftest`` by module name)."""
    return FaultyIO


@pytest.fixture(name="scan")
def fixture_scan() -> Callable[[Path], LogScan]:
    """``scan_file``: check a log file's chain and return where it ends."""
    return scan_file


# --- a counting fake broker (implements brokers.base.Broker) ---------------------------------


class CountingBroker:
    """A scriptable in-memory broker that counts every call, for bracket and gateway tests.

    ``fail`` maps a method name to the exception it raises; ``hang`` names methods that wait
    forever (to be cancelled or timed out); ``on_call`` is called with the method name first.
    """

    def __init__(self) -> None:
        """An account with one AAPL position and a quote universe of AAPL and MSFT."""
        self.calls: Counter[str] = Counter()
        self.fail: dict[str, BaseException] = {}
        self.hang: set[str] = set()
        self.on_call: Callable[[str], None] | None = None
        self.placed: list[OrderRequest] = []
        self.cancelled: list[int] = []

    async def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if self.on_call is not None:
            self.on_call(name)
        if name in self.fail:
            raise self.fail[name]
        if name in self.hang:
            await anyio.sleep_forever()

    @property
    def client_id(self) -> int:
        """Fixed client id 7."""
        return 7

    async def connect(self) -> None:
        """Nothing to connect."""
        self.calls["connect"] += 1

    async def close(self) -> None:
        """Nothing to close."""
        self.calls["close"] += 1

    async def account_summary(self) -> AccountSummary:
        """A fixed $100,000 account."""
        await self._enter("account_summary")
        return AccountSummary(
            account_id="DU123", currency="USD", net_liquidation=Decimal("100000.00"),
            cash=Decimal("2500.50"), buying_power=Decimal("200000"),
        )

    async def positions(self) -> tuple[Position, ...]:
        """Ten AAPL."""
        await self._enter("positions")
        return (Position(account_id="DU123", symbol="AAPL", quantity=10,
                         avg_cost=Decimal("150.25")),)

    async def quotes(self, symbols: Sequence[str]) -> tuple[Quote, ...]:
        """A quote per symbol."""
        await self._enter("quotes")
        at = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
        return tuple(
            Quote(symbol=s, bid=Decimal("185.08"), ask=Decimal("185.10"), last=Decimal("185.09"),
                  timestamp=at)
            for s in symbols
        )

    async def place_order(self, request: OrderRequest) -> OrderAck:
        """Acknowledge with order id 100+n."""
        await self._enter("place_order")
        self.placed.append(request)
        n = len(self.placed)
        return OrderAck(client_order_id=request.client_order_id, order_id=100 + n,
                        perm_id=9000 + n, status=OrderStatus.WORKING)

    async def cancel_order(self, order_id: int) -> None:
        """Accept the cancel."""
        await self._enter("cancel_order")
        self.cancelled.append(order_id)

    async def open_orders(self) -> tuple[OrderSnapshot, ...]:
        """One working order."""
        await self._enter("open_orders")
        return (_snapshot(),)

    async def completed_orders(self, since: datetime) -> tuple[OrderSnapshot, ...]:
        """None."""
        await self._enter("completed_orders")
        return ()

    async def executions(self, since: datetime) -> tuple[Execution, ...]:
        """One fill."""
        await self._enter("executions")
        return (Execution(exec_id="e1", client_order_id="rb1-a", order_id=101, perm_id=9001,
                          account_id="DU123", symbol="AAPL", side=Side.BUY, quantity=5,
                          price=Decimal("185.09"), time=datetime(2026, 12, 4, 15, 1, tzinfo=UTC)),)

    async def _updates(self) -> AsyncIterator[OrderUpdate]:
        self.calls["order_updates"] += 1
        yield OrderUpdate(client_order_id="rb1-a", order_id=101, perm_id=9001,
                          status=OrderStatus.FILLED, filled=5, remaining=0,
                          avg_fill_price=Decimal("185.09"),
                          time=datetime(2026, 12, 4, 15, 1, tzinfo=UTC))

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        """One fill update, then the stream ends."""
        return self._updates()


def _snapshot() -> OrderSnapshot:
    return OrderSnapshot(
        client_order_id="rb1-a", order_id=101, perm_id=9001, client_id=7, account_id="DU123",
        symbol="AAPL", side=Side.BUY, quantity=5, limit_price=Decimal("185.10"),
        status=OrderStatus.WORKING, filled=0, remaining=5, avg_fill_price=None,
        updated_at=datetime(2026, 12, 4, 15, 0, tzinfo=UTC),
    )


def order_request(client_order_id: str = "rb1-a") -> OrderRequest:
    """A BUY 5 AAPL @ 185.10 DAY request."""
    return OrderRequest(client_order_id=client_order_id, account_id="DU123", symbol="AAPL",
                        side=Side.BUY, quantity=5, limit_price=Decimal("185.10"),
                        time_in_force=TimeInForce.DAY)


@pytest.fixture(name="broker")
def fixture_broker() -> CountingBroker:
    """A fresh counting fake broker."""
    return CountingBroker()


@pytest.fixture(name="make_order")
def fixture_make_order() -> Callable[..., OrderRequest]:
    """``order_request``: builds an order request."""
    return order_request
