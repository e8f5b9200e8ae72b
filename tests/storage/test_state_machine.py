"""The SQL constraints of ``activations`` checked against the one table of
transitions (:mod:`bot.domain.activation`): the live schema's CHECK constraint,
"final is final" trigger and open-activations index list exactly the domain's
state groups, every allowed move can be applied to a real database, and every
other move is refused (by the repository; from a final state by the trigger too).
On both backends (``repos``: tests/storage/conftest.py).
"""

from __future__ import annotations

import re
from collections import deque
from decimal import Decimal
from itertools import count

import pytest

from bot.domain.activation import (
    FINAL_STATES,
    OPEN_STATES,
    TRANSITIONS,
    ActivationState,
    allowed,
)
from storage import IntegrityError
from storage.activations import check_transition
from storage.db import Database
from storage.repositories import Repositories

S = ActivationState
NOW = 1_767_225_600.0
ALL_PAIRS = {(a, b) for a in S for b in S}


# The definition of a schema object as PostgreSQL prints it back.
_PG_DEFINITION = {
    "check": "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = ?",
    "trigger": "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = ?",
    "index": "SELECT pg_get_indexdef(CAST(CAST(? AS text) AS regclass))",
}


async def _schema(db: Database, kind: str, name: str) -> str:
    if db.dialect == "sqlite":
        sql = await db.fetchval(
            "SELECT sql FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)
        )
    else:
        sql = await db.fetchval(_PG_DEFINITION[kind], (name,))
    assert sql, f"{kind} {name} is not in the live schema"
    return " ".join(str(sql).split())


def _quoted(fragment: str) -> list[str]:
    return re.findall(r"'([^']*)'", fragment)


def _group(pattern: str, sql: str) -> list[str]:
    match = re.search(pattern, sql)
    assert match is not None, f"{pattern!r} not found in {sql!r}"
    return _quoted(match.group(1))


# --------------------------------------------------------------------------- the live schema


async def test_state_check_constraint_lists_exactly_the_enum(repos: Repositories) -> None:
    if repos.db.dialect == "sqlite":
        sql = await _schema(repos.db, "table", "activations")
        states = _group(r"state TEXT NOT NULL CHECK \(state IN \(([^)]*)\)\)", sql)
    else:
        sql = await _schema(repos.db, "check", "activations_state_check")
        states = _group(r"^CHECK \(\(state = ANY \(ARRAY\[([^]]*)\]\)\)\)$", sql)
    assert len(states) == len(set(states))
    assert set(states) == {s.value for s in S}


async def test_final_is_final_trigger_lists_exactly_the_final_states(
    repos: Repositories,
) -> None:
    sql = await _schema(repos.db, "trigger", "activations_final_is_final")
    if repos.db.dialect == "sqlite":
        states = _group(r"WHEN OLD\.state IN \(([^)]*)\)", sql)
        assert "BEFORE UPDATE OF state ON activations" in sql
        assert "NEW.state <> OLD.state" in sql and "RAISE(ABORT" in sql
    else:
        states = _group(r"WHEN \(\(\(old\.state = ANY \(ARRAY\[([^]]*)\]\)\)", sql)
        assert "BEFORE UPDATE OF state ON public.activations FOR EACH ROW" in sql
        assert "(new.state <> old.state)" in sql
        body = await repos.db.fetchval(
            "SELECT prosrc FROM pg_proc WHERE proname = 'activations_final_is_final'"
        )
        assert "RAISE EXCEPTION" in str(body)
    assert len(states) == len(set(states))
    assert set(states) == {s.value for s in FINAL_STATES}


async def test_open_index_lists_exactly_the_open_states(repos: Repositories) -> None:
    sql = await _schema(repos.db, "index", "activations_open")
    pattern = (
        r"WHERE state IN \(([^)]*)\)" if repos.db.dialect == "sqlite"
        else r"WHERE \(state = ANY \(ARRAY\[([^]]*)\]\)\)$"
    )
    states = _group(pattern, sql)
    assert len(states) == len(set(states))
    assert set(states) == {s.value for s in OPEN_STATES}


async def test_open_queries_use_the_open_index(repos: Repositories) -> None:
    """The open-state group is written into the SQL from the domain constant, so
    the partial index defined on the same states is usable."""
    from storage.base import literals

    query = f"SELECT * FROM activations WHERE state IN ({literals(OPEN_STATES)})"
    if repos.db.dialect == "sqlite":
        plan = await repos.db.fetchall(f"EXPLAIN QUERY PLAN {query}")
    else:
        # An empty table is scanned whatever the indexes: ask for an index if any fits.
        async with repos.db.transaction():
            await repos.db.execute("SET LOCAL enable_seqscan = off")
            plan = await repos.db.fetchall(f"EXPLAIN {query}")
    assert any("activations_open" in str(r[-1]) for r in plan), [tuple(r) for r in plan]


