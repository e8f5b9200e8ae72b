"""CI variant of ``python -m tests.bench.update_cost_pg``: tiny sizes, PostgreSQL only
(the SQLite side is :func:`tests.bench.app_bench.run_updates` as it is, which
test_bench_smoke.py runs), invariants only (no timing asserted)."""

from __future__ import annotations

import math

from tests.bench import update_cost_pg
from tests.bench.update_cost import CostConfig

TINY = CostConfig(users=8, walkers=4, steps=2, concurrency=4, db_users=50, active=10,
                  paced_rate=5.0, paced_seconds=1.0)


async def test_the_update_cost_workload_runs_on_postgresql(postgres_server: str) -> None:
    report = await update_cost_pg.run(TINY, server_url=postgres_server, seed=2,
                                      backends=("postgresql",))
    (pg,) = report.of("postgresql")
    assert pg.upd.unanswered == 0 and pg.upd.bot_error_lines == 0, pg.upd.errors
    assert pg.upd.updates == TINY.users * 2 + TINY.walkers * TINY.steps
    assert pg.upd.paced_latencies_ms and pg.upd.bot_cpu > 0
    # The bot really ran on that PostgreSQL database, through one connection, and the
    # server's CPU was read from /proc (the cluster runs on this machine).
    assert pg.backends_seen == 1
    assert not math.isnan(pg.server_cpu) and pg.server_cpu >= 0
    assert not math.isnan(pg.total_ms)
    text = update_cost_pg.markdown(report)
    assert text.startswith("| per update | SQLite | PostgreSQL |"), text
    assert f"| CPU of the bot process | n/a | {pg.bot_ms:.2f} ms |" in text, text
    assert "fsync=" in text, text
