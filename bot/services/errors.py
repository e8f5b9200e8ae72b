"""DaisySim client errors as the UI's engine errors (outside /purchase)."""

from __future__ import annotations

from bot.daisysim import errors as ds
from bot.services.api import (
    AccountUnavailable,
    EngineError,
    InvalidKey,
    ServiceUnavailable,
    TooBusy,
    UpstreamUnavailable,
)

__all__ = ["already_cancelled", "map_error"]


def map_error(err: ds.DaisySimError) -> EngineError:
    """A DaisySim error outside /purchase, as the UI's error."""
    if isinstance(err, ds.Unauthenticated):
        return InvalidKey("DaisySim rejected the API key")
    if isinstance(err, ds.AccountSuspended):
        return AccountUnavailable("DaisySim account suspended", locked=False)
    if isinstance(err, ds.AccountLocked):
        return AccountUnavailable("DaisySim account locked", locked=True)
    if isinstance(err, ds.RateLimited):
        return TooBusy("rate limited", retry_after=float(err.retry_after or 60.0))
    if isinstance(err, ds.InvalidCountry):
        return ServiceUnavailable("country not supported")
    return UpstreamUnavailable(f"DaisySim unavailable: {type(err).__name__}")


def already_cancelled(err: ds.DaisySimError) -> bool:
    """NOT_FOUND or ALREADY_CANCELLED for a number we are cancelling: an earlier
    cancel went through and its answer was lost."""
    if isinstance(err, ds.NotFound):
        return True
    return isinstance(err, ds.APIError) and (err.code or "").upper() == "ALREADY_CANCELLED"
