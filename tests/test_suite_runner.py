"""``python -m tests`` (tests/__main__.py): which passes run on which backend, and the
one PostgreSQL cluster of a run is stopped however the run ends."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests.__main__ as runner
from tests.pgcluster import find_bin_dir

SUITES = list(runner.PG_SUITES)
PLUGIN = list(runner.PG_PLUGIN)


@pytest.fixture(autouse=True)
def _no_backends_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAISYBOT_TEST_BACKENDS", raising=False)


def test_no_arguments_run_everything_on_sqlite_then_the_database_suites_on_postgresql() -> None:
    assert runner.plan([]) == [("sqlite", []), ("postgresql", [*PLUGIN, *SUITES])]
    # options alone select nothing: both passes, the options on both
    assert runner.plan(["-x", "-n", "1"]) == [
        ("sqlite", ["-x", "-n", "1"]), ("postgresql", [*PLUGIN, "-x", "-n", "1", *SUITES])]


def test_a_selection_runs_on_sqlite_only_unless_backends_are_asked_for() -> None:
    assert runner.plan(["tests/e2e", "-k", "foo"]) == [("sqlite", ["tests/e2e", "-k", "foo"])]
    assert runner.plan(["-k", "foo"]) == [("sqlite", ["-k", "foo"])]
    assert runner.plan(["--backends", "both", "tests/e2e", "-k", "foo"]) == [
        ("sqlite", ["tests/e2e", "-k", "foo"]), ("postgresql", [*PLUGIN, "tests/e2e", "-k", "foo"])]
    assert runner.plan(["--backends=pg", "tests/e2e/test_buy.py"]) == [
        ("postgresql", [*PLUGIN, "tests/e2e/test_buy.py"])]
    assert runner.plan(["--backends", "sqlite"]) == [("sqlite", [])]


def test_the_backends_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAISYBOT_TEST_BACKENDS", "sqlite,postgresql")
    assert runner.plan(["tests/services"]) == [
        ("sqlite", ["tests/services"]), ("postgresql", [*PLUGIN, "tests/services"])]
    assert runner.plan(["--backends", "sqlite", "tests/services"]) == [
        ("sqlite", ["tests/services"])]  # the flag wins


def test_unknown_backends_are_refused() -> None:
    with pytest.raises(SystemExit, match="unknown backend 'mysql'"):
        runner.plan(["--backends", "mysql"])
    with pytest.raises(SystemExit, match="needs a value"):
        runner.plan(["--backends"])


@pytest.mark.skipif(find_bin_dir() is None, reason="no PostgreSQL binaries")
def test_the_cluster_is_exported_and_stopped_even_when_the_run_fails(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    with pytest.raises(KeyboardInterrupt), runner._cluster(env):
        url = env["DAISYBOT_TEST_POSTGRES"]
        socket_dir = Path(url.split("host=", 1)[1].split("&", 1)[0])
        assert socket_dir.is_dir()
        raise KeyboardInterrupt  # Ctrl-C (SIGTERM unwinds the same way)
    assert not socket_dir.exists()  # stopped, its directory removed


@pytest.mark.parametrize("mode", ["together", "sequential"])
def test_a_failing_pass_fails_the_run_and_the_other_pass_still_runs(
    mode: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[tuple[str, list[str], str]] = []
    codes = {"sqlite": 1, "postgresql": 0}
    popen = subprocess.Popen

    def fake_popen(argv: list[str], *, env: dict[str, str], **kw: object) -> object:
        backend = env["DAISYBOT_TEST_BACKEND"]
        ran.append((backend, argv[3:], env["DAISYBOT_REQUIRE_POSTGRES"]))
        code = codes[backend]
        return popen([sys.executable, "-c", f"print('{backend} out'); raise SystemExit({code})"],
                     **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(runner.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(runner, "_ensure_packages", lambda want_postgresql: None)
    monkeypatch.setattr(runner, "_cluster", contextlib.nullcontext)
    monkeypatch.delenv("DAISYBOT_REQUIRE_POSTGRES", raising=False)
    monkeypatch.setenv("DAISYBOT_TEST_PASSES", mode)
    assert runner.main([]) == 1
    sched = list(runner.SCHEDULE)
    assert ran == [("sqlite", ["-n", "3" if mode == "together" else "2", "-q", *sched], "1"),
                   ("postgresql", ["-n", "2", "-q", *sched, *PLUGIN, *SUITES], "1")]
    out = capsys.readouterr().out
    assert "sqlite FAILED, postgresql ok" in out
    if mode == "together":  # the second pass's output is shown when it is over
        assert "postgresql out" in out.split("postgresql pass output:", 1)[1]
    codes.update(sqlite=0, postgresql=2)
    assert runner.main(["--backends", "both", "tests/e2e"]) == 2
    codes.update(postgresql=0)
    assert runner.main(["--backends", "both", "tests/e2e"]) == 0


def test_no_tests_collected_is_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    popen = subprocess.Popen

    def fake_call(argv: list[str], *, env: dict[str, str], **kw: object) -> object:
        calls.append(argv)
        assert env["DAISYBOT_TEST_BACKEND"] in ("sqlite", "postgresql")
        return popen([sys.executable, "-c", "raise SystemExit(5)"])

    monkeypatch.setattr(runner.subprocess, "Popen", fake_call)
    assert runner._pytest("postgresql", ["tests/telegram"], {}) == 0
    sched = list(runner.SCHEDULE)
    assert calls[0][3:] == ["-n", "2", "-q", *sched, "tests/telegram"]
    assert runner._pytest("sqlite", ["-n", "1", "tests/x"], {}) == 0
    assert calls[1][3:] == ["-q", *sched, "-n", "1", "tests/x"]


def test_the_postgresql_pass_leaves_out_only_tests_without_a_database(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import pytest\n"
        "@pytest.fixture\ndef make_harness(): return 'harness'\n"
        "@pytest.fixture\ndef h(make_harness): return make_harness\n"
        "@pytest.fixture\ndef backend(): return 'postgresql'\n"
        "@pytest.fixture\ndef postgres_url(): return 'postgresql://'\n"
    )
    (tmp_path / "test_mixed.py").write_text(
        "def test_pure_unit(): pass\n"
        "def test_through_the_harness(h): pass\n"
        "def test_storage(backend): pass\n"
        "def test_always_on_postgresql(postgres_url): pass\n"
    )
    root = Path(__file__).parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.pg_pass", "--pg-pass-report",
         "-p", "no:xdist", "-p", "no:cacheprovider", "-q", "-o", "addopts=", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "2 passed, 2 deselected" in out, out
    for name in ("test_pure_unit", "test_always_on_postgresql"):
        assert f"leaves out (same as in the SQLite pass): test_mixed.py::{name}" in out, out


def test_the_slow_tests_start_first_one_per_worker_and_nothing_is_lost() -> None:
    from tests.schedule import SLOW, interleave

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    soak, bench = SLOW[0], SLOW[1]
    names = ["tests/a.py::t1", f"{bench}", "tests/a.py::t2", "tests/sandbox/test_packaging.py::x",
             "tests/sandbox/test_packaging.py::y", f"{soak}", "tests/a.py::t3"]
    items = [Item(n) for n in names]
    out = [i.nodeid for i in interleave(items)]  # type: ignore[arg-type]
    assert sorted(out) == sorted(names)
    assert out[:4] == [soak, "tests/a.py::t1", bench, "tests/a.py::t2"]
    # a module's slow tests stay together (its module fixture is set up once)
    assert out[4:6] == ["tests/sandbox/test_packaging.py::x", "tests/sandbox/test_packaging.py::y"]
