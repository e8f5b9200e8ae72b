"""Accounts and keys: users, the DaisySim accounts that fund purchases (the
operator's key or users' own keys, stored encrypted), their clients, and admin
rights (decided here, once)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable

from bot.config import Settings
from bot.daisysim import errors as ds
from bot.daisysim.client import DaisySimClient
from bot.services.api import InvalidKey, KeyInfo, NotAllowed
from bot.services.crypto import KeyVault, key_hash, mask_key, valid_key_format
from bot.services.errors import map_error
from bot.services.runtime import Runtime
from bot.services.sweep import AccountRef
from bot.services.tracking import Account
from storage.rows import AccountRow

__all__ = ["Accounts", "ClientFactory"]

logger = logging.getLogger("bot.services")

ClientFactory = Callable[[str], DaisySimClient]


class Accounts:
    def __init__(
        self,
        rt: Runtime,
        *,
        client_factory: ClientFactory,
        vault: KeyVault | None,
        shared_transport: bool,
    ) -> None:
        self.rt = rt
        self._client_factory = client_factory
        self._vault = vault
        # An injected transport is shared by every client and owned by the caller:
        # closing a client would close it too.
        self._shared_transport = shared_transport
        self._operator: tuple[int, str] | None = None  # (account id, key)

    # ------------------------------------------------------------------ users
    async def ensure_user(
        self, user_id: int, *, locale: str | None = None, seen: bool = False
    ) -> str | None:
        """Register the user; the locale now stored for them (a chosen one wins).
        ``seen``: the user wrote or pressed (active now, not blocking the bot)."""
        row = await self.rt.repos.users.ensure(user_id, self.rt.clock.now(), locale, seen=seen)
        return row.locale

    async def choose_locale(self, user_id: int, locale: str) -> None:
        await self.rt.repos.users.choose_locale(user_id, self.rt.clock.now(), locale)

    async def user_locale(self, user_id: int) -> str | None:
        return await self.rt.repos.users.locale(user_id)

    async def user_exists(self, user_id: int) -> bool:
        return await self.rt.repos.users.get(user_id) is not None

    @staticmethod
    def is_admin(settings: Settings, user_id: int) -> bool:
        """Admin rights come from the settings (``ADMIN_IDS``) and nowhere else."""
        return user_id in settings.admin_ids

    def require_admin(self, user_id: int) -> None:
        if not self.is_admin(self.rt.settings, user_id):
            raise NotAllowed("admins only")

    # ------------------------------------------------------------------ clients
    async def close_client(self, client: DaisySimClient | None) -> None:
        if client is None or self._shared_transport:
            return
        with contextlib.suppress(Exception):
            await client.aclose()

    async def close(self) -> None:
        for acc in self.rt.accounts.values():
            await self.close_client(acc.client)
        self.rt.accounts.clear()

    def client_for(self, row: AccountRow) -> DaisySimClient | None:
        key: str | None = None
        if self._operator is not None and row.id == self._operator[0]:
            key = self._operator[1]
        elif row.key_encrypted is not None and self._vault is not None:
            key = self._vault.decrypt(row.key_encrypted)
        if key is None:
            logger.error("account %d (%s): no usable API key", row.id, row.key_masked)
            return None
        return self._client_factory(key)

    async def account(self, account_id: int) -> Account:
        acc = self.rt.accounts.get(account_id)
        if acc is None:
            row = await self.rt.repos.accounts.get(account_id)
            if row is None:
                raise RuntimeError(f"unknown account {account_id}")
            # Another caller may have opened it while this one read the row: keep
            # theirs. Two Account objects of one key would mean two purchase locks
            # (two purchases of one service at once) and two rate-limit budgets.
            acc = self.rt.accounts.get(account_id)
            if acc is None:
                acc = Account(row, self.client_for(row))
                self.rt.accounts[account_id] = acc
        return acc

    async def preload(self, account_ids: Iterable[int]) -> None:
        """Open many accounts with one query (start-up: every account with open
        numbers; 10,000 own keys would otherwise cost 10,000 statements)."""
        missing = {i for i in account_ids if i not in self.rt.accounts}
        if not missing:
            return
        for row in await self.rt.repos.accounts.many(missing):
            if row.id not in self.rt.accounts:  # not opened by someone meanwhile
                self.rt.accounts[row.id] = Account(row, self.client_for(row))

    async def account_ref(self, account_id: int) -> AccountRef:
        acc = await self.account(account_id)
        return AccountRef(acc.row, acc.client)

    async def funding_account(self, user_id: int) -> Account:
        """The account that buys for this user (the funding policy decides)."""
        return await self.account(await self.rt.policy.funding_account_id(user_id))

    @staticmethod
    def require_client(acc: Account) -> DaisySimClient:
        if acc.client is None:
            raise InvalidKey("the DaisySim key of this account is not available")
        return acc.client

    # ------------------------------------------------------------------ the operator
    async def register_operator(self, api_key: str) -> int:
        """The operator's key as the funding account (created or relinked)."""
        repos, now = self.rt.repos, self.rt.clock.now()
        digest = key_hash(api_key)
        encrypted = self._vault.encrypt(api_key) if self._vault is not None else None
        async with self.rt.db.transaction():
            row = await repos.accounts.by_hash(digest)
            if row is None:
                account_id = await repos.accounts.insert(
                    kind="operator", owner_user_id=None, key_hash=digest,
                    key_encrypted=encrypted, key_masked=mask_key(api_key), email=None, now=now,
                )
            else:
                account_id = row.id
                if row.removed_at is not None or row.key_encrypted != encrypted:
                    await repos.accounts.relink(
                        account_id, owner_user_id=None, key_encrypted=encrypted,
                        key_masked=mask_key(api_key), email=row.email,
                    )
            other = await repos.accounts.active_operator()
            while other is not None and other.id != account_id:
                # The operator key changed: the old account keeps finishing its
                # numbers if its key was stored encrypted.
                await repos.accounts.remove(other.id, now)
                other = await repos.accounts.active_operator()
        self._operator = (account_id, api_key)
        return account_id

    # ------------------------------------------------------------------ users' keys
    async def link_key(self, user_id: int, api_key: str) -> KeyInfo:
        if not self.rt.policy.users_bring_keys:
            raise NotAllowed("keys are linked only in own-key mode")
        assert self._vault is not None
        repos = self.rt.repos
        key = api_key.strip()
        if not valid_key_format(key):
            raise InvalidKey("this does not look like a DaisySim API key")
        await self.ensure_user(user_id)
        client = self._client_factory(key)
        try:
            balance = await client.balance()
        except ds.DaisySimError as err:
            raise map_error(err) from None
        finally:
            await self.close_client(client)
        digest = key_hash(key)
        masked = mask_key(key)
        encrypted = self._vault.encrypt(key)
        now = self.rt.clock.now()
        old_id: int | None = None
        async with self.rt.db.transaction():
            existing = await repos.accounts.by_hash(digest)
            if existing is not None and (
                existing.kind != "user"
                or (existing.removed_at is None and existing.owner_user_id != user_id)
            ):
                raise NotAllowed("this key is already linked by someone else")
            current = await repos.accounts.active_for_user(user_id)
            if current is not None and (existing is None or current.id != existing.id):
                await repos.accounts.remove(current.id, now)
                old_id = current.id
            if existing is not None:
                await repos.accounts.relink(
                    existing.id, owner_user_id=user_id, key_encrypted=encrypted,
                    key_masked=masked, email=balance.email,
                )
                account_id = existing.id
            else:
                account_id = await repos.accounts.insert(
                    kind="user", owner_user_id=user_id, key_hash=digest,
                    key_encrypted=encrypted, key_masked=masked, email=balance.email, now=now,
                )
        stale = self.rt.accounts.get(account_id)
        if stale is not None:
            stale.row = (await repos.accounts.get(account_id)) or stale.row
            if stale.client is None:
                stale.client = self.client_for(stale.row)
        if old_id is not None:
            await self.maybe_wipe(old_id)
        logger.info("user %d linked key %s", user_id, masked)
        return KeyInfo(masked=masked, balance=balance.balance, email=balance.email)

    async def unlink_key(self, user_id: int) -> bool:
        row = await self.rt.repos.accounts.active_for_user(user_id)
        if row is None:
            return False
        removed = await self.rt.repos.accounts.remove(row.id, self.rt.clock.now())
        acc = self.rt.accounts.get(row.id)
        if acc is not None:
            acc.catalogue = None
        if removed:
            logger.info("user %d unlinked key %s", user_id, row.key_masked)
            await self.maybe_wipe(row.id)
        return removed

    async def key_info(self, user_id: int) -> str | None:
        row = await self.rt.repos.accounts.active_for_user(user_id)
        return None if row is None else row.key_masked

    async def wipe_unused_keys(self) -> None:
        now = self.rt.clock.now()
        for row in await self.rt.repos.accounts.removed_keys_without_open_activations(now):
            if await self.rt.repos.accounts.wipe_key(row.id):
                logger.info("account %d (%s): key wiped after unlink", row.id, row.key_masked)
            acc = self.rt.accounts.pop(row.id, None)
            if acc is not None:
                await self.close_client(acc.client)

    async def maybe_wipe(self, account_id: int) -> None:
        """An unlinked key is wiped once nothing of its account is open."""
        row = await self.rt.repos.accounts.get(account_id)
        if row is None or row.removed_at is None or row.key_encrypted is None:
            return
        if await self.rt.repos.activations.count_open_for_account(account_id) == 0:
            await self.wipe_unused_keys()
