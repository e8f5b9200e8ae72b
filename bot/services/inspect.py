"""Read-only inspection of a running engine, for tests and benchmarks (never the
UI): what it tracks, its stored rows, events, ledger and stray orders.

``engine.inspect.repos`` is the engine's own storage, for tests that inject
faults into it (``db`` too), and ``poll_rounds`` its round runner (tests shorten its
patience); everything else only reads.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from bot.daisysim.client import DaisySimClient
from bot.services.rounds import Rounds
from bot.services.wiring import Services
from storage.db import Database
from storage.repositories import Repositories
from storage.rows import ActivationRow, EventRow, LedgerRow, StrayRow

__all__ = ["Inspector"]


class Inspector:
    def __init__(self, services: Callable[[], Services | None]) -> None:
        self._services = services  # None until the engine has started

    @property
    def _live(self) -> Services:
        services = self._services()
        if services is None:
            raise RuntimeError("the engine has not started")
        return services

    @property
    def repos(self) -> Repositories:
        return self._live.rt.repos

    @property
    def db(self) -> Database:
        """The engine's database (tests inject faults, e.g. ``PRAGMA query_only``)."""
        return self._live.rt.db

    @property
    def db_path(self) -> str:
        return self._live.rt.db.path

    @property
    def poll_rounds(self) -> Rounds:
        """The poll rounds' runner (tests shorten its ``patience``)."""
        return self._live.polling.rounds

    def tracked(self) -> dict[int, str]:
        """Open activations the engine is working on (id -> state)."""
        if self._services() is None:
            return {}
        return {t.id: t.state.value for t in self._live.rt.tracks.values()}

    async def activation_row(self, activation_id: int) -> ActivationRow | None:
        return await self.repos.activations.get(activation_id)

    async def activations(self) -> list[ActivationRow]:
        return await self.repos.activations.list_all()

    async def open_activations(self) -> list[ActivationRow]:
        return await self.repos.activations.list_open()

    async def events(self) -> list[EventRow]:
        return await self.repos.events.all()

    async def ledger(self, activation_id: int) -> list[LedgerRow]:
        return await self.repos.ledger.for_activation(activation_id)

    async def entries(self, user_id: int) -> list[LedgerRow]:
        return await self.repos.ledger.entries(user_id)

    async def strays(self) -> list[StrayRow]:
        return await self.repos.strays.all()

    async def balance(self, user_id: int) -> Decimal:
        """The user's internal wallet balance (the operator ledger's sum)."""
        return await self.repos.ledger.balance(user_id)

    def clients(self) -> list[DaisySimClient]:
        """The DaisySim clients of the accounts the engine has opened."""
        accounts = self._live.rt.accounts.values()
        return [acc.client for acc in accounts if acc.client is not None]
