"""The catalogue as users see it (their prices), and the errors the pure rules of
the domain raise to the UI (re-exported by :mod:`bot.services.api`, the UI's
contract). No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["EngineError", "Pool", "Service", "ServiceUnavailable", "SoldOut"]


@dataclass(frozen=True, slots=True)
class Pool:
    provider_id: str
    price: Decimal  # what this user pays (markup included in operator mode)
    count: int


@dataclass(frozen=True, slots=True)
class Service:
    code: str  # DaisySim app code, e.g. "sb_wa"
    name: str  # e.g. "WhatsApp 3"
    price: Decimal  # what this user pays; for sb_* the cheapest pool
    pools: tuple[Pool, ...] = ()  # empty for single-provider services

    @property
    def multi_pool(self) -> bool:
        return bool(self.pools)


class EngineError(Exception):
    """Base for everything the engine raises to the UI. Message is for logs only;
    the UI renders each subclass from its own text catalogue."""


class ServiceUnavailable(EngineError):
    """Unknown service code / pool (not in the current catalogue)."""


class SoldOut(EngineError):
    def __init__(
        self, message: str, *, service: Service | None, pool: str | None = None
    ) -> None:
        super().__init__(message)
        self.service = service  # refreshed, so the UI can offer other pools
        self.pool = pool  # the pool that has no numbers (None: the service / every pool)
