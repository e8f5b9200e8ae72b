"""Run the whole test suite: ``python -m tests [--backends B] [pytest args]``.

This is the README's test command (and what ``.ci/run`` runs). It makes sure the
system packages the suite needs are present (Debian's ``chromium`` for the browser
tests, Debian's ``postgresql`` server binaries for the PostgreSQL tests), installing
them with apt when running as root, starts ONE throwaway PostgreSQL cluster for the
run (:func:`tests.pgcluster.start_cluster`: an unprivileged user, a unix socket in
its own temp dir) and exports its URL as ``DAISYBOT_TEST_POSTGRES`` (the
``postgres_url`` fixture makes a fresh database per test on it), then runs pytest
on both cores in two passes:

1. **SQLite**: everything (the tests that need PostgreSQL itself, e.g. the schema
   parity and the race tests of tests/storage, use the cluster here too);
2. **PostgreSQL**: :data:`PG_SUITES` again with ``DAISYBOT_TEST_BACKEND=postgresql``
   (the storage, engine and end-to-end harnesses on a fresh PostgreSQL database per
   test; tests marked ``sqlite_only`` skip). The plugin :mod:`tests.pg_pass` leaves
   out the tests there whose database the switch does not choose (units, texts, the
   planner, the browser test on the playground's SQLite, the tests of PostgreSQL
   itself): they would run exactly as in pass 1.

By default the two passes run side by side (``DAISYBOT_TEST_PASSES=together``: 3 + 2
pytest workers on the 2 cores): much of the suite waits on real time (the kill -9
soak, the benchmark smoke run, bot subprocesses starting, Telegram's pacing), so the
PostgreSQL pass fills the cores the SQLite pass leaves idle.
``DAISYBOT_TEST_PASSES=sequential`` runs them one after the other (-n 2 each).

The cluster is stopped at the end, also on failure or Ctrl-C; the exit status is
non-zero if either pass failed.

With pytest arguments (``python -m tests tests/e2e -k foo``) only that selection runs,
on SQLite alone. ``--backends`` (or ``$DAISYBOT_TEST_BACKENDS``) chooses the passes:
``sqlite``, ``postgresql``, or ``sqlite,postgresql`` (``both``); with a selection
the PostgreSQL pass runs that same selection, e.g.
``python -m tests --backends both tests/e2e -k foo``.
Without PostgreSQL binaries (and no root to install them) the PostgreSQL tests fail
(``DAISYBOT_REQUIRE_POSTGRES=1``, as CI wants); set ``DAISYBOT_REQUIRE_POSTGRES=0``
to let them skip instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
# The suites the PostgreSQL pass runs again with DAISYBOT_TEST_BACKEND=postgresql:
# everything that opens the bot's database through a harness.
PG_SUITES = ("tests/storage", "tests/services", "tests/e2e")
PG_PLUGIN = ("-p", "tests.pg_pass")
# tests.schedule: the slowest tests first, one per worker (its docstring says why)
SCHEDULE = ("-p", "tests.schedule", "--maxschedchunk", "2")
# DAISYBOT_TEST_PASSES: "together" runs the passes side by side (pytest workers each,
# see SIDE_BY_SIDE_WORKERS), "sequential" one after the other (-n 2 each).
DEFAULT_MODE = "together"
SIDE_BY_SIDE_WORKERS = {SQLITE: 3, POSTGRESQL: 2}
_ALIASES = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "postgres": POSTGRESQL, "pg": POSTGRESQL}


def _say(text: str) -> None:
    print(f"tests: {text}", flush=True)


# ------------------------------------------------------------------ system packages


def _have_postgresql() -> bool:
    from tests.pgcluster import find_bin_dir

    return find_bin_dir() is not None


def _apt_install(packages: list[str]) -> None:
    """One ``apt-get update`` and one install for every missing package (as root)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "env": env, "check": False}
    subprocess.run(["apt-get", "update", "-qq"], **quiet)  # type: ignore[call-overload]
    subprocess.run(  # type: ignore[call-overload]
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], **quiet
    )


