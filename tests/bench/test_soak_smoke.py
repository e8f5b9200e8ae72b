"""CI variant of the kill -9 soak: ~15 purchases, ~6 Stars top-ups, 8 kills (every
other one right after an OTP message went out, the others right after a pre-checkout
answer, mid-purchase, mid-poll), 10 % upstream faults; every invariant must hold.

The full run is ``python -m tests.bench.soak --purchases 120 --kills 12`` (also as
the ``soak``-marked test below: ``pytest -m soak tests/bench``).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.bench import soak


async def test_soak_with_kills_keeps_every_invariant() -> None:
    report = await soak.run_soak(soak.CI)
    text = report.render()
    assert sum(report.kills.values()) >= soak.CI.kills, text
    assert report.restarts >= soak.CI.kills, text
    assert report.purchases >= soak.CI.purchases, text
    assert report.codes_delivered > 0 and report.refunded_upstream > 0, text
    assert report.lost_codes == 0, text
    assert report.codes_pushed_twice == 0, text
    assert report.unrefunded == 0, text
    assert report.double_purchases == 0, text
    assert report.wallet_mismatches == 0, text
    assert report.undelivered_events == 0 and report.open_activations == 0, text
    assert report.crashes == 0, text
    assert report.topups_paid > 0 and report.topups_credited == report.topups_paid, text
    assert report.lost_credits == 0 and report.double_credits == 0, text
    assert report.ok, text


@pytest.mark.soak
async def test_full_soak() -> None:
    cfg = replace(soak.SoakConfig(), purchases=120, kills=12)
    report = await soak.run_soak(cfg, log=print)
    print(report.render())
    assert sum(report.kills.values()) >= cfg.kills
    assert report.ok, report.render()
