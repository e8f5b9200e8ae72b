"""CI variant of the failover soak (issue 15): two bot processes on one PostgreSQL
database, the leader killed with SIGKILL mid-purchase, right after an OTP push and
mid-poll, and its database connection terminated once mid-purchase (it must exit 75);
each time the follower takes over and the victim comes back as the follower. Every
invariant of the single-process soak must hold, plus: no double refund, no two
pollers at once, no two leaders at once, every takeover within the limit.

Skips without PostgreSQL binaries (fails with DAISYBOT_REQUIRE_POSTGRES=1, as
``python -m tests`` sets). The full run: ``python -m tests.bench.failover_soak``
(also the ``soak``-marked test below: ``pytest -m soak tests/bench``).
"""

from __future__ import annotations

import pytest

from tests.bench import failover_soak as fs


def check(report: fs.FailoverReport, cfg: fs.FailoverConfig) -> None:
    text = report.render()
    assert sum(report.kills.values()) >= cfg.kills, text
    assert report.restarts >= cfg.kills, text
    assert len(report.takeovers) >= cfg.kills, text
    assert report.purchases >= cfg.soak.purchases, text
    assert report.codes_delivered > 0 and report.refunded_upstream > 0, text
    assert report.lost_codes == 0, text
    assert report.codes_pushed_twice == 0, text
    assert report.double_refunds == 0 and report.unrefunded == 0, text
    assert report.double_purchases == 0, text
    assert report.wallet_mismatches == 0, text
    assert report.undelivered_events == 0 and report.open_activations == 0, text
    assert report.poll_conflicts == 0 and report.two_leaders == 0, text
    assert report.slow_takeovers == 0 and report.crashes == 0, text
    assert report.lost_credits == 0 and report.double_credits == 0, text
    assert report.ok, text


async def test_failover_soak_keeps_every_invariant(postgres_url: str) -> None:
    report = await fs.run_failover_soak(fs.CI, postgres_url)
    print(report.render())
    check(report, fs.CI)
    assert report.fences >= 1, report.render()


@pytest.mark.soak
async def test_full_failover_soak(postgres_url: str) -> None:
    report = await fs.run_failover_soak(fs.FULL, postgres_url, log=print)
    print(report.render())
    check(report, fs.FULL)
