"""``python -m bot simulator`` as a subprocess: serves, advances a virtual clock, stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.sandbox.simulator import main

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_cli_serves_and_stops_on_sigterm() -> None:
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "simulator", "--port", str(port), "--virtual-clock",
         "--account", "k:10", "--account", "k2:3.5:two@example.com", "--cancel-lock", "30"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == f"http://127.0.0.1:{port}/api/v1/server7"
            with httpx.Client(base_url=line, headers={"Authorization": "Bearer k"}) as c:
                r = c.get("/balance")
                assert r.json()["data"] == {"balance": 10.0, "currency": "USD",
                                            "email": r.json()["data"]["email"]}
                r2 = c.get("/balance", headers={"Authorization": "Bearer k2"})
                assert r2.json()["data"]["email"] == "two@example.com"
                aid = c.post("/purchase", json={"country": "USA", "app": "Signal"}).json()[
                    "data"]["activation_id"]
                assert c.post(f"/cancel/{aid}").json()["code"] == "TOO_EARLY"
                r = c.post(f"http://127.0.0.1:{port}/_sim/advance", json={"seconds": 31})
                assert r.status_code == 200
                assert c.post(f"/cancel/{aid}").json()["data"]["balance_after"] == 10.0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cli_rejects_bad_arguments() -> None:
    for argv in (["--account", "nobalance"], ["--auto-sms", "9-1"], ["--account", "k:abc"]):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code == 2
        else:  # pragma: no cover
            raise AssertionError(f"{argv} accepted")
    assert main(["--auto-sms-ratio", "1.5"]) == 2
    assert main(["--rtt", "-1"]) == 2


def test_cli_reading_flag_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented reading by default; ``--cache-bound`` or
    DAISYSIM_SIM_CACHE_BOUND=1 (the playground reads the same) for the other."""
    from bot.sandbox import playground_cli as playground
    from bot.sandbox.simulator import build_parser

    monkeypatch.delenv("DAISYSIM_SIM_CACHE_BOUND", raising=False)
    assert build_parser().parse_args([]).cache_bound is False
    assert build_parser().parse_args(["--cache-bound"]).cache_bound is True
    assert build_parser().parse_args(["--rtt", "0.05"]).rtt == 0.05
    assert playground.options_from_args([]).cache_bound is False
    assert playground.options_from_args(["--cache-bound"]).cache_bound is True
    monkeypatch.setenv("DAISYSIM_SIM_CACHE_BOUND", "1")
    assert build_parser().parse_args([]).cache_bound is True
    assert playground.options_from_args([]).cache_bound is True
