"""The confirmation step of a live run, driven through the pipeline with a scripted UI."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
from runenv import Env

from brokers.sim.inspect import read_sim_state
from rebalancer.broker_factory import make_broker
from rebalancer.config import load_config
from rebalancer.exit_codes import ExitCode
from rebalancer.model import Plan, RiskReport, Target
from rebalancer.runtime.orders import StopRequest
from rebalancer.runtime.run import RunOutcome, RunRequest, run_rebalance


class ScriptedUI:
    """A terminal whose operator answers with ``answer``; remembers the questions."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.questions: list[str] = []
        self.plans: list[Plan] = []

    @property
    def can_prompt(self) -> bool:
        """A person is there."""
        return True

    def plan(self, *, target: Target, plan: Plan, risk: RiskReport, equity: Decimal,
             costs: Decimal) -> None:
        """Remember the plan shown."""
        self.plans.append(plan)

    def progress(self, line: str) -> None:
        """Ignore progress."""

    async def confirm(self, question: str) -> bool:
        """Answer the scripted way."""
        self.questions.append(question)
        return self.answer


def _run(env: Env, ui: ScriptedUI) -> RunOutcome:
    cfg = load_config(env.config)
    req = RunRequest(target_path=env.target)

    async def go() -> RunOutcome:
        return await run_rebalance(cfg, req, ui=ui, stop=StopRequest(), broker_factory=make_broker)

    return anyio.run(go)


def test_declined_confirmation_sends_nothing(tmp_path: Path) -> None:
    """Answering no writes user_confirmed(false) and a declined run_completed; no order goes out."""
    env = Env(tmp_path).write()
    ui = ScriptedUI(answer=False)
    outcome = _run(env, ui)
    assert outcome.exit_code == ExitCode.NOT_CONFIRMED
    assert len(ui.questions) == 1
    assert len(ui.plans) == 1
    records = env.records()
    confirmed = [r for r in records if r["event"] == "user_confirmed"]
    assert [r["approved"] for r in confirmed] == [False]
    assert records[-1]["event"] == "run_completed"
    assert records[-1]["status"] == "declined"
    assert "order_intent" not in env.events()
    view = read_sim_state(tmp_path / "state" / "sim.json")
    assert view is not None
    assert view.all_submissions() == {}


def test_accepted_confirmation_sends_the_plan(tmp_path: Path) -> None:
    """Answering yes writes user_confirmed(true) and every planned order is sent once."""
    env = Env(tmp_path).write()
    ui = ScriptedUI(answer=True)
    outcome = _run(env, ui)
    assert outcome.exit_code == ExitCode.OK
    assert outcome.plan is not None
    confirmed = [r for r in env.records() if r["event"] == "user_confirmed"]
    assert [r["approved"] for r in confirmed] == [True]
    view = read_sim_state(tmp_path / "state" / "sim.json")
    assert view is not None
    assert set(view.all_submissions()) == {o.client_order_id for o in outcome.plan.orders}
    assert set(view.all_submissions().values()) == {1}
