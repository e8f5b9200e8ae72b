"""The failover soak's two bot processes (:mod:`tests.bench.failover_soak`): their
/healthz roles, and which process a request to the fake Bot API came from."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientSession

from tests.bench.harness import BotProcess
from tests.bench.soak import Report

__all__ = ["BotPair", "Node", "peer_pid"]


@dataclass
class Node:
    """One of the two bot processes."""

    name: str
    proc: BotProcess
    health_port: int
    role: str | None = None  # the last /healthz role ("leader", "follower"), None: down
    healthy: bool = False
    expected_exit: int | None = None  # -SIGKILL or FENCE_EXIT once we caused the exit

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz"


class BotPair:
    """The pair of bot processes and what the harness knows about their roles."""

    def __init__(self, nodes: list[Node], report: Report) -> None:
        self.nodes = nodes
        self.report = report
        self.session: ClientSession | None = None
        self.both_leading = False

    async def sample(self, node: Node) -> None:
        if not node.proc.running:
            node.role, node.healthy = None, False
            return
        assert self.session is not None
        try:
            async with self.session.get(node.url) as r:
                body = await r.json(content_type=None)
                node.healthy = r.status == 200
                node.role = str(body.get("role")) if isinstance(body, dict) else None
        except (TimeoutError, OSError, ValueError):
            node.role, node.healthy = None, False

    async def sample_all(self) -> None:
        await asyncio.gather(*(self.sample(n) for n in self.nodes))
        leaders = [n for n in self.nodes if n.role == "leader" and n.proc.running]
        both = len(leaders) > 1
        if both and not self.both_leading:  # one problem per episode, not per sample
            self.report.problem("two_leaders", "both processes said leader: "
                                + ", ".join(f"{n.name} (pid {n.proc.pid})" for n in leaders))
        self.both_leading = both

    def leader(self) -> Node | None:
        for n in self.nodes:
            if n.role == "leader" and n.proc.running:
                return n
        return None

    async def wait_role(self, node: Node, role: str, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while True:
            await self.sample(node)
            if node.role == role and node.healthy:
                return
            if not node.proc.running and node.expected_exit is None:
                raise RuntimeError(f"{node.name} exited early:\n{node.proc.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node.name} is not a healthy {role} (role {node.role}):\n"
                                   f"{node.proc.log_text()[-4000:]}")
            await asyncio.sleep(0.1)

    async def monitor(self, period: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample_all()
            await asyncio.sleep(period)


def peer_pid(peer_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` owns the loopback TCP connection from ``peer_port`` to
    ``server_port`` (from /proc: the socket's inode, then the processes' fds)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10:
                continue
            local, remote = cols[1].rsplit(":", 1)[1], cols[2].rsplit(":", 1)[1]
            if int(local, 16) == peer_port and int(remote, 16) == server_port:
                inode = cols[9]
                break
        if inode is not None:
            break
    if inode is None or inode == "0":
        return None
    wanted = f"socket:[{inode}]"
    for pid in pids:
        folder = Path(f"/proc/{pid}/fd")
        try:
            for fd in folder.iterdir():
                try:
                    if str(fd.readlink()) == wanted:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None
