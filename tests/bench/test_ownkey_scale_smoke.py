"""CI variant of the own-key scale benchmark (:mod:`tests.bench.ownkey_scale`):
tiny sizes, invariants only (one pool for every key, the socket bound, every
number restored, every account polled, no 429), never timings."""

from __future__ import annotations

from tests.bench import ownkey_scale


async def test_shared_pool_run_keeps_the_invariants() -> None:
    r = await ownkey_scale.run_scale(30, mode="shared", rtt=0.01, pass_limit=4.0)
    assert r.errors == []
    assert r.clients == 30 and r.pools == 1
    assert r.tracked == 90
    assert 1 <= r.sockets_max <= 64
    assert r.full_pass and r.rate_limited == 0
    assert r.checks >= 30


async def test_per_key_run_is_the_before() -> None:
    """The "before" of the same run: one pool (and socket) per key."""
    r = await ownkey_scale.run_scale(6, mode="per-key", rtt=0.01, pass_limit=3.0)
    assert r.errors == []
    assert r.clients == 6 and r.pools == 6
    assert r.full_pass and r.rate_limited == 0
