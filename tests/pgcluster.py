"""A throwaway PostgreSQL cluster for the tests (Debian's binaries, no service).

``start_cluster(base_dir)`` runs ``initdb`` and ``postgres`` from the newest
``/usr/lib/postgresql/*/bin`` (or ``$DAISYBOT_PG_BIN``) on a unix socket inside the
cluster's own directory (no TCP unless asked), tuned for test speed (fsync,
synchronous_commit and full_page_writes off: a crash loses the cluster, which is
thrown away anyway). Both refuse to run as root, so as root they run as ``nobody``
(the data directory chowned to it).

    cluster = start_cluster(tmp)      # Cluster(.url, .dsn(name), .stop())
    python -m tests.pgcluster         # a manual cluster: prints its URL, Ctrl-C stops

``python -m tests`` starts one cluster for the whole run and exports its server URL as
``DAISYBOT_TEST_POSTGRES``; the ``postgres_url`` fixture (tests/conftest.py) makes a
fresh database per test on it (or on a cluster it starts lazily per process).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

__all__ = ["Cluster", "ClusterError", "find_bin_dir", "start_cluster"]

SUPERUSER = "postgres"
UNPRIVILEGED = "nobody"
_SOCKET_MAX = 100  # sun_path is 108 bytes; ".s.PGSQL.NNNNN" goes after the dir
_DEFAULT_PORT = 5432  # only names the socket file when there is no TCP listener


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created or started."""


def find_bin_dir() -> Path | None:
    """``$DAISYBOT_PG_BIN``, else the newest ``/usr/lib/postgresql/<v>/bin`` with
    initdb and postgres, else the directory of ``initdb`` on PATH; None if none."""
    override = os.environ.get("DAISYBOT_PG_BIN")
    candidates: list[Path] = [Path(override)] if override else []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = [p for p in root.iterdir() if p.name.replace(".", "").isdigit()]
        versions.sort(key=lambda p: float(p.name), reverse=True)
        candidates += [v / "bin" for v in versions]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    return None


@dataclass
class Cluster:
    """A running throwaway cluster. ``url``: the ``postgres`` maintenance database."""

    root: Path
    socket_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    host: str | None = None  # "127.0.0.1" when started with tcp=True
    _owned_dirs: list[Path] = field(default_factory=list)

    def dsn(self, dbname: str) -> str:
        if self.host is not None:
            return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{quote(dbname)}"
        return (
            f"postgresql://{SUPERUSER}@/{quote(dbname)}"
            f"?host={quote(str(self.socket_dir), safe='/')}&port={self.port}"
        )

    @property
    def url(self) -> str:
        return self.dsn("postgres")

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGQUIT/SIGKILL; removes the directories."""
        proc = self.process
        if proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for folder in self._owned_dirs:
            shutil.rmtree(folder, ignore_errors=True)


def _reachable_by(path: Path, uid: int) -> bool:
    """Every parent of ``path`` is traversable by ``uid`` (others' x bit or owned)."""
    for parent in [path, *path.parents]:
        try:
            st = parent.stat()
        except OSError:
            return False
        if st.st_uid != uid and not st.st_mode & 0o001:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """The postmaster gets SIGQUIT if the test process dies (even kill -9), so no
    orphaned cluster outlives a run. Runs after the uid change (which would clear it)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG
    os.setpgrp()  # a Ctrl-C to the terminal's group goes to us, we stop it in order


def start_cluster(
    base_dir: str | os.PathLike[str] | None = None,
    *,
    tcp: bool = False,
    settings: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Cluster:
    """initdb + postgres in a new directory under ``base_dir`` (a temp dir if None or
    not reachable by the unprivileged user). Returns when it accepts connections."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise ClusterError("no PostgreSQL binaries (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    uid = gid = None
    if as_root:
        entry = pwd.getpwnam(UNPRIVILEGED)
        uid, gid = entry.pw_uid, entry.pw_gid
    parent = Path(base_dir) if base_dir is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    if parent is None or (uid is not None and not _reachable_by(parent.resolve(), uid)):
        parent = Path(tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="daisybot-pg-", dir=parent))
    owned = [root]
    sockets = root / "s"
    if len(str(sockets)) > _SOCKET_MAX:
        sockets = Path(tempfile.mkdtemp(prefix="pgs-", dir="/tmp"))
        owned.append(sockets)
    sockets.mkdir(exist_ok=True)
    data = root / "data"
    if uid is not None and gid is not None:
        for folder in (root, sockets):
            os.chown(folder, uid, gid)
    run_as: dict[str, object] = (
        {"user": uid, "group": gid, "extra_groups": []} if uid is not None else {}
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    initdb = subprocess.run(  # type: ignore[call-overload]
        [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
         "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
        cwd=root, env=env, capture_output=True, check=False, **run_as,
    )
    if initdb.returncode != 0:
        for folder in owned:
            shutil.rmtree(folder, ignore_errors=True)
        raise ClusterError(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
    port = _free_port() if tcp else _DEFAULT_PORT
    options = {
        "listen_addresses": "127.0.0.1" if tcp else "",
        "port": str(port),
        "unix_socket_directories": str(sockets),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "shared_buffers": "32MB",
        "log_min_messages": "warning",
        "logging_collector": "off",
        "timezone": "UTC",
    }
    options.update(settings or {})
    argv = [str(bin_dir / "postgres"), "-D", str(data)]
    for key, value in options.items():
        argv += ["-c", f"{key}={value}"]
    log = open(root / "postgres.log", "wb")
    try:
        proc = subprocess.Popen(  # type: ignore[call-overload]
            argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent, **run_as,
        )
    finally:
        log.close()
    cluster = Cluster(root, sockets, port, proc, "127.0.0.1" if tcp else None, owned)
    try:
        _wait_ready(cluster, bin_dir, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_ready(cluster: Cluster, bin_dir: Path, timeout: float) -> None:
    host = cluster.host or str(cluster.socket_dir)
    deadline = time.monotonic() + timeout
    while True:
        if cluster.process.poll() is not None:
            log = (cluster.root / "postgres.log").read_text(errors="replace")[-2000:]
            raise ClusterError(f"postgres exited ({cluster.process.returncode}): {log}")
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", host, "-p", str(cluster.port),
             "-U", SUPERUSER, "-d", "postgres"],
            check=False, capture_output=True,
        )
        if ready.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise ClusterError("postgres did not accept connections in time")
        time.sleep(0.05)


# ------------------------------------------------------------- per-process cluster
_lazy: Cluster | None = None


def lazy_server_url() -> str:
    """The server URL for this process: ``$DAISYBOT_TEST_POSTGRES``, else a cluster
    started on first use and stopped at exit. Raises ClusterError if impossible."""
    global _lazy
    preset = os.environ.get("DAISYBOT_TEST_POSTGRES")
    if preset:
        return preset
    if _lazy is None or not _lazy.running:
        _lazy = start_cluster()
        atexit.register(_lazy.stop)
    return _lazy.url


def main(argv: list[str]) -> int:
    tcp = "--tcp" in argv
    cluster = start_cluster(tcp=tcp)
    print(cluster.url, flush=True)
    stop = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        while not stop and cluster.running:
            time.sleep(0.2)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