def _ensure_packages(want_postgresql: bool) -> None:
    need_browser = not (shutil.which("chromium") or os.environ.get("DAISYBOT_SKIP_BROWSER"))
    need_pg = want_postgresql and not _have_postgresql()
    missing = (["chromium"] if need_browser else []) + (["postgresql"] if need_pg else [])
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        if need_browser:
            _say("chromium not found and cannot apt-get it; the browser test will skip")
        if need_pg:
            _say("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin) and cannot "
                 "apt-get them")
        return
    _say(f"installing Debian's {' and '.join(missing)} (apt-get)...")
    started = time.monotonic()
    _apt_install(missing)
    _say(f"apt-get done in {time.monotonic() - started:.0f} s")
    if need_browser and not shutil.which("chromium"):
        _say("chromium install failed; the browser test will skip")
    if need_pg and not _have_postgresql():
        _say("postgresql install failed")


# ------------------------------------------------------------------------ arguments


def _parse_backends(value: str) -> list[str]:
    names = [n.strip().lower() for n in value.replace(" ", ",").split(",") if n.strip()]
    if names == ["both"] or names == ["all"]:
        return [SQLITE, POSTGRESQL]
    out: list[str] = []
    for name in names:
        if name not in _ALIASES:
            raise SystemExit(f"tests: unknown backend {name!r} (sqlite, postgresql or both)")
        if _ALIASES[name] not in out:
            out.append(_ALIASES[name])
    if not out:
        raise SystemExit("tests: --backends needs sqlite, postgresql or both")
    return out


