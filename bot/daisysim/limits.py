"""Client-side request budgets, one set per API key per process.

DaisySim counts requests per account over 60 s windows (Laravel style). To be
sure the bot itself never causes a 429, every budget guarantees *at most N
requests in any sliding window* of 60 s (+ a small safety margin), using
pyrate-limiter's sliding-window log (:class:`~pyrate_limiter.InMemoryBucket`)
on our injectable :class:`~bot.clock.Clock`. A leaky bucket would not do: a
burst of N followed by one request per 60/N s puts more than N in one window.

Budgets (published limits): purchase 10/60 s, check + check-all together
60/60 s, cancel 10/60 s.

All callers of one key in this process share a :class:`KeyLimiter` obtained
from :func:`get_limiter` (registry keyed by a hash of the key and by clock).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

from pyrate_limiter import AbstractClock, InMemoryBucket, Rate, RateItem

from bot.clock import Clock, SystemClock
from bot.daisysim.keys import key_fingerprint

__all__ = [
    "CANCEL_LIMIT",
    "CHECK_LIMIT",
    "CHECK_RESERVE",
    "DEFAULT_MARGIN",
    "PURCHASE_LIMIT",
    "WINDOW",
    "Budget",
    "KeyLimiter",
    "PurchaseTracker",
    "get_limiter",
    "reset_limiters",
]

WINDOW = 60.0  # seconds, the server's counting window
DEFAULT_MARGIN = 0.5  # seconds added to the window for clock skew / latency jitter
PURCHASE_LIMIT = 10
CHECK_LIMIT = 60  # shared by GET /check/{id} and POST /check-all
CANCEL_LIMIT = 10
# Of the check budget, the poller's spare (adaptive) polls never take the last
# CHECK_RESERVE requests of any window: they stay free for checks a user asks
# for and for the fresh rounds (bot.services.poller).
CHECK_RESERVE = 6


class _ClockAdapter(AbstractClock):
    """pyrate-limiter clock (integer milliseconds) reading a :class:`Clock`."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> int:
        return round(self._clock.now() * 1000)


class Budget:
    """At most ``limit`` acquisitions in any ``window`` seconds of ``clock`` time."""

    def __init__(
        self, name: str, limit: int, clock: Clock, *, window: float = WINDOW + DEFAULT_MARGIN
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.name = name
        self.limit = limit
        self.window = window
        self._clock = clock
        self._interval_ms = math.ceil(window * 1000)
        self._bucket = InMemoryBucket([Rate(limit, self._interval_ms)])
        self._bucket._clock = _ClockAdapter(clock)
        self._blocked_until = 0.0  # clock seconds; set by block_for() after a 429

    def __repr__(self) -> str:
        return f"Budget({self.name!r}, {self.available()}/{self.limit})"

    def _now_ms(self) -> int:
        now = self._bucket.now()
        assert isinstance(now, int)
        return now

    def _in_window(self, now_ms: int) -> int:
        """Items still inside the window at ``now_ms`` (drops older ones)."""
        self._bucket.leak(now_ms)
        return self._bucket.count()

    @property
    def blocked_until(self) -> float:
        return self._blocked_until

    def available(self) -> int:
        """Acquisitions possible right now without waiting."""
        if self._clock.now() < self._blocked_until:
            return 0
        return max(0, self.limit - self._in_window(self._now_ms()))

    def used(self) -> int:
        """Acquisitions counted in the current window."""
        return self._in_window(self._now_ms())

    def wait_time(self) -> float:
        """Seconds until one acquisition is possible (0.0 if now)."""
        return self.wait_for(1)

    def wait_for(self, free: int) -> float:
        """Seconds until ``free`` acquisitions are possible at once (0.0 if now)."""
        if not 1 <= free <= self.limit:
            raise ValueError("free must be within 1..limit")
        now = self._clock.now()
        blocked = max(0.0, self._blocked_until - now)
        now_ms = self._now_ms()
        if self.limit - self._in_window(now_ms) >= free:
            return blocked
        # The (limit - free + 1)-th newest item is the one whose expiry frees enough.
        oldest = self._bucket.peek(self.limit - free)
        assert oldest is not None and not hasattr(oldest, "__await__")
        assert isinstance(oldest, RateItem)
        free_at = (oldest.timestamp + self._interval_ms + 1) / 1000.0
        return max(blocked, free_at - now, 0.0)

    def try_acquire(self) -> bool:
        """Take one slot if available now."""
        if self._clock.now() < self._blocked_until:
            return False
        return bool(self._bucket.put(RateItem(self.name, self._now_ms())))

    async def acquire(self) -> None:
        """Take one slot, sleeping on the clock until one is free."""
        while not self.try_acquire():
            wait = self.wait_time()
            # Guard against a rounding edge where the slot is not free yet at
            # the computed instant: always move forward by at least 1 ms.
            await self._clock.sleep(max(wait, 0.001))

    def block_for(self, seconds: float) -> None:
        """The server said 429 (the key is also used elsewhere): no acquisition
        for ``seconds`` from now."""
        if seconds <= 0:
            return
        self._blocked_until = max(self._blocked_until, self._clock.now() + seconds)


class PurchaseTracker:
    """Per-key memory of this process's purchases, used by reconciliation:
    activation ids already handed out, and purchase requests on the wire."""

    MAX_KNOWN = 10_000

    def __init__(self) -> None:
        self.known: OrderedDict[str, None] = OrderedDict()
        self.in_flight = 0

    def remember(self, activation_id: str) -> None:
        self.known[activation_id] = None
        self.known.move_to_end(activation_id)
        while len(self.known) > self.MAX_KNOWN:
            self.known.popitem(last=False)


@dataclass(frozen=True, slots=True)
class KeyLimiter:
    """The budgets of one API key (and its purchase tracker)."""

    purchase: Budget
    check: Budget  # /check/{id} and /check-all
    cancel: Budget
    purchases: PurchaseTracker = field(default_factory=PurchaseTracker)

    @classmethod
    def create(cls, clock: Clock, *, margin: float = DEFAULT_MARGIN) -> KeyLimiter:
        window = WINDOW + margin
        return cls(
            purchase=Budget("purchase", PURCHASE_LIMIT, clock, window=window),
            check=Budget("check", CHECK_LIMIT, clock, window=window),
            cancel=Budget("cancel", CANCEL_LIMIT, clock, window=window),
        )


# Wall-time limiters are shared by every SystemClock instance; limiters on any
# other clock (a VirtualClock in tests) live as long as that clock does.
_system_registry: dict[str, KeyLimiter] = {}
_clock_registry: weakref.WeakKeyDictionary[Clock, dict[str, KeyLimiter]] = (
    weakref.WeakKeyDictionary()
)
_registry_lock = threading.Lock()


def get_limiter(api_key: str, clock: Clock | None = None) -> KeyLimiter:
    """The process-wide limiter of ``api_key`` on ``clock`` (default wall time)."""
    clock = clock if clock is not None else SystemClock()
    fingerprint = key_fingerprint(api_key)
    with _registry_lock:
        if isinstance(clock, SystemClock):
            registry = _system_registry
        else:
            try:
                registry = _clock_registry.setdefault(clock, {})
            except TypeError:  # clock not weak-referenceable: still shared per key
                registry = _system_registry
        limiter = registry.get(fingerprint)
        if limiter is None:
            limiter = registry[fingerprint] = KeyLimiter.create(clock)
        return limiter


def reset_limiters() -> None:
    """Forget every limiter (tests)."""
    with _registry_lock:
        _system_registry.clear()
        _clock_registry.clear()
