"""``python -m tests.bench.run_bot [--no-flood-limit] [--concurrent-updates N]
[--legacy-update-slots] [--purchase-limit N] [--cancel-limit N]``: ``daisybot run``
for the benchmarks' what-if variants and the soak test.

``--no-flood-limit`` turns off the outgoing flood limiter (python-telegram-bot's
``AIORateLimiter``, 30 chat requests/s overall by default);
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
    import telegram.ext as ext

    base = ext.AIORateLimiter

    class NoFloodLimit(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["overall_max_rate"] = 0
            kwargs["group_max_rate"] = 0
            super().__init__(*args, **kwargs)

    ext.AIORateLimiter = NoFloodLimit  # type: ignore[misc]


def _concurrent_updates(n: int) -> None:
    import telegram.ext as ext

    build = ext.ApplicationBuilder.build

    def patched(self: Any) -> Any:
        self.concurrent_updates(n)
        return build(self)

    ext.ApplicationBuilder.build = patched  # type: ignore[method-assign]


def _legacy_update_slots() -> None:
    import bot.app as app
    from bot.ui.updates import PerUserUpdateProcessor

    def legacy(settings: Any) -> PerUserUpdateProcessor:
        # Admission bound = running bound: waiting updates hold the slots again.
        return PerUserUpdateProcessor(app.MAX_CONCURRENT_UPDATES, max_queued_per_user=10**9,
                                      max_admitted=app.MAX_CONCURRENT_UPDATES)

    app.update_processor = legacy  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    args = list(argv)
    if "--no-flood-limit" in args:
        args.remove("--no-flood-limit")
        _disable_flood_limit()
    if "--legacy-update-slots" in args:
        args.remove("--legacy-update-slots")
        _legacy_update_slots()
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
