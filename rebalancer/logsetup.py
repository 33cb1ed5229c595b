"""structlog configuration: one processor pipeline, two outputs.

Every log line, ours (structlog) or a library's (stdlib ``logging``: ib_insync, tenacity),
goes through the same processors and then to

* stderr: a console renderer on a terminal, JSON lines otherwise (or with ``--log-format
  json``);
* a log file beside the audit log (``<audit dir>/rebalancer.log``, 0600), always JSON lines,
  appended.

Pipeline: context variables bound with ``structlog.contextvars`` (the runtime binds
``run_id`` and ``op_id``) → level → logger name → ISO-8601 UTC ``timestamp`` → stack info →
renderer. ``configure_logging`` may be called again (tests, a CLI command after the config is
loaded): it replaces the handlers it installed before instead of adding more.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, TextIO

import structlog

from rebalancer.config import LogFormat
from rebalancer.errors import RebalancerError

if TYPE_CHECKING:
    from io import TextIOWrapper
    from pathlib import Path

    from structlog.typing import Processor

LOG_FILE_NAME = "rebalancer.log"
"""Name of the JSON-lines log file inside the audit directory."""

_TAG = "_rebalancer_handler"


def log_file_path(audit_dir: Path) -> Path:
    """Where the log file of the audit log in ``audit_dir`` lives."""
    return audit_dir / LOG_FILE_NAME


def shared_processors() -> list[Processor]:
    """The processors every record goes through before it is rendered."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
    ]


def _json_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ],
    )


def _console_formatter(*, colors: bool) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(colors=colors),
        ],
    )


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _PrivateFileHandler(logging.FileHandler):
    """Appends to a 0600 file and never follows a symlink."""

    def _open(self) -> TextIOWrapper:
        def opener(path: str, flags: int) -> int:
            return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

        # Always append; logging.FileHandler owns the stream and closes it.
        return open(self.baseFilename, "a", encoding=self.encoding, opener=opener)


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _remove_our_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if getattr(handler, _TAG, False):
            root.removeHandler(handler)
            handler.close()


def configure_logging(
    *,
    fmt: LogFormat,
    level: str,
    log_file: Path | None,
    stderr_is_tty: bool | None = None,
) -> None:
    """Route structlog and stdlib logging to stderr and, if given, to ``log_file``.

    Args:
        fmt: ``auto`` (JSON unless stderr is a terminal), ``json`` or ``console``.
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
        log_file: JSON-lines file to append to (its directory is created 0700), or None.
        stderr_is_tty: override the terminal detection (tests).

    Raises:
        ValueError: unknown level.
        RebalancerError: the log file cannot be opened.
    """
    number = _level_number(level)
    tty = sys.stderr.isatty() if stderr_is_tty is None else stderr_is_tty
    console = fmt is LogFormat.CONSOLE or (fmt is LogFormat.AUTO and tty)

    handlers: list[logging.Handler] = []
    stderr_handler = _StderrHandler(sys.stderr)
    stderr_handler.setFormatter(_console_formatter(colors=tty) if console else _json_formatter())
    handlers.append(stderr_handler)
    if log_file is not None:
        try:
            log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            file_handler = _PrivateFileHandler(log_file, mode="a", encoding="utf-8")
        except OSError as exc:
            raise RebalancerError(
                f"{log_file}: cannot open the log file: {exc.strerror or exc}"
            ) from None
        file_handler.setFormatter(_json_formatter())
        handlers.append(file_handler)

    root = logging.getLogger()
    _remove_our_handlers(root)
    for handler in handlers:
        setattr(handler, _TAG, True)
        root.addHandler(handler)
    root.setLevel(number)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Remove the handlers ``configure_logging`` installed and restore the library defaults."""
    root = logging.getLogger()
    _remove_our_handlers(root)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()
