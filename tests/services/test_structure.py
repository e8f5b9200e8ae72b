"""The shape of bot/services (issue 11): the funding mode is decided in one place,
state changes and comparisons go through the domain's state machine, one
backoff, and modules stay small."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from bot.daisysim.retry import backoff as jittered_backoff
from bot.domain.activation import TRANSITIONS, ActivationState, Step
from bot.domain.strays import StrayState
from bot.services.outcomes import move
from bot.services.timers import backoff

SERVICES = Path(__file__).resolve().parents[2] / "bot" / "services"
STATE_WORDS = {s.value for s in ActivationState} | {s.value for s in StrayState}
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for p in SERVICES.glob("*.py") if p.name != "__init__.py")


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _contract_names(tree: ast.AST) -> set[int]:
    """String constants that are names of the UI contract, not states: the
    outcome of ``CancelOutcome(...)`` and the keys of the history filters."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "CancelOutcome" and node.args
        ):
            ids.add(id(node.args[0]))
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "HISTORY_STATES" for t in targets):
                assert isinstance(node.value, ast.Dict)
                ids.update(id(k) for k in node.value.keys if k is not None)
    return ids


def test_no_state_string_literals_in_services() -> None:
    found: list[str] = []
    for path in _modules():
        # the UI contract: typed Literals of outcome names
        if path.name in ("api.py", "api_business.py"):
            continue
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree) | _contract_names(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant) and isinstance(node.value, str)
                and node.value in STATE_WORDS and id(node) not in skip
            ):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert found == []


def test_the_funding_mode_is_looked_at_in_one_place() -> None:
    users = [
        p.name for p in _modules()
        if "FundingMode" in p.read_text() or "funding_mode" in p.read_text()
    ]
    assert users == ["funding.py"]


def test_state_changes_go_through_the_step_table() -> None:
    """Only ``outcomes.move`` calls the storage transition; it refuses a source
    the step does not have."""
    callers = [p.name for p in _modules() if ".activations.transition(" in p.read_text()]
    assert callers == ["outcomes.py"]
    with pytest.raises(ValueError):
        # No storage needed: the table refuses it first.
        import asyncio

        asyncio.run(move(None, 1, Step.REFUND, only_from=ActivationState.WAITING))  # type: ignore[arg-type]
    assert ActivationState.WAITING not in TRANSITIONS[Step.REFUND].sources


class _Top(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 5, 8, 12, 30])
@pytest.mark.parametrize(("base", "cap"), [(5.0, 120.0), (5.0, 300.0), (10.0, 300.0),
                                          (5.0, 600.0)])
def test_one_backoff_the_ceiling_of_the_clients(attempt: int, base: float, cap: float) -> None:
    assert backoff(attempt, base, cap) == jittered_backoff(attempt, _Top(), base=base, cap=cap)
    assert backoff(attempt) == jittered_backoff(attempt, _Top(), base=5.0, cap=300.0)


def test_no_private_backoff_copies() -> None:
    assert [p.name for p in _modules() if "def _backoff" in p.read_text()] == []


def test_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in _modules()}
    # api.py is the UI contract (values, errors, the documented Protocol): the
    # limit of bot/ applies to it, not the services' one.
    assert sizes.pop("api.py") <= 600
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