def split_args(argv: list[str]) -> tuple[list[str] | None, list[str]]:
    """``--backends B`` / ``--backends=B`` taken out of ``argv`` (None: not given),
    and the arguments for pytest."""
    backends: list[str] | None = None
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--backends":
            value = next(it, None)
            if value is None:
                raise SystemExit("tests: --backends needs a value")
            backends = _parse_backends(value)
        elif arg.startswith("--backends="):
            backends = _parse_backends(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    if backends is None and os.environ.get("DAISYBOT_TEST_BACKENDS", "").strip():
        backends = _parse_backends(os.environ["DAISYBOT_TEST_BACKENDS"])
    return backends, rest


def _has_selection(args: list[str]) -> bool:
    """Whether pytest arguments choose tests (a path, -k, -m, a node id), as opposed
    to options only (``-x``, ``-v``, ``-n 1``...)."""
    takes_value = {"-n", "--numprocesses", "-p", "--maxfail", "--tb", "-W", "-o",
                   "--durations", "--dist", "--deselect", "--ignore", "-c", "--rootdir",
                   "--basetemp", "--junitxml", "--log-level", "--timeout"}
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-k", "-m"):
            return True
        if arg in takes_value:
            skip = True
            continue
        if not arg.startswith("-"):
            return True
    return False


def plan(argv: list[str]) -> list[tuple[str, list[str]]]:
    """The passes to run: (backend, pytest arguments) in order."""
    backends, rest = split_args(argv)
    selected = _has_selection(rest)
    if backends is None:
        backends = [SQLITE] if selected else [SQLITE, POSTGRESQL]
    passes: list[tuple[str, list[str]]] = []
    for backend in backends:
        if backend == POSTGRESQL:
            # tests.pg_pass: leave out what the switch does not change (it would run
            # exactly as in the SQLite pass)
            passes.append((backend, [*PG_PLUGIN, *rest, *([] if selected else PG_SUITES)]))
        else:
            passes.append((backend, list(rest)))
    return passes


# ------------------------------------------------------------------------- running


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (CI cancelling the job) unwinds like Ctrl-C, so the cluster stops."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _cluster(env: dict[str, str]) -> Iterator[None]:
    """One throwaway PostgreSQL cluster for the whole run (its URL into ``env``),
    unless one is given (``$DAISYBOT_TEST_POSTGRES``) or no binaries exist."""
    if env.get("DAISYBOT_TEST_POSTGRES") or not _have_postgresql():
        yield
        return
    from tests.pgcluster import start_cluster

    started = time.monotonic()
    cluster = start_cluster()
    try:
        env["DAISYBOT_TEST_POSTGRES"] = cluster.url
        _say(f"PostgreSQL cluster up in {time.monotonic() - started:.1f} s ({cluster.url})")
        yield
    finally:
        cluster.stop()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Let pytest stop in order (SIGINT: its fixtures stop their servers and bots),
    then kill it."""
    for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)


@dataclass
class _Pass:
    """One pytest run (a pass), started at once; its output goes to the terminal, or
    to a log file printed when it ends (a pass running beside another)."""

    backend: str
    args: list[str]
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    finished: float = 0.0

    def start(self, env: dict[str, str], workers: int) -> None:
        pass_env = dict(env, DAISYBOT_TEST_BACKEND=self.backend)
        argv = ([] if "-n" in self.args else ["-n", str(workers)]) + ["-q", *SCHEDULE,
                                                                       *self.args]
        where = f" (output in {self.log} until it ends)" if self.log else ""
        _say(f"{self.backend} pass: pytest {' '.join(argv)}{where}")
        self.started = time.monotonic()
        out = open(self.log, "wb") if self.log is not None else None
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "pytest", *argv], env=pass_env,
                                         stdout=out, stderr=subprocess.STDOUT if out else None)
        finally:
            if out is not None:
                out.close()

    def ended(self) -> bool:
        """Whether pytest is done (its end time noted when first seen)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            return False
        if not self.finished:
            self.finished = time.monotonic()
        return True

    def wait(self) -> int:
        assert self.proc is not None
        code = self.proc.wait()
        self.ended()
        if self.log is not None:
            _say(f"{self.backend} pass output:")
            sys.stdout.write(self.log.read_text(errors="replace"))
            sys.stdout.flush()
        _say(f"{self.backend} pass: exit {code} in {self.finished - self.started:.0f} s")
        if code == 5:
            _say(f"{self.backend} pass: pytest collected no tests (exit 5)")
            return 0
        return code

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


def _pytest(backend: str, args: list[str], env: dict[str, str], workers: int = 2) -> int:
    """Run one pass in the foreground; its exit status (5, nothing collected: 0)."""
    run = _Pass(backend, args)
    run.start(env, workers)
    try:
        return run.wait()
    except BaseException:  # Ctrl-C (the terminal sent pytest SIGINT too) or SIGTERM
        run.stop()
        raise


def _run_side_by_side(passes: list[tuple[str, list[str]]], env: dict[str, str],
                      workers: list[int], logs: Path) -> list[int]:
    """Every pass at once: the first on the terminal, the others into log files."""
    runs = [_Pass(b, a, None if i == 0 else logs / f"{b}.log")
            for i, (b, a) in enumerate(passes)]
    try:
        for run, n in zip(runs, workers, strict=True):
            run.start(env, n)
        while not all([run.ended() for run in runs]):  # (each end time noted)
            time.sleep(0.2)
        return [run.wait() for run in runs]
    except BaseException:
        for run in runs:
            run.stop()
        raise


def main(argv: list[str]) -> int:
    passes = plan(argv)
    want_pg = True  # the SQLite pass has PostgreSQL tests too (tests/storage parity, ...)
    _ensure_packages(want_pg)
    env = dict(os.environ)
    env.setdefault("DAISYBOT_REQUIRE_POSTGRES", "1")
    mode = env.get("DAISYBOT_TEST_PASSES", "").strip().lower() or DEFAULT_MODE
    started = time.monotonic()
    codes: list[int] = []
    try:
        with _terminate_as_interrupt(), _cluster(env), \
                tempfile.TemporaryDirectory(prefix="daisybot-tests-") as logs:
            if mode == "together" and len(passes) > 1:
                workers = [SIDE_BY_SIDE_WORKERS.get(b, 1) for b, _ in passes]
                codes = _run_side_by_side(passes, env, workers, Path(logs))
            else:
                for backend, args in passes:
                    codes.append(_pytest(backend, args, env))
    except KeyboardInterrupt:
        _say("interrupted; the PostgreSQL cluster is stopped")
        return 130
    failed = [b for (b, _), c in zip(passes, codes, strict=True) if c != 0]
    summary = ", ".join(f"{b} {'FAILED' if c else 'ok'}" for (b, _), c in
                        zip(passes, codes, strict=True))
    _say(f"{summary} in {time.monotonic() - started:.0f} s")
    if failed:
        return next(c for c in codes if c != 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
