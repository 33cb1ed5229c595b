"""The runtime's own error types. One base; each error names what was wrong and where."""

from __future__ import annotations

from pathlib import Path

from rebalancer.exit_codes import ExitCode


class RebalancerError(Exception):
    """Base of every error the runtime raises on purpose. Carries the exit code it maps to."""

    exit_code: ExitCode = ExitCode.ERROR


class InputError(RebalancerError):
    """A file given to the program (config, target) cannot be accepted.

    The message names the file, the key or position, and the reason.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, path: Path | str | None, reason: str, *, key: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.key = key
        self.reason = reason
        where = "" if path is None else f"{path}: "
        what = "" if key is None else f"{key}: "
        super().__init__(f"{where}{what}{reason}")


class ConfigError(InputError):
    """The TOML config is unreadable, has an unknown key, a wrong type or an out-of-range value."""


class TargetError(InputError):
    """The target JSON file is unreadable or violates the target rules."""
