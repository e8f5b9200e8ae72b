"""When to retry a failed DaisySim call: a pure function.

============================  ==================  ========================================
error                         idempotent only?    delay before the next try
============================  ==================  ========================================
RATE_LIMITED                  no (did not happen) ``retry_after`` (<= ``max_rate_wait``)
CONCURRENT_ERROR              no (did not happen) 0 s, at most ``CONCURRENT_ATTEMPTS`` tries
PROVIDER_ERROR, SERVER_ERROR, yes                 full-jitter exponential backoff
any other 5xx, connection /                       (base 0.5 s, cap 8 s)
timeout errors
anything else                 —                   never (None)
============================  ==================  ========================================

``attempt`` is the number of attempts already made (1 after the first failure);
no retry is offered once ``attempt >= max_attempts``. A purchase or a cancel is
not idempotent: a lost response must be reconciled, never blindly re-sent.
"""

from __future__ import annotations

import random

from bot.daisysim.errors import (
    DEFAULT_RETRY_AFTER,
    APIConnectionError,
    APIError,
    ConcurrentError,
    DaisySimError,
    OutOfStock,
    ProviderError,
    RateLimited,
    ServerError,
)

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "CONCURRENT_ATTEMPTS",
    "DEFAULT_MAX_ATTEMPTS",
    "MAX_RATE_WAIT",
    "backoff",
    "decide",
    "is_transient",
]

DEFAULT_MAX_ATTEMPTS = 4
CONCURRENT_ATTEMPTS = 3
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
MAX_RATE_WAIT = 65.0  # a longer wait is the caller's business, not a hidden sleep

_module_rng = random.Random()


def backoff(attempt: int, rng: random.Random | None = None, *, base: float = BACKOFF_BASE,
            cap: float = BACKOFF_CAP) -> float:
    """Full jitter: uniform in ``[0, min(cap, base * 2**(attempt-1))]``."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or _module_rng).uniform(0.0, ceiling)


def is_transient(error: DaisySimError) -> bool:
    """Upstream trouble that may pass: provider/server errors, any other 5xx,
    connection problems and timeouts. (OUT_OF_STOCK is a 503 but an answer.)"""
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, ProviderError | ServerError):
        return True
    return (
        isinstance(error, APIError)
        and not isinstance(error, OutOfStock)
        and error.status is not None
        and error.status >= 500
    )


def decide(
    error: DaisySimError,
    attempt: int,
    *,
    idempotent: bool,
    rng: random.Random | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_rate_wait: float = MAX_RATE_WAIT,
) -> float | None:
    """Seconds to wait before trying again, or None to give up and raise."""
    if attempt >= max_attempts:
        return None
    if isinstance(error, RateLimited):
        wait = DEFAULT_RETRY_AFTER if error.retry_after is None else max(0.0, error.retry_after)
        return wait if wait <= max_rate_wait else None
    if isinstance(error, ConcurrentError):
        return 0.0 if attempt < CONCURRENT_ATTEMPTS else None
    if idempotent and is_transient(error):
        return backoff(attempt, rng)
    return None
