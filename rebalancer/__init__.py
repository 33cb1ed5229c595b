"""rebalancer: drives live portfolio rebalances, with a write-ahead audit log."""

__version__ = "0.1.0"
