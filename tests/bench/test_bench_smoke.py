"""CI variant of the benchmarks: tiny sizes, invariants only (no timing asserted).

The full run is ``python -m tests.bench.benchmarks --full`` (also as the
``bench``-marked test at the end of this file: ``pytest -m bench tests/bench``).
"""

from __future__ import annotations

import pytest

from tests.bench import app_bench, benchmarks, polling
from tests.bench.common import Row, Table

TINY = benchmarks.Config(
    name="tiny", minutes=2.0, ladder_ours=(15, 20), ladder_baseline=(15, 16), share_codes=4,
    users=8, walkers=4, steps=2, concurrency=4, paced_rate=5.0, paced_seconds=1.0,
    db_users=50, active=10, flood=20, flood_slow=1.5, flood_what_if=False,
    flood_users=6, flood_per_user=3, latency_sizes=(15,), pass_accounts=6, pass_rtts=(0.1,),
)


def row(table: Table, prefix: str) -> Row:
    return next(r for r in table.rows if r.metric.startswith(prefix))


async def test_reference_flow_ceiling_is_fifteen_activations() -> None:
    """One check-all per activation per 15 s: 15 fit the 60/min budget, 16 do not."""
    at15 = await polling.run_baseline(15, minutes=2.0, seed=3)
    assert at15.rate_limited == 0
    assert at15.all_delivered and at15.duplicates == 0
    at16 = await polling.run_baseline(16, minutes=2.0, seed=3)
    assert at16.rate_limited > 0  # the simulator refused some polls
    assert not at16.sustained


async def test_engine_polls_many_activations_without_a_429() -> None:
    """Above the reference flow's ceiling: zero 429, every code pushed exactly once,
    and far fewer check requests per code than the reference flow."""
    ours = await polling.run_ours(40, minutes=2.0, seed=3)
    assert ours.rate_limited == 0
    assert ours.delivered == 40 and ours.pushed == 40
    assert ours.duplicates == 0 and ours.wrong == 0
    assert ours.check_requests > 0
    base = await polling.run_baseline(15, minutes=2.0, seed=3)
    assert ours.checks_per_otp < base.checks_per_otp  # batching, spare polls included


async def test_tiny_run_of_every_benchmark_builds_the_table() -> None:
    table, raw = await benchmarks.run(TINY, seed=2, log=False)
    text = table.markdown()
    assert text.startswith("| metric | ours | baseline")
    # Invariants only (timings are printed, never asserted).
    top = row(table, "Highest load tried: 20 waiting")
    assert top.met is True, top  # ours: 0×429 and every code pushed at the highest load
    assert row(table, "Check requests per delivered OTP (15").met is True
    for reading in ("documented", "cache-bound"):  # both readings reported, 0×429 both
        latency = row(table, f"OTP latency p50 / p99, {reading} reading, 15 waiting")
        assert "(0×429" in latency.ours and "(0×429" in latency.baseline, latency
    one_pass = row(table, "One pass of 6 own-key accounts' polls")
    assert "(6/6, 0×429)" in one_pass.ours, one_pass
    assert row(table, "Unanswered updates").ours == "0 / 0", raw
    assert "(10 restored)" in row(table, "Startup restore").ours
    assert row(table, "… the flooding user").met is True, raw  # bounded queue, one note
    assert "updates:" in raw and "share:" in raw
    assert row(table, "… the flood drained").met is True, raw
    assert "first contact (TelegramRateLimiter)" in raw and "(AIORateLimiter)" in raw
    # issue 14: update cost per transport (both runs answered everything), the flood rows
    assert "cost httpx/64:" in raw and "unanswered 0, ERROR lines 0" in raw, raw
    assert row(table, "Bot CPU per update").baseline != "n/a", raw
    floods = [r for r in table.rows if r.metric.startswith("Another user's answer p50")]
    assert len(floods) == 2 and all(r.met is True for r in floods), raw


async def test_bot_share_every_code_pushed_once() -> None:
    share = await app_bench.run_bot_share(3, minutes=2.0, seed=5)
    assert share.delivered == 3 and share.pushed == 3
    assert share.duplicates == 0 and share.rate_limited == 0
    assert len(share.share_ms) == 3 and len(share.virtual_latencies) == 3


@pytest.mark.bench
async def test_full_benchmarks() -> None:
    """The full run (minutes): prints the table; asserts only the invariants."""
    table, raw = await benchmarks.run(benchmarks.FULL, seed=1, log=True)
    print(table.markdown())
    assert row(table, "Highest load tried").ours.startswith("0×429"), raw
    assert row(table, "Unanswered updates").ours.startswith("0 /"), raw
