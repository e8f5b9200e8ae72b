"""The retry policy, table-driven."""

from __future__ import annotations

import random

import pytest

from bot.daisysim import errors as E
from bot.daisysim.retry import BACKOFF_CAP, backoff, decide, is_transient


def rl(wait: float | None = 43.0) -> E.RateLimited:
    return E.RateLimited("Please wait", status=429, code="RATE_LIMITED", retry_after=wait)


CONC = E.ConcurrentError("c", status=409, code="CONCURRENT_ERROR")
PROV = E.ProviderError("p", status=502, code="PROVIDER_ERROR")
SERV = E.ServerError("s", status=500, code="SERVER_ERROR")
GATEWAY = E.ServerError("HTTP 504", status=504)
UNKNOWN_5XX = E.UnknownAPIError("u", status=507, code="STORAGE")
UNKNOWN_4XX = E.UnknownAPIError("u", status=422, code="VALIDATION_ERROR")
OOS = E.OutOfStock("o", status=503, code="OUT_OF_STOCK")
CONNECT = E.APIConnectionError("ConnectError", request_sent=False)
READ = E.APIConnectionError("ReadError", request_sent=True)
TIMEOUT = E.APITimeoutError("ReadTimeout", request_sent=True)
MALFORMED = E.MalformedResponse("bad body", status=200)

NEVER = [
    E.Unauthenticated("x", status=401),
    E.AccountSuspended("x", status=403),
    E.AccountLocked("x", status=403),
    E.NotFound("x", status=404),
    E.PriceVerificationFailed("x", status=422),
    E.CodeReceived("x", status=422),
    E.TooEarly("Please wait 94 more second(s).", status=422),
    E.InvalidCountry("x", status=422),
    E.InsufficientBalance("x", status=400),
    OOS,
    UNKNOWN_4XX,
    MALFORMED,
    E.DaisySimError("generic"),
]

BACKOFF = "backoff"

# (error, attempt, idempotent, expected): expected None = give up, a float = exact wait,
# BACKOFF = a jittered wait within [0, min(8, 0.5 * 2**(attempt-1))].
TABLE = [
    (rl(43.0), 1, True, 43.0),
    (rl(43.0), 1, False, 43.0),  # a 429 means nothing happened: safe for purchase too
    (rl(2.0), 3, False, 2.0),
    (rl(43.0), 4, True, None),  # attempts exhausted
    (rl(None), 1, True, 60.0),
    (rl(600.0), 1, True, None),  # longer than max_rate_wait: the caller decides
    (CONC, 1, False, 0.0),
    (CONC, 2, True, 0.0),
    (CONC, 3, True, None),  # bounded at 3 tries
    (CONC, 3, False, None),
    (PROV, 1, True, BACKOFF),
    (PROV, 1, False, None),
    (SERV, 2, True, BACKOFF),
    (SERV, 1, False, None),  # a purchase/cancel is never re-sent on a 5xx
    (SERV, 4, True, None),
    (GATEWAY, 3, True, BACKOFF),
    (GATEWAY, 1, False, None),
    (UNKNOWN_5XX, 1, True, BACKOFF),
    (UNKNOWN_5XX, 1, False, None),
    (CONNECT, 1, True, BACKOFF),
    (CONNECT, 1, False, None),
    (READ, 2, True, BACKOFF),
    (READ, 1, False, None),
    (TIMEOUT, 3, True, BACKOFF),
    (TIMEOUT, 1, False, None),
    (TIMEOUT, 4, True, None),
] + [(err, 1, idem, None) for err in NEVER for idem in (True, False)]


@pytest.mark.parametrize(("error", "attempt", "idempotent", "expected"), TABLE)
def test_decide_table(
    error: E.DaisySimError, attempt: int, idempotent: bool, expected: float | str | None
) -> None:
    rng = random.Random(7)
    got = decide(error, attempt, idempotent=idempotent, rng=rng)
    if expected == BACKOFF:
        assert got is not None
        assert 0.0 <= got <= min(BACKOFF_CAP, 0.5 * 2 ** (attempt - 1))
    else:
        assert got == expected


def test_max_attempts_parameter() -> None:
    assert decide(SERV, 1, idempotent=True, max_attempts=1) is None
    assert decide(SERV, 9, idempotent=True, max_attempts=10) is not None
    assert decide(rl(5.0), 1, idempotent=True, max_rate_wait=4.0) is None


def test_backoff_is_capped_full_jitter_and_deterministic_with_rng() -> None:
    waits = [backoff(20, random.Random(i)) for i in range(200)]
    assert all(0.0 <= w <= BACKOFF_CAP for w in waits)
    assert max(waits) > BACKOFF_CAP * 0.9 and min(waits) < BACKOFF_CAP * 0.1  # full jitter
    assert backoff(3, random.Random(1)) == backoff(3, random.Random(1))
    assert all(backoff(1, random.Random(i)) <= 0.5 for i in range(50))


def test_is_transient() -> None:
    assert all(is_transient(e) for e in (PROV, SERV, GATEWAY, UNKNOWN_5XX, CONNECT, READ, TIMEOUT))
    assert not any(is_transient(e) for e in NEVER)
