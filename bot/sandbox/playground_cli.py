"""``daisybot playground``'s command line: options, the serve loop, Ctrl-C.

The playground itself (what runs, and how it is wired) is :mod:`bot.sandbox.playground`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from bot.config import FundingMode
from bot.logging_setup import configure_logging
from bot.sandbox.playground import USER_NAMES, PlaygroundOptions, start_playground
from bot.sandbox.simulator import env_cache_bound

__all__ = ["build_parser", "main", "options_from_args"]


def _range(spec: str) -> tuple[float, float] | None:
    if spec.strip().lower() in ("off", "none", "no", "0"):
        return None
    lo, sep, hi = spec.partition("-")
    try:
        a = float(lo)
        b = float(hi) if sep else a
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected MIN-MAX seconds or 'off', got {spec!r}"
        ) from None
    if not 0 <= a <= b:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {spec!r}")
    return a, b


def _positive(spec: str) -> float:
    try:
        value = float(spec)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {spec!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {spec!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    d = PlaygroundOptions()
    ap = argparse.ArgumentParser(
        prog="daisybot playground",
        description="Run the real bot locally against a DaisySim simulator and a Telegram "
        "stand-in, and chat with it in your browser. No token, no key needed.",
    )
    ap.add_argument("--host", default=d.host, help="web chat address (default: %(default)s)")
    ap.add_argument("--port", type=int, default=d.port,
                    help="web chat port; 0 = any free port (default: %(default)s)")
    ap.add_argument("--mode", choices=[m.value for m in FundingMode], default=d.mode.value,
                    help="own_key: each user links a demo DaisySim key with /key; operator: "
                    "one pre-funded operator key, users get demo credit (default: %(default)s)")
    ap.add_argument("--users", type=int, default=d.users,
                    help=f"chat users to pick from, 1..{len(USER_NAMES)} (default: %(default)s)")
    ap.add_argument("--data", type=Path, default=d.data_dir, metavar="DIR",
                    help="database and generated encryption key (default: %(default)s)")
    ap.add_argument("--fresh", action="store_true", help="start with a new database")
    ap.add_argument("--cancel-lock", type=_positive, default=d.cancel_lock, metavar="SECONDS",
                    help="seconds before Cancel & refund opens (default: %(default)s; "
                    "DaisySim: 180)")
    ap.add_argument("--give-up-minutes", type=_positive, default=d.give_up_minutes,
                    metavar="MINUTES",
                    help="minutes without a code before auto-refund (default: %(default)s)")
    ap.add_argument("--auto-sms", type=_range, default=d.auto_sms, metavar="MIN-MAX|off",
                    help="codes arrive MIN..MAX s after purchase (default: 8-40)")
    ap.add_argument("--auto-sms-ratio", type=float, default=d.auto_sms_ratio, metavar="R",
                    help="share of numbers that ever get a code, 0..1 (default: %(default)s)")
    ap.add_argument("--poll-interval", type=_positive, default=d.poll_interval,
                    metavar="SECONDS", help="the bot's check interval (default: %(default)s)")
    ap.add_argument("--log-level", default=d.log_level, help="bot log level (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (codes, phone numbers)")
    ap.add_argument("--cache-bound", action="store_true", default=env_cache_bound(),
                    help="DaisySim hides a stored code behind a cached Waiting (default: "
                    "returns it at once, the documented reading; env "
                    "DAISYSIM_SIM_CACHE_BOUND=1)")
    return ap


def options_from_args(argv: list[str]) -> PlaygroundOptions:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not 1 <= args.users <= len(USER_NAMES):
        ap.error(f"--users must be within 1..{len(USER_NAMES)}")
    if not 0.0 <= args.auto_sms_ratio <= 1.0:
        ap.error("--auto-sms-ratio must be within 0..1")
    if not 0 <= args.port <= 65535:
        ap.error("--port must be within 0..65535")
    return PlaygroundOptions(
        host=args.host,
        port=args.port,
        mode=FundingMode(args.mode),
        users=args.users,
        data_dir=args.data.resolve(),
        fresh=args.fresh,
        cancel_lock=args.cancel_lock,
        give_up_minutes=args.give_up_minutes,
        auto_sms=args.auto_sms,
        auto_sms_ratio=args.auto_sms_ratio,
        poll_interval=args.poll_interval,
        log_level=args.log_level,
        seed=args.seed,
        cache_bound=args.cache_bound,
    )


async def _serve(options: PlaygroundOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        pg = await start_playground(options)
    except OSError as exc:
        print(f"daisybot playground: cannot start: {exc}", file=sys.stderr)
        if options.port:
            print("Is the port in use? Try --port 0 (any free port) or another --port.",
                  file=sys.stderr)
        return 1
    try:
        users = ", ".join(name for _, name in pg.users)
        print(f"DaisyBot playground ({options.mode.value} mode) — chat users: {users}")
        for note in pg.notes():
            print(f"  · {note}")
        print(f"  · Data: {options.data_dir} (--fresh starts over)")
        print(f"\nOpen {pg.url} in your browser  (Ctrl-C to stop)", flush=True)
        await stop.wait()
        print("\nStopping…", flush=True)
    finally:
        await pg.close()
    return 0


def main(argv: list[str]) -> int:
    options = options_from_args(argv)
    configure_logging(options.log_level)
    try:
        return asyncio.run(_serve(options))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 0
