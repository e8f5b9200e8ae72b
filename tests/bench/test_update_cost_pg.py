"""CI variant of ``python -m tests.bench.update_cost_pg``: tiny sizes on both backends,
invariants only (no timing asserted)."""

from __future__ import annotations

import math

from tests.bench import update_cost_pg
from tests.bench.update_cost import CostConfig

TINY = CostConfig(users=8, walkers=4, steps=2, concurrency=4, db_users=50, active=10,
                  paced_rate=5.0, paced_seconds=1.0)


async def test_the_same_workload_runs_on_sqlite_and_postgresql(postgres_server: str) -> None:
    report = await update_cost_pg.run(TINY, server_url=postgres_server, seed=2)
    (sqlite,), (pg,) = report.of("sqlite"), report.of("postgresql")
    for run in (sqlite, pg):
        assert run.upd.unanswered == 0 and run.upd.bot_error_lines == 0, run.upd.errors
        assert run.upd.updates == TINY.users * 2 + TINY.walkers * TINY.steps
        assert run.upd.paced_latencies_ms, run.backend
        assert run.upd.bot_cpu > 0
    # The bot really ran on the PostgreSQL database (one connection per process) and
    # the server's CPU was read; SQLite's database work is inside the bot process.
    assert pg.backends_seen == 1
    assert not math.isnan(pg.server_cpu) and pg.server_cpu >= 0
    assert sqlite.server_ms == 0.0
    text = update_cost_pg.markdown(report)
    assert text.startswith("| per update | SQLite | PostgreSQL |")
    assert "fsync=" in text and "n/a" not in text.split("\n")[2], text
