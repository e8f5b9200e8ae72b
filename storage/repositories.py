"""All repositories over one database (every SQL statement of the bot lives in
``storage``: one module per group of tables, plus the migrations).

Each repository method is a single statement (or a read) on the shared
:class:`Database`; callers compose several in ``async with db.transaction():``
to make a multi-row change atomic. State changes are *guarded* (``UPDATE … WHERE
id = ? AND state IN (…)``) and report whether they happened, so a lost race is
visible and harmless.

========================  ==========================================
:mod:`storage.users`      ``users``
:mod:`storage.accounts`   ``accounts`` (the DaisySim keys)
:mod:`storage.activations` ``activations`` (purchases and their state)
:mod:`storage.ledger`     ``ledger`` (operator-mode wallets)
:mod:`storage.events`     ``events`` (the outbox)
:mod:`storage.strays`     ``stray_orders`` and watched purchases
:mod:`storage.health`     ``health_probe`` (``/healthz``)
:mod:`storage.prices`     ``price_overrides`` (admins' /price rules)
:mod:`storage.alerts`     ``operator_alerts``, ``alert_deliveries``
:mod:`storage.broadcasts` ``broadcasts``, ``broadcast_recipients``
:mod:`storage.topups`     ``topups`` (wallet top-ups)
========================  ==========================================
"""

from __future__ import annotations

from storage.accounts import AccountRepo
from storage.activations import ActivationRepo
from storage.alerts import AlertRepo
from storage.base import DuplicateError
from storage.broadcasts import BroadcastRepo
from storage.db import Database
from storage.events import EventRepo
from storage.ledger import LedgerRepo
from storage.prices import PriceOverrideRepo
from storage.strays import StrayRepo
from storage.topups import TopUpRepo
from storage.users import UserRepo

__all__ = [
    "AccountRepo",
    "ActivationRepo",
    "BroadcastRepo",
    "DuplicateError",
    "EventRepo",
    "LedgerRepo",
    "Repositories",
    "StrayRepo",
    "TopUpRepo",
    "UserRepo",
]


class Repositories:
    """All repositories over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = UserRepo(db)
        self.accounts = AccountRepo(db)
        self.activations = ActivationRepo(db)
        self.ledger = LedgerRepo(db)
        self.events = EventRepo(db)
        self.strays = StrayRepo(db)
        # --- h-ops: operator prices and alerts (migration 0009) ---
        self.prices = PriceOverrideRepo(db)
        self.alerts = AlertRepo(db)
        # --- h-admin: broadcasts (issue 13) ---
        self.broadcasts = BroadcastRepo(db)
        self.topups = TopUpRepo(db)
