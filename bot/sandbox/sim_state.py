"""Domain state of the DaisySim simulator (no HTTP here).

Everything is synchronous and runs on the event loop thread, so every operation is
atomic with respect to other requests. Money is :class:`~decimal.Decimal` throughout;
floats appear only at the JSON boundary (see ``sim_http.py``).

Time is read from an injectable :class:`~bot.clock.Clock`. Nothing happens in the
background: "due" events (auto-SMS deliveries) are applied lazily by :meth:`SimState.tick`,
which every request handler and every state read calls first, so a
:class:`~bot.clock.VirtualClock` works without background tasks.

Choices where the upstream spec is silent (see ``simulator.py``'s module docstring for the
full list) are marked ``CHOICE`` below.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

from bot.clock import Clock
from bot.sandbox.sim_catalogue import CatalogueMixin, Pool, Service, default_catalogue
from bot.sandbox.sim_faults import (
    DEFAULT_FAULT_MESSAGES,
    FAULT_ENDPOINTS,
    RANDOM_ERRORS,
    RANDOM_KINDS,
    Fault,
    FaultAction,
    FaultsMixin,
    LatePurchase,
    RandomFaults,
)
from bot.sandbox.sim_models import (
    ACCOUNT_STATES,
    CENT4,
    FIRST_ACTIVATION_ID,
    MSG_INSUFFICIENT,
    MSG_INVALID_COUNTRY,
    MSG_OUT_OF_STOCK,
    MSG_PRICE_VERIFICATION,
    Account,
    Activation,
    ControlError,
    LedgerEntry,
    SimError,
    Stats,
    iso,
    money,
)

__all__ = [
    "ACCOUNT_STATES",
    "CENT4",
    "DEFAULT_FAULT_MESSAGES",
    "FAULT_ENDPOINTS",
    "FIRST_ACTIVATION_ID",
    "MSG_INSUFFICIENT",
    "MSG_INVALID_COUNTRY",
    "MSG_OUT_OF_STOCK",
    "MSG_PRICE_VERIFICATION",
    "RANDOM_ERRORS",
    "RANDOM_KINDS",
    "RATE_LIMITS",
    "RATE_WINDOW_SECONDS",
    "WAITING_CACHE_SECONDS",
    "Account",
    "Activation",
    "ControlError",
    "Fault",
    "FaultAction",
    "LatePurchase",
    "LedgerEntry",
    "Pool",
    "RandomFaults",
    "Service",
    "SimError",
    "SimState",
    "Stats",
    "default_catalogue",
    "iso",
    "money",
]

# Read at run time from this module (tests monkeypatch them here).
WAITING_CACHE_SECONDS = 15.0
RATE_WINDOW_SECONDS = 60.0

# bucket -> (limit, message template)
RATE_LIMITS: dict[str, tuple[int, str]] = {
    "purchase": (10, "Too many purchase attempts. Please wait {n}s."),
    "check": (60, "Too many check requests. Please wait {n}s."),
    "cancel": (10, "Too many cancel attempts. Please wait {n}s."),
}


class SimState(CatalogueMixin, FaultsMixin):
    def __init__(
        self,
        clock: Clock,
        *,
        cancel_lock: float = 180.0,
        window: float = 1200.0,
        auto_sms: tuple[float, float] | None = None,
        auto_sms_ratio: float = 1.0,
        seed: int | None = None,
        cache_bound: bool = False,
    ) -> None:
        if auto_sms is not None and not 0 <= auto_sms[0] <= auto_sms[1]:
            raise ValueError("auto_sms must be (min, max) with 0 <= min <= max")
        if not 0.0 <= auto_sms_ratio <= 1.0:
            raise ValueError("auto_sms_ratio must be within 0..1")
        self.clock = clock
        self.cancel_lock = float(cancel_lock)
        self.window = float(window)
        self.auto_sms = auto_sms
        self.auto_sms_ratio = auto_sms_ratio
        # CHOICE (spec §13, "when a stored code becomes visible"): False = the page's
        # literal words, a stored code is returned on the next call, cache or not;
        # True = the cache-bound reading, a cached Waiting hides it until the id's
        # 15-s cache runs out.
        self.cache_bound = cache_bound
        self.rng = random.Random(seed)
        self.accounts: dict[str, Account] = {}
        self.services = default_catalogue()
        self.activations: dict[int, Activation] = {}
        self._next_id = FIRST_ACTIVATION_ID
        self._phones: set[str] = set()
        self._pending_sms: list[Activation] = []
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}
        self.stats = Stats()
        self.faults: list[Fault] = []
        self.random_faults: RandomFaults | None = None
        self.late_purchases: list[LatePurchase] = []
        self.late_done: list[str] = []  # activation ids created by late purchases

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        return self.clock.now()

    def tick(self) -> float:
        """Apply every due event (late purchases, auto-SMS deliveries); return the
        current time."""
        now = self.clock.now()
        if self.late_purchases:
            due_now = [p for p in self.late_purchases if p.due <= now]
            if due_now:
                self.late_purchases = [p for p in self.late_purchases if p.due > now]
                for late in sorted(due_now, key=lambda p: p.due):
                    acct = self.accounts.get(late.account)
                    if acct is None:
                        continue
                    try:  # the server's own checks, at the time it gets to it
                        act = self._purchase_at(acct, late.due, **late.args)
                    except SimError:
                        continue  # failed late: nothing charged
                    self.late_done.append(act.aid)
        if self._pending_sms:
            still: list[Activation] = []
            for act in self._pending_sms:
                if act.sms_due is None:
                    continue
                due, code = act.sms_due
                if act.cancelled_at is not None or act.code is not None:
                    act.sms_due = None
                elif due >= act.expires_at:
                    act.sms_due = None  # the window closes first: never arrives
                elif due <= now:
                    act.code, act.code_at, act.sms_due = code, due, None
                else:
                    still.append(act)
            self._pending_sms = still
        return now

    # -------------------------------------------------------------- accounts
    def upsert_account(
        self,
        api_key: str,
        balance: Decimal | str | int | float | None = None,
        email: str | None = None,
        state: str | None = None,
    ) -> Account:
        if not api_key:
            raise ControlError(422, "api_key is required")
        if state is not None and state not in ACCOUNT_STATES:
            raise ControlError(422, f"state must be one of {', '.join(ACCOUNT_STATES)}")
        now = self.now()
        acct = self.accounts.get(api_key)
        if acct is None:
            bal = money(balance if balance is not None else "0")
            acct = Account(
                api_key=api_key,
                balance=bal,
                email=email or f"{api_key[:8]}@example.com",
                state=state or "active",
            )
            acct.ledger.append(LedgerEntry("deposit", bal, now))
            self.accounts[api_key] = acct
            return acct
        if balance is not None:
            bal = money(balance)
            delta = bal - acct.balance
            if delta:
                acct.ledger.append(LedgerEntry("adjust", delta, now))
            acct.balance = bal
        if email is not None:
            acct.email = email
        if state is not None:
            acct.state = state
        return acct

    def authenticate(self, authorization: str | None) -> Account:
        key = None
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                key = token.strip()
        acct = self.accounts.get(key) if key else None
        if acct is None:
            self.stats.unauthenticated += 1
            raise SimError(401, "UNAUTHENTICATED", "Unauthenticated.")
        return acct

    def check_account_state(self, acct: Account) -> None:
        if acct.state == "suspended":
            raise SimError(403, "ACCOUNT_SUSPENDED", "Your account has been suspended.")
        if acct.state == "locked":
            raise SimError(403, "ACCOUNT_LOCKED", "Your account is temporarily locked.")

    # ----------------------------------------------------------- rate limits
    def hit_rate_limit(self, acct: Account, bucket: str, endpoint: str) -> None:
        """Fixed 60-s window starting at the first hit (Laravel's RateLimiter).

        A refused request does not count against the budget and has no effect.
        """
        limit, template = RATE_LIMITS[bucket]
        now = self.now()
        start, used = self._windows.get((acct.api_key, bucket), (now, 0))
        if now >= start + RATE_WINDOW_SECONDS:
            start, used = now, 0
        if used >= limit:
            wait = max(1, math.ceil(start + RATE_WINDOW_SECONDS - now))
            self.stats.rate_limited[acct.api_key] += 1
            self.stats.rate_limited_by_endpoint[acct.api_key][endpoint] += 1
            raise SimError(429, "RATE_LIMITED", template.format(n=wait))
        self._windows[(acct.api_key, bucket)] = (start, used + 1)

    # ---------------------------------------------------------------- purchase
    def _new_phone(self) -> str:
        while True:
            phone = f"+1940{self.rng.randrange(10_000_000):07d}"
            if phone not in self._phones:
                self._phones.add(phone)
                return phone

    def add_late_purchase(self, acct: Account, due: float, **args: Any) -> LatePurchase:
        late = LatePurchase(due, acct.api_key, dict(args))
        self.late_purchases.append(late)
        return late

    def purchase(
        self,
        acct: Account,
        *,
        country: str,
        app: str,
        provider_id: str | None,
        app_name: str | None,
        country_name: str | None,
    ) -> Activation:
        now = self.tick()
        act = self._purchase_at(
            acct, now, country=country, app=app, provider_id=provider_id,
            app_name=app_name, country_name=country_name,
        )
        self.tick()  # a zero auto-SMS delay delivers at once
        return act

    def _purchase_at(
        self,
        acct: Account,
        now: float,
        *,
        country: str,
        app: str,
        provider_id: str | None,
        app_name: str | None,
        country_name: str | None,
    ) -> Activation:
        if country != "USA":
            raise SimError(422, "INVALID_COUNTRY", MSG_INVALID_COUNTRY)
        svc = self.services.get(app)
        if svc is None or svc.removed:
            raise SimError(422, "PRICE_VERIFICATION_FAILED", MSG_PRICE_VERIFICATION)
        pool: Pool | None = None
        if svc.multi:
            if provider_id is not None:
                match = [p for p in svc.pools if p.provider_id == provider_id]
                if not match:
                    raise SimError(422, "PRICE_VERIFICATION_FAILED", MSG_PRICE_VERIFICATION)
                pool = match[0]
                if pool.count <= 0:
                    raise SimError(503, "OUT_OF_STOCK", MSG_OUT_OF_STOCK)
            else:
                avail = [p for p in svc.sorted_pools() if p.count > 0]
                if not avail:
                    raise SimError(503, "OUT_OF_STOCK", MSG_OUT_OF_STOCK)
                pool = avail[0]
            price = pool.price
        else:
            assert svc.price is not None
            if svc.stock is not None and svc.stock <= 0:
                raise SimError(503, "OUT_OF_STOCK", MSG_OUT_OF_STOCK)
            price = svc.price
        if acct.balance < price:
            raise SimError(400, "INSUFFICIENT_BALANCE", MSG_INSUFFICIENT)
        # --- effect
        if pool is not None:
            pool.count -= 1
        elif svc.stock is not None:
            svc.stock -= 1
        acct.balance -= price
        act = Activation(
            id=self._next_id,
            account=acct.api_key,
            app=svc.code,
            pool=pool.provider_id if pool else None,
            price=price,
            phone=self._new_phone(),
            service_label=app_name or svc.name,
            country_label=country_name or country,
            purchased_at=now,
            expires_at=now + self.window,
        )
        self._next_id += 1
        self.activations[act.id] = act
        acct.ledger.append(LedgerEntry("charge", -price, now, act.aid))
        if self.auto_sms is not None and self.rng.random() < self.auto_sms_ratio:
            due = now + self.rng.uniform(*self.auto_sms)
            act.sms_due = (due, f"{self.rng.randrange(1_000_000):06d}")
            self._pending_sms.append(act)
        return act

    # ------------------------------------------------------------------- check
    def find(self, acct: Account, raw_id: str) -> Activation | None:
        if not (isinstance(raw_id, str) and raw_id.isascii() and raw_id.isdigit()):
            return None
        act = self.activations.get(int(raw_id))
        if act is None or act.account != acct.api_key:
            return None
        return act

    def check_one(self, act: Activation) -> dict[str, Any]:
        """One check of an owned activation, honouring the 15-s Waiting cache (which,
        unless ``cache_bound``, never hides a stored code)."""
        now = self.now()
        cached = act.cache_until is not None and now < act.cache_until
        if act.cancelled_at is not None:
            status, code = "Cancelled", None
        elif act.code is not None and not (cached and self.cache_bound):
            status, code = "Completed", act.code  # a stored code bypasses the cache
        elif cached:
            status, code = "Waiting", None  # cache-bound: even if an SMS arrived meanwhile
        elif now >= act.expires_at:
            status, code = "Expired", None
        else:
            status, code = "Waiting", None
            act.cache_until = now + WAITING_CACHE_SECONDS
        return {
            "activation_id": act.aid,
            "status": status,
            "code": code,
            "phone_number": act.phone,
        }

    # ------------------------------------------------------------------ cancel
    def cancel(self, acct: Account, raw_id: str) -> tuple[Activation, Decimal]:
        now = self.tick()
        act = self.find(acct, raw_id)
        if act is None:
            raise SimError(404, "NOT_FOUND", "Activation not found.")
        if act.cancelled_at is not None or act.refunded:
            raise SimError(422, "ALREADY_CANCELLED", "Activation already cancelled.")
        if act.code is not None:
            raise SimError(
                422,
                "CODE_RECEIVED",
                "Code already received. Cannot cancel.",
                {
                    "activation_id": act.aid,
                    "phone_number": act.phone,
                    "service": act.service_label,
                    "status": "Completed",
                    "code": act.code,
                },
            )
        elapsed = now - act.purchased_at
        if now < act.expires_at and elapsed < self.cancel_lock:
            left = max(1, math.ceil(self.cancel_lock - elapsed))
            raise SimError(
                422,
                "TOO_EARLY",
                f"Cancellation not yet allowed. Please wait {left} more second(s).",
            )
        act.cancelled_at = now
        act.refunded = True
        act.sms_due = None
        act.cache_until = None
        acct.balance += act.price
        acct.ledger.append(LedgerEntry("refund", act.price, now, act.aid))
        return act, act.price

    # ----------------------------------------------------------------- control
    def deliver_sms(self, activation_id: str | int, code: str) -> Activation:
        now = self.tick()
        try:
            act = self.activations.get(int(activation_id))
        except (TypeError, ValueError):
            act = None
        if act is None:
            raise ControlError(404, f"unknown activation {activation_id!r}")
        if not code:
            raise ControlError(422, "code must not be empty")
        if act.cancelled_at is not None:
            raise ControlError(409, "activation is cancelled")
        if act.code is not None:
            raise ControlError(409, "activation already has a code (one code per activation)")
        if now >= act.expires_at:
            raise ControlError(409, "activation has expired")
        act.code, act.code_at, act.sms_due = str(code), now, None
        return act

    # ----------------------------------------------------------------- history
    def history(
        self, acct: Account, status: str | None, page: int, per_page: int
    ) -> dict[str, Any]:
        now = self.tick()
        acts = [a for a in self.activations.values() if a.account == acct.api_key]
        acts.sort(key=lambda a: (a.purchased_at, a.id), reverse=True)
        if status is not None:
            wanted = {
                "completed": {"Completed"},
                "waiting": {"Waiting"},
                "cancelled": {"Cancelled", "Expired"},
            }[status]
            acts = [a for a in acts if a.status(now) in wanted]
        total = len(acts)
        last_page = max(1, math.ceil(total / per_page))
        chunk = acts[(page - 1) * per_page : page * per_page]
        orders = [
            {
                "activation_id": a.aid,
                "phone_number": a.phone,
                "service": a.service_label,
                "country": a.country_label,
                "status": a.status(now),
                "code": a.code,
                "amount_charged": a.price,
                "created_at": iso(a.purchased_at),
                "completed_at": iso(a.code_at) if a.code_at is not None else None,
            }
            for a in chunk
        ]
        return {
            "orders": orders,
            "pagination": {
                "current_page": page,
                "per_page": per_page,
                "total": total,
                "last_page": last_page,
            },
        }

    # ------------------------------------------------------------------- state
    def snapshot(self) -> dict[str, Any]:
        now = self.tick()
        stock: dict[str, Any] = {}
        for svc in self.services.values():
            if svc.multi:
                stock[svc.code] = {p.provider_id: p.count for p in svc.pools}
            else:
                stock[svc.code] = svc.stock  # None = ample
        return {
            "now": now,
            "accounts": {
                k: {"balance": str(a.balance), "email": a.email, "state": a.state}
                for k, a in self.accounts.items()
            },
            "activations": [
                {
                    "id": a.aid,
                    "account": a.account,
                    "app": a.app,
                    "pool": a.pool,
                    "price": str(a.price),
                    "phone_number": a.phone,
                    "status": a.status(now),
                    "code": a.code,
                    "purchased_at": a.purchased_at,
                    "expires_at": a.expires_at,
                    "cancelled_at": a.cancelled_at,
                    "refunded": a.refunded,
                    "sms_pending": a.sms_due is not None,
                }
                for a in self.activations.values()
            ],
            "ledger": {k: [e.as_dict() for e in a.ledger] for k, a in self.accounts.items()},
            "stock": stock,
            "removed_services": [s.code for s in self.services.values() if s.removed],
            "faults": [f.as_dict() for f in self.faults],
            "late_purchases": [
                {"due": p.due, "account": p.account, "app": p.args.get("app")}
                for p in self.late_purchases
            ],
            "late_done": list(self.late_done),
            "random_faults": self.random_faults.as_dict() if self.random_faults else None,
            **self.stats.as_dict(),
        }

    def invariant_violations(self) -> list[str]:
        """Money invariants; an empty list means the books balance."""
        problems: list[str] = []
        for key, acct in self.accounts.items():
            total = sum((e.amount for e in acct.ledger), Decimal(0))
            if total != acct.balance:
                problems.append(f"{key}: balance {acct.balance} != ledger sum {total}")
            if acct.balance < 0:
                problems.append(f"{key}: negative balance {acct.balance}")
            refunds: defaultdict[str, int] = defaultdict(int)
            for e in acct.ledger:
                if e.kind == "refund" and e.activation_id:
                    refunds[e.activation_id] += 1
            for aid, n in refunds.items():
                if n > 1:
                    problems.append(f"{key}: activation {aid} refunded {n} times")
                act = self.activations.get(int(aid))
                if act is not None and act.code is not None:
                    problems.append(f"{key}: activation {aid} refunded despite a code")
        return problems
