"""CI variant of ``python -m tests.bench.pg_driver``: a few executions per statement
and driver, invariants only (no timing asserted)."""

from __future__ import annotations

from tests.bench import pg_driver


async def test_every_driver_runs_every_statement(postgres_server: str) -> None:
    report = await pg_driver.run(postgres_server, n=20, rounds=1, rows=60, open_rows=6,
                               warmup=2)
    measured = {driver for _, driver in report.results}
    # asyncpg and the bot's own layers always; the others when the bench extra is in
    assert {"asyncpg", "asyncpg-prepared", "bot-pg", "bot-sqlite"} <= measured
    assert measured | set(report.skipped) == set(pg_driver.DRIVERS)
    for (statement, driver), samples in report.results.items():
        expected = 20 if statement != "scan" else 2
        assert len(samples.cpu_us) == len(samples.wall_us) == expected, (statement, driver)
    assert report.updates_matched is True  # no guarded UPDATE measured a no-op
    text = pg_driver.markdown(report)
    assert "| transaction | bot-pg |" in text and "fsync=" in text, text
    assert pg_driver.verdict(report).startswith("Client CPU of one update"), text


def test_placeholders_are_rewritten_per_driver() -> None:
    sql = "UPDATE t SET a = ? WHERE id = ? AND s IN (?)"
    assert pg_driver.numbered(sql) == "UPDATE t SET a = $1 WHERE id = $2 AND s IN ($3)"
    assert pg_driver.named(sql) == "UPDATE t SET a = :p1 WHERE id = :p2 AND s IN (:p3)"
    assert pg_driver.pyformat(sql) == "UPDATE t SET a = %s WHERE id = %s AND s IN (%s)"
