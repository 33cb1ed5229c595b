"""The broker contract checks live in a plain module; let pytest explain their assertions."""

import pytest

pytest.register_assert_rewrite("broker_contract")
