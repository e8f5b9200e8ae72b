"""pytest plugin for ``python -m tests`` (``-p tests.schedule``): the slowest tests
start first, one per pytest-xdist worker.

xdist's ``load`` scheduling hands each worker a run of consecutive tests. Collection
order put the benchmark smoke run (~2 min), the kill -9 soak (~2.5 min) and the other
tests/bench tests into one worker's first run, one after the other: that worker
finished minutes after the rest (a run of ~5 min was ~2 min of one worker alone).
Most of these tests wait on real time (bot subprocesses, Telegram's pacing, the
soak's kills), so started first, side by side, they overlap with everything else.

This plugin moves :data:`SLOW` to the front, interleaved with the other tests (slow,
other, slow, other, ...), and ``python -m tests`` passes ``--maxschedchunk 2``, so
that each worker's first two tests hold one slow test. Only the order changes; the
list is a hint (a missing id is ignored). Tests of a module that rely on file order
(tests/bench/test_fuzz.py) are not in it.
"""

from __future__ import annotations

import pytest

# Node id prefixes, slowest first (measured: python -m tests --durations=25).
SLOW = (
    "tests/bench/test_soak_smoke.py::test_soak_with_kills_keeps_every_invariant",
    "tests/bench/test_bench_smoke.py::test_tiny_run_of_every_benchmark_builds_the_table",
    "tests/services/test_load.py::test_300_waiting_on_one_account",
    "tests/daisysim/test_stateful.py",
    "tests/test_health_checks.py::test_healthz_503_while_get_updates_fails_then_200",
    "tests/e2e/test_browser.py",
    "tests/e2e/test_ban.py::test_a_banned_user_is_refused_everywhere",
    "tests/test_webhook.py::test_webhook_mode_healthz_follows_telegrams_webhook_info",
    "tests/sandbox/test_packaging.py",
    "tests/bench/test_ownkey_scale_smoke.py",
    "tests/e2e/test_accounts.py::test_operator_wallet_admin_credit_and_history",
    "tests/e2e/test_broadcast.py::test_broadcast_to_1000_users",
    "tests/bench/test_bench_smoke.py::test_engine_polls_many_activations_without_a_429",
    "tests/e2e/test_flood_control.py::test_a_storm_on_the_users_chat",
    "tests/e2e/test_orders.py::test_auto_expiry_refunds",
    "tests/services/test_lifecycle.py::test_auto_expiry_refunds_once",
    "tests/test_kill_mid_purchase.py",
    "tests/services/test_restart.py::test_many_restarts_exactly_once",
    "tests/services/test_lost_purchase.py::test_purchase_finished_after_the_timeout",
    "tests/test_shutdown.py::test_sigterm_during_a_429_storm",
)


def _rank(nodeid: str) -> int | None:
    for i, prefix in enumerate(SLOW):
        if nodeid.startswith(prefix):
            return i
    return None


def interleave(items: list[pytest.Item]) -> list[pytest.Item]:
    """:data:`SLOW` first, each entry's tests together (a module fixture is set up
    once), every entry followed by one other test."""
    groups: list[list[pytest.Item]] = [[] for _ in SLOW]
    others: list[pytest.Item] = []
    for item in items:
        rank = _rank(item.nodeid)
        (others if rank is None else groups[rank]).append(item)
    out: list[pytest.Item] = []
    rest = iter(others)
    for group in groups:
        if group:
            out += group
            out += [next(rest)] if len(out) < len(items) else []
    out += list(rest)
    return out


@pytest.hookimpl(trylast=True)  # after every plugin that deselects or skips
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = interleave(items)
