"""``daisybot simulator``: run the DaisySim simulator on a port until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from decimal import Decimal

from bot.clock import Clock, SystemClock, VirtualClock
from bot.sandbox.simulator import Simulator, start_simulator


def _parse_account(spec: str) -> tuple[str, str, str | None]:
    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected KEY:BALANCE[:EMAIL], got {spec!r}")
    try:
        Decimal(parts[1])
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"bad balance in {spec!r}") from None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _parse_range(spec: str) -> tuple[float, float]:
    lo, sep, hi = spec.partition("-")
    try:
        a = float(lo)
        b = float(hi) if sep else a
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, got {spec!r}") from None
    if not 0 <= a <= b:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {spec!r}")
    return a, b


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="daisybot simulator", description="A local DaisySim (server7) API simulator."
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument(
        "--account",
        action="append",
        type=_parse_account,
        default=[],
        metavar="KEY:BALANCE[:EMAIL]",
        help="an account (repeatable)",
    )
    ap.add_argument(
        "--auto-sms",
        type=_parse_range,
        default=None,
        metavar="MIN-MAX",
        help="deliver a random code MIN..MAX seconds after each purchase",
    )
    ap.add_argument(
        "--auto-sms-ratio",
        type=float,
        default=1.0,
        metavar="R",
        help="fraction of numbers that ever get a code (0..1)",
    )
    ap.add_argument("--cancel-lock", type=float, default=180.0, metavar="SECONDS")
    ap.add_argument(
        "--window",
        type=float,
        default=1200.0,
        metavar="SECONDS",
        help="activation window before a number expires",
    )
    ap.add_argument(
        "--virtual-clock", action="store_true", help="time moves only via POST /_sim/advance"
    )
    ap.add_argument("--seed", type=int, default=None)
    return ap


async def _serve(args: argparse.Namespace) -> None:
    clock: Clock = VirtualClock() if args.virtual_clock else SystemClock()
    sim = Simulator(
        clock,
        cancel_lock=args.cancel_lock,
        window=args.window,
        auto_sms=args.auto_sms,
        auto_sms_ratio=args.auto_sms_ratio,
        seed=args.seed,
    )
    for key, balance, email in args.account:
        sim.add_account(key, balance, email)
    server = await start_simulator(sim, args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(server.base_url, flush=True)
    print(f"control endpoints: {server.url}/_sim/", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.auto_sms_ratio <= 1.0:
        print("--auto-sms-ratio must be within 0..1", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