def test_state_groups_agree_with_the_transitions_table() -> None:
    pairs = allowed()
    sources = {a for a, _ in pairs}
    # Final states are exactly those with no way out; every state is reachable.
    assert {s for s in S if s not in sources} == set(FINAL_STATES)
    assert {b for _, b in pairs} | {S.PURCHASING} == set(S)
    assert set(OPEN_STATES) == set(S) - set(FINAL_STATES)
    assert all(t.target not in t.sources for t in TRANSITIONS.values())


# --------------------------------------------------------------------------- a real database

_ids = count(1)


async def _new(repos: Repositories) -> int:
    n = next(_ids)
    await repos.users.ensure(1, NOW)
    account = await repos.accounts.active_operator()
    account_id = (
        account.id
        if account is not None
        else await repos.accounts.insert(
            kind="operator", owner_user_id=None, key_hash="h-sm", key_encrypted=None,
            key_masked="op…", email=None, now=NOW,
        )
    )
    return await repos.activations.insert_purchasing(
        user_id=1, account_id=account_id, service_code="sb_wa", service_name="WhatsApp 3",
        provider_id=None, price=Decimal("1.00"), request_id=f"sm-{n}", sent_at=NOW,
    )


def _fields(target: ActivationState, n: int) -> dict[str, object]:
    """What the schema's other CHECKs need for the target state."""
    if target is S.WAITING:
        return {"remote_id": f"remote-{n}", "phone": "+15550000000"}
    if target is S.COMPLETED:
        return {"code": "123456"}
    return {}


def _path_to(state: ActivationState) -> list[tuple[ActivationState, ActivationState]]:
    """The shortest chain of allowed moves from ``purchasing`` to ``state``."""
    pairs = allowed()
    queue: deque[tuple[ActivationState, list[tuple[ActivationState, ActivationState]]]]
    queue = deque([(S.PURCHASING, [])])
    seen = {S.PURCHASING}
    while queue:
        here, path = queue.popleft()
        if here is state:
            return path
        for a, b in sorted(pairs):
            if a is here and b not in seen:
                seen.add(b)
                queue.append((b, [*path, (a, b)]))
    raise AssertionError(f"{state} is not reachable from purchasing")


async def _activation_in(repos: Repositories, state: ActivationState) -> int:
    act = await _new(repos)
    for a, b in _path_to(state):
        assert await repos.activations.transition(act, [a], b, **_fields(b, act))
    row = await repos.activations.get(act)
    assert row is not None and row.state == state
    return act


@pytest.mark.parametrize(("source", "target"), sorted(allowed()))
async def test_every_allowed_move_applies(
    repos: Repositories, source: ActivationState, target: ActivationState
) -> None:
    act = await _activation_in(repos, source)
    assert await repos.activations.transition(act, [source], target, **_fields(target, act))
    row = await repos.activations.get(act)
    assert row is not None and row.state is target  # rows carry the enum member
    # Applied once: the guard sees the row moved on.
    assert not await repos.activations.transition(act, [source], target, **_fields(target, act))


@pytest.mark.parametrize(("source", "target"), sorted(ALL_PAIRS - allowed()))
async def test_every_other_move_is_refused(
    repos: Repositories, source: ActivationState, target: ActivationState
) -> None:
    act = await _activation_in(repos, source)
    with pytest.raises(ValueError, match="not allowed"):
        await repos.activations.transition(act, [source], target, **_fields(target, act))
    # One refused source refuses the whole call, even next to an allowed one.
    others = [a for a, b in allowed() if b is target]
    if others:
        with pytest.raises(ValueError, match="not allowed"):
            await repos.activations.transition(act, [others[0], source], target)
    row = await repos.activations.get(act)
    assert row is not None and row.state == source
    if source in FINAL_STATES and target is not source:
        # The database refuses it too, whoever writes it.
        with pytest.raises(IntegrityError, match="final state"):
            await repos.db.execute(
                "UPDATE activations SET state = ?, code = COALESCE(code, '1') WHERE id = ?",
                (target.value, act),
            )
        row = await repos.activations.get(act)
        assert row is not None and row.state == source


async def test_a_refused_move_never_reaches_the_database(repos: Repositories) -> None:
    """Checked before any SQL: even for a row that does not exist, and for an
    unknown state name."""
    with pytest.raises(ValueError, match="not allowed"):
        await repos.activations.transition(999, [S.PURCHASING], S.COMPLETED, code="1")
    with pytest.raises(ValueError):
        await repos.activations.transition(999, ["purchasing"], "bogus")
    with pytest.raises(ValueError):
        await repos.activations.transition(999, [], S.WAITING)
    assert check_transition(["waiting", S.CANCELLING], "completed") == (S.WAITING, S.CANCELLING)
