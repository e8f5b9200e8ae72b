"""``python -m tests.bench.run_bot [--no-flood-limit] [--ptb-rate-limiter]
[--concurrent-updates N] [--legacy-update-slots] [--purchase-limit N]
[--cancel-limit N]``: ``daisybot run`` for the benchmarks' what-if variants and the soak test.

``--no-flood-limit`` turns off the outgoing pacing (the shipped
:class:`~bot.telegram.ratelimit.TelegramRateLimiter`: 30 chat requests/s overall, 1/s
per private chat with bursts, 20/min per group); ``--ptb-rate-limiter`` puts
python-telegram-bot's ``AIORateLimiter`` back (what the bot shipped before: first
come first served, one 429 pauses every chat);
``--concurrent-updates N`` lets the Application process up to N updates at once
(the shipped app already serves users concurrently, each user's updates in order;
this replaces that with plain unordered concurrency); ``--legacy-update-slots`` builds
the per-user processor as it was before issue 9 (PTB's 64-slot semaphore held by
updates still waiting for their user's lock, no per-user bound); ``--purchase-limit`` /
``--cancel-limit`` set the client's per-minute budgets (the soak test raises them
together with the simulator's limits). All are applied before the app is built;
everything else is the shipped ``bot.runner``.
"""

from __future__ import annotations

import sys
from typing import Any


def _disable_flood_limit() -> None:
    import bot.app
    from bot.telegram.ratelimit import TelegramRateLimiter

    class NoFloodLimit(TelegramRateLimiter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(overall_per_second=10**6, private_burst=10**6,
                          group_per_minute=10**6)
            super().__init__(*args, **kwargs)

    bot.app.TelegramRateLimiter = NoFloodLimit  # type: ignore[misc]


def _ptb_rate_limiter() -> None:
    from telegram.ext import AIORateLimiter

    import bot.app

    class PTBLimiter(AIORateLimiter):
        """The old limiter; the bot's rate_limit_args (priorities) mean nothing to it."""

        def __init__(self, clock: Any = None, *, max_retries: int = 3) -> None:
            super().__init__(max_retries=max_retries)

        async def process_request(self, callback: Any, args: Any, kwargs: Any,
                                  endpoint: str, data: Any, rate_limit_args: Any) -> Any:
            return await super().process_request(callback, args, kwargs, endpoint, data, None)

    bot.app.TelegramRateLimiter = PTBLimiter  # type: ignore[misc, assignment]


def _concurrent_updates(n: int) -> None:
    import telegram.ext as ext

    build = ext.ApplicationBuilder.build

    def patched(self: Any) -> Any:
        self.concurrent_updates(n)
        return build(self)

    ext.ApplicationBuilder.build = patched  # type: ignore[method-assign]


def _legacy_update_slots() -> None:
    import bot.app as app
    from bot.telegram.updates import PerUserUpdateProcessor

    def legacy(settings: Any) -> PerUserUpdateProcessor:
        # Admission bound = running bound: waiting updates hold the slots again.
        return PerUserUpdateProcessor(app.MAX_CONCURRENT_UPDATES, max_queued_per_user=10**9,
                                      max_admitted=app.MAX_CONCURRENT_UPDATES)

    app.update_processor = legacy


def main(argv: list[str]) -> int:
    args = list(argv)
    if "--no-flood-limit" in args:
        args.remove("--no-flood-limit")
        _disable_flood_limit()
    if "--legacy-update-slots" in args:
        args.remove("--legacy-update-slots")
        _legacy_update_slots()
    if "--ptb-rate-limiter" in args:
        args.remove("--ptb-rate-limiter")
        _ptb_rate_limiter()
    if "--concurrent-updates" in args:
        i = args.index("--concurrent-updates")
        _concurrent_updates(int(args[i + 1]))
        del args[i : i + 2]
    for flag, name in (("--purchase-limit", "PURCHASE_LIMIT"), ("--cancel-limit", "CANCEL_LIMIT")):
        if flag in args:
            i = args.index(flag)
            from bot.daisysim import limits

            setattr(limits, name, int(args[i + 1]))
            del args[i : i + 2]
    from bot.runner import main as run_main

    return run_main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
