"""Logging setup: the processor pipeline (pinned once), outputs, formats and idempotency."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import structlog

from rebalancer.config import LogFormat
from rebalancer.errors import RebalancerError
from rebalancer.logsetup import (
    LOG_FILE_NAME,
    configure_logging,
    log_file_path,
    reset_logging,
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test leaves logging and the context variables as it found them."""
    yield
    reset_logging()
    structlog.contextvars.clear_contextvars()


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_rebalancer_handler", False)]


def _renderer(handler: logging.Handler) -> object:
    formatter = handler.formatter
    assert isinstance(formatter, structlog.stdlib.ProcessorFormatter)
    return formatter.processors[-1]


def test_pipeline_writes_the_same_json_line_to_file_and_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pinned pipeline: bound context, level, logger, UTC ISO timestamp; stdlib records too."""
    log_file = log_file_path(tmp_path / "audit")
    configure_logging(fmt=LogFormat.AUTO, level="info", log_file=log_file, stderr_is_tty=False)
    structlog.contextvars.bind_contextvars(run_id="run-7", op_id="run-7:3")
    structlog.get_logger("rebalancer.test").info("order_sent", symbol="AAPL",
                                                 limit=Decimal("185.09"))
    structlog.get_logger("rebalancer.test").debug("too_detailed")
    logging.getLogger("ib_insync.client").warning("Peer closed connection")

    lines = log_file.read_text().splitlines()
    assert len(lines) == 2
    first, foreign = (json.loads(line) for line in lines)
    assert set(first) == {"event", "level", "logger", "timestamp", "run_id", "op_id", "symbol",
                          "limit"}
    assert (first["event"], first["level"], first["logger"]) == ("order_sent", "info",
                                                                 "rebalancer.test")
    assert (first["run_id"], first["op_id"], first["limit"]) == ("run-7", "run-7:3", "185.09")
    assert first["timestamp"].endswith("Z")
    assert datetime.fromisoformat(first["timestamp"]).utcoffset() is not None
    assert (foreign["event"], foreign["level"], foreign["logger"], foreign["run_id"]) == (
        "Peer closed connection", "warning", "ib_insync.client", "run-7")
    err_lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["event"] for line in err_lines] == ["order_sent",
                                                                 "Peer closed connection"]


@pytest.mark.parametrize(
    ("fmt", "tty", "console"),
    [
        (LogFormat.AUTO, True, True),
        (LogFormat.AUTO, False, False),
        (LogFormat.JSON, True, False),
        (LogFormat.CONSOLE, False, True),
    ],
)
def test_stderr_renderer_follows_format_and_terminal(
    tmp_path: Path, fmt: LogFormat, tty: bool, console: bool
) -> None:
    """stderr is rendered for people on a terminal (or when asked); the file is always JSON."""
    configure_logging(fmt=fmt, level="info", log_file=tmp_path / LOG_FILE_NAME, stderr_is_tty=tty)
    stderr_handler, file_handler = _ours()
    assert isinstance(_renderer(stderr_handler), structlog.dev.ConsoleRenderer) is console
    assert isinstance(_renderer(file_handler), structlog.processors.JSONRenderer)


def test_configuring_twice_replaces_the_handlers(tmp_path: Path) -> None:
    """A second configure_logging leaves exactly one stderr and one file handler, new level."""
    configure_logging(fmt=LogFormat.JSON, level="info", log_file=tmp_path / "a.log")
    first = _ours()
    configure_logging(fmt=LogFormat.JSON, level="warning", log_file=tmp_path / "b.log")
    second = _ours()
    assert len(first) == len(second) == 2
    assert not set(first) & set(second)
    assert isinstance(second[1], logging.FileHandler)
    assert second[1].baseFilename == str(tmp_path / "b.log")
    assert logging.getLogger().level == logging.WARNING
    configure_logging(fmt=LogFormat.JSON, level="debug", log_file=None)
    assert len(_ours()) == 1
    assert logging.getLogger().level == logging.DEBUG


def test_log_file_is_private_and_directory_created(tmp_path: Path) -> None:
    """The log file is created 0600 in a new 0700 directory."""
    log_file = tmp_path / "audit" / LOG_FILE_NAME
    configure_logging(fmt=LogFormat.JSON, level="info", log_file=log_file)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700


def test_symlinked_log_file_is_refused(tmp_path: Path) -> None:
    """A symlink at the log path is not followed; the error names the file."""
    target = tmp_path / "elsewhere.log"
    target.write_text("")
    link = tmp_path / LOG_FILE_NAME
    link.symlink_to(target)
    with pytest.raises(RebalancerError, match=f"{link}: cannot open the log file"):
        configure_logging(fmt=LogFormat.JSON, level="info", log_file=link)
    assert _ours() == []


def test_unknown_level_is_refused() -> None:
    """A level name logging does not know raises ValueError before anything changes."""
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging(fmt=LogFormat.JSON, level="loud", log_file=None)
    assert _ours() == []
