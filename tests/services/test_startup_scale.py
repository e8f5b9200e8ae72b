"""Start-up with many own-key accounts (issue 14, item 4): the accounts of all
open numbers are read with one query (not one statement per account), and
every restored client shares the engine's one connection pool."""

from __future__ import annotations

from pathlib import Path

from bot.clock import VirtualClock
from bot.config import Settings
from bot.sandbox.simulator import Simulator
from bot.services.engine import Engine
from storage.db import Database
from tests.bench.ownkey_scale import populate
from tests.services.conftest import FERNET


async def start_and_count(tmp_path: Path, accounts: int) -> tuple[list[str], Engine]:
    sim = Simulator(VirtualClock(), seed=1)
    path = tmp_path / f"bot-{accounts}.sqlite3"
    db = await Database.open(path)
    populate(path, sim, accounts, 3, FERNET)
    settings = Settings(
        _env_file=None, funding_mode="own_key", encryption_key=FERNET,
        daisysim_base_url="http://127.0.0.1:9/api/v1/server7", database_path=str(path),
    )
    engine = Engine(settings, clock=sim.clock, db=db)
    statements: list[str] = []
    await db._conn.set_trace_callback(statements.append)
    await engine.start()
    await db._conn.set_trace_callback(None)  # type: ignore[arg-type]
    return statements, engine


async def test_start_reads_accounts_at_once_whatever_their_number(tmp_path: Path) -> None:
    few, eng_few = await start_and_count(tmp_path, 3)
    many, eng_many = await start_and_count(tmp_path, 40)
    try:
        assert len(eng_many.inspect.tracked()) == 120
        clients = eng_many.inspect.clients()
        assert len(clients) == 40
        assert {id(c.pool) for c in clients} == {id(eng_many.pool())}
        per_account = [s for s in many if "FROM accounts WHERE id = " in s]
        assert per_account == []
        assert sum("FROM accounts WHERE id IN" in s for s in many) == 1
        # Nothing else at start-up costs a statement per account or per number.
        assert len(many) == len(few), sorted(set(many) - set(few))[:5]
    finally:
        for eng in (eng_few, eng_many):
            db = eng.database
            await eng.close()
            await db.close()
