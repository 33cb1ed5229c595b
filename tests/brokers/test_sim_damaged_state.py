"""A damaged sim state file is a clean broker error, never a traceback."""

from __future__ import annotations

import json

import pytest

from brokers.errors import BrokerProtocolError
from brokers.sim.state import load_state


@pytest.mark.parametrize("raw", [b"null", b"[]", b'"x"', b"{not json", b"\xff\xfe"])
def test_wrong_shaped_documents_are_refused(raw: bytes) -> None:
    """Valid JSON of the wrong shape, or not JSON at all, raises BrokerProtocolError."""
    with pytest.raises(BrokerProtocolError, match="is damaged"):
        load_state(raw, source="state.json")


def test_unusable_values_are_refused() -> None:
    """A zero drift interval parses but would divide by zero later: refused on load."""
    from brokers.sim.settings import SimSettings
    from brokers.sim.state import dump_state
    from brokers.sim.views import new_state

    state = new_state(SimSettings(), account_id="DEMO1", now_us=0)
    doc = json.loads(dump_state(state))
    doc["market"]["drift_interval_ms"] = 0
    with pytest.raises(BrokerProtocolError, match="drift_interval_ms must be positive"):
        load_state(json.dumps(doc).encode(), source="state.json")


def test_temp_files_of_dead_writers_are_removed(tmp_path: object) -> None:
    """A temp file left by a writer killed mid-write is cleaned up by the next write."""
    from pathlib import Path

    import anyio

    from brokers.sim import SimBroker
    from brokers.sim.settings import SimSettings

    root = Path(str(tmp_path))
    state = root / "state.json"
    stale = root / ".state.json.99999.tmp"
    root.mkdir(exist_ok=True)
    stale.write_text("half a state")

    async def touch() -> None:
        broker = SimBroker(SimSettings(state_file=state), account_id="DEMO1")
        await broker.connect()
        await broker.close()

    anyio.run(touch)
    assert state.exists()
    assert not stale.exists()
