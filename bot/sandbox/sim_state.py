"""Domain state of the DaisySim simulator (no HTTP here).

Everything is synchronous and runs on the event loop thread, so every operation is
atomic with respect to other requests. Money is :class:`~decimal.Decimal` throughout;
floats appear only at the JSON boundary (see ``simulator.py``).

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bot.clock import Clock

CENT4 = Decimal("0.0001")
ACCOUNT_STATES = ("active", "suspended", "locked")
FIRST_ACTIVATION_ID = 32886
WAITING_CACHE_SECONDS = 15.0
RATE_WINDOW_SECONDS = 60.0

# bucket -> (limit, message template)
RATE_LIMITS: dict[str, tuple[int, str]] = {
    "purchase": (10, "Too many purchase attempts. Please wait {n}s."),
    "check": (60, "Too many check requests. Please wait {n}s."),
    "cancel": (10, "Too many cancel attempts. Please wait {n}s."),
}

MSG_INSUFFICIENT = "Insufficient wallet balance."
MSG_OUT_OF_STOCK = "No numbers available right now. Please try again shortly."
MSG_PRICE_VERIFICATION = "Price verification failed. Please refresh the app list and try again."
MSG_INVALID_COUNTRY = "Country not supported"


def money(value: Decimal | str | int | float) -> Decimal:
    """Parse a money amount (floats via ``str``) and round to 4 decimals."""
    if isinstance(value, float):
        value = str(value)
    return Decimal(value).quantize(CENT4)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class SimError(Exception):
    """An API error: rendered as the error envelope with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.data = data


class ControlError(Exception):
    """A refused control operation (``/_sim/...`` or the Python control API)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class LedgerEntry:
    kind: str  # "deposit" | "adjust" | "charge" | "refund"
    amount: Decimal  # signed: charges negative
    at: float
    activation_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "amount": str(self.amount),
            "at": self.at,
            "activation_id": self.activation_id,
        }


@dataclass
class Account:
    api_key: str
    balance: Decimal
    email: str
    state: str = "active"
    ledger: list[LedgerEntry] = field(default_factory=list)


@dataclass
class Pool:
    provider_id: str
    price: Decimal  # what /purchase charges
    count: int
    # What /apps shows when it lags behind ``price`` (DaisySim's 5-minute price view
    # cache); None = ``price``. Set with ``set_price(..., listed=...)``.
    listed: Decimal | None = None

    @property
    def shown(self) -> Decimal:
        return self.price if self.listed is None else self.listed


@dataclass
class Service:
    code: str
    name: str
    price: Decimal | None = None  # single-provider services
    stock: int | None = None  # single-provider: None = ample
    pools: list[Pool] = field(default_factory=list)  # sb_* services
    removed: bool = False
    listed: Decimal | None = None  # single-provider: as Pool.listed

    @property
    def multi(self) -> bool:
        return bool(self.pools)

    def sorted_pools(self) -> list[Pool]:
        return sorted(self.pools, key=lambda p: (p.price, p.provider_id))


@dataclass
class Activation:
    id: int
    account: str
    app: str
    pool: str | None
    price: Decimal
    phone: str
    service_label: str
    country_label: str
    purchased_at: float
    expires_at: float
    code: str | None = None
    code_at: float | None = None
    cancelled_at: float | None = None
    refunded: bool = False
    sms_due: tuple[float, str] | None = None  # pending auto-SMS (due time, code)
    cache_until: float | None = None  # 15-s Waiting cache

    @property
    def aid(self) -> str:
        return str(self.id)

    def status(self, now: float) -> str:
        if self.code is not None:
            return "Completed"
        if self.cancelled_at is not None:
            return "Cancelled"
        if now >= self.expires_at:
            return "Expired"
        return "Waiting"


@dataclass
class Fault:
    endpoint: str
    remaining: int
    status: int | None = None
    code: str | None = None
    message: str | None = None
    latency: float = 0.0
    drop: bool = False
    trickle: float = 0.0  # slow-loris: headers, then the body one byte per this many s
    patch: dict[str, Any] | None = None  # success answers: data fields replaced (raw)
    account: str | None = None  # only requests with this API key (None: any)
    late: float | None = None  # purchase only: done this many sim seconds later

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "remaining": self.remaining,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "latency": self.latency,
            "drop": self.drop,
            "trickle": self.trickle,
            "patch": None if self.patch is None else {k: str(v) for k, v in self.patch.items()},
            "account": None if self.account is None else "…" + self.account[-4:],
            "late": self.late,
        }


@dataclass
class FaultAction:
    """What to do with one request: sleep ``latency`` s, then fail or drop; or
    answer with ``patch`` applied, or trickle the answer (``trickle`` s a byte).
    ``late``: (purchase) the request gets no answer (or the error ``status``) and
    the server carries the purchase out ``late`` seconds of sim time later."""

    latency: float = 0.0
    status: int | None = None
    code: str | None = None
    message: str | None = None
    drop: bool = False
    trickle: float = 0.0
    patch: dict[str, Any] | None = None
    late: float | None = None


@dataclass
class LatePurchase:
    """A purchase request the server finishes after the client gave up."""

    due: float
    account: str
    args: dict[str, Any]


DEFAULT_FAULT_MESSAGES = {
    "SERVER_ERROR": "Internal server error.",
    "PROVIDER_ERROR": "Upstream provider error. Please retry in a few seconds.",
    "CONCURRENT_ERROR": "Concurrent transaction detected. Please retry.",
}
RANDOM_ERRORS: tuple[tuple[int, str], ...] = (
    (500, "SERVER_ERROR"),
    (502, "PROVIDER_ERROR"),
    (409, "CONCURRENT_ERROR"),
)
RANDOM_KINDS = ("error", "latency", "drop", "trickle", "late")
FAULT_ENDPOINTS = (
    "purchase",
    "check",
    "check-all",
    "cancel",
    "balance",
    "apps",
    "history",
    "countries",
    "any",
)


@dataclass
class RandomFaults:
    rate: float
    rng: random.Random
    endpoints: tuple[str, ...] = ("any",)
    kinds: tuple[str, ...] = ("error", "latency", "drop")
    latency: tuple[float, float] = (0.05, 0.3)
    errors: tuple[tuple[int, str], ...] = RANDOM_ERRORS
    trickle: float = 1.0
    # kind "late" (purchases only; other endpoints get no fault from it): the late
    # purchase, carried out uniform(*late) sim seconds after the request.
    late: tuple[float, float] = (90.0, 150.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "endpoints": list(self.endpoints),
            "kinds": list(self.kinds),
            "latency": list(self.latency),
            "late": list(self.late),
            "errors": [list(e) for e in self.errors],
            "trickle": self.trickle,
        }


class Stats:
    """Per-account request counters (every authenticated request) and 429 counts."""

    def __init__(self) -> None:
        self.requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.rate_limited: defaultdict[str, int] = defaultdict(int)
        self.rate_limited_by_endpoint: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.unauthenticated = 0

    def count(self, account: str, endpoint: str) -> int:
        per = self.requests.get(account)
        return per.get(endpoint, 0) if per is not None else 0

    def total(self, account: str) -> int:
        per = self.requests.get(account)
        return sum(per.values()) if per is not None else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {k: dict(v) for k, v in self.requests.items()},
            "rate_limited": dict(self.rate_limited),
            "rate_limited_by_endpoint": {
                k: dict(v) for k, v in self.rate_limited_by_endpoint.items()
            },
            "unauthenticated": self.unauthenticated,
        }


def default_catalogue() -> dict[str, Service]:
    d = Decimal
    services = [
        Service("WhatsApp", "WhatsApp", price=d("1.8500")),
        Service("whatsapp-(us)5", "WhatsApp 2", price=d("0.7400")),
        Service("Signal", "Signal", price=d("0.6000")),
        Service("Telegram", "Telegram", price=d("1.4000")),
        Service(
            "sb_wa",
            "WhatsApp 3",
            pools=[
                Pool("3109", d("1.0830"), 4000),
                Pool("2266", d("1.0920"), 4296),
                Pool("3170", d("1.3810"), 1000),
                Pool("2617", d("3.6000"), 344),
            ],
        ),
        Service(
            "sb_tg",
            "Telegram 2",
            pools=[Pool("2266", d("0.4500"), 1820), Pool("3109", d("0.6000"), 980)],
        ),
        Service(
            "sb_fb",
            "Facebook",
            pools=[Pool("3109", d("0.5000"), 2100), Pool("2266", d("0.6500"), 890)],
        ),
    ]
    return {s.code: s for s in services}


class SimState:
    def __init__(
        self,
        clock: Clock,
        *,
        cancel_lock: float = 180.0,
        window: float = 1200.0,
        auto_sms: tuple[float, float] | None = None,
        auto_sms_ratio: float = 1.0,
        seed: int | None = None,
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

    # ---------------------------------------------------------------- faults
    def add_fault(
        self,
        endpoint: str = "any",
        *,
        count: int = 1,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
        latency: float = 0.0,
        drop: bool = False,
        trickle: float = 0.0,
        patch: dict[str, Any] | None = None,
        account: str | None = None,
        late: float | None = None,
    ) -> Fault:
        if late is not None:
            # The late purchase: no answer (or the error ``status``), the order
            # appears ``late`` s later with that time as its created_at.
            if endpoint != "purchase":
                raise ControlError(422, "late applies to the purchase endpoint only")
            if late <= 0 or drop or latency:
                raise ControlError(422, "late must be > 0, without drop or latency")
            if code is not None and status is None:
                status = {"CONCURRENT_ERROR": 409, "PROVIDER_ERROR": 502}.get(code, 500)
            if status is not None and status < 500:
                raise ControlError(422, "a late purchase answers nothing or a 5xx status")
            if status is not None and code is None:
                code = {502: "PROVIDER_ERROR"}.get(status, "SERVER_ERROR")
            if status is not None and message is None:
                message = DEFAULT_FAULT_MESSAGES.get(code or "", "Server error.")
            fault = Fault(endpoint, count, status, code, message, 0.0, status is None,
                          late=float(late))
            if count < 1:
                raise ControlError(422, "count must be >= 1")
            self.faults.append(fault)
            return fault
        if endpoint not in FAULT_ENDPOINTS:
            raise ControlError(422, f"endpoint must be one of {', '.join(FAULT_ENDPOINTS)}")
        if count < 1:
            raise ControlError(422, "count must be >= 1")
        if latency < 0:
            raise ControlError(422, "latency must be >= 0")
        if code is not None and status is None:
            status = {"CONCURRENT_ERROR": 409, "PROVIDER_ERROR": 502}.get(code, 500)
        if status is not None and code is None:
            code = {409: "CONCURRENT_ERROR", 502: "PROVIDER_ERROR"}.get(status, "SERVER_ERROR")
        if trickle < 0:
            raise ControlError(422, "trickle must be >= 0")
        if account is not None and not isinstance(account, str):
            raise ControlError(422, "api_key must be a string")
        if patch is not None and (
            not isinstance(patch, dict) or not patch or not all(isinstance(k, str) for k in patch)
        ):
            raise ControlError(422, "patch must be a non-empty object of path -> value")
        if status is not None and drop:
            raise ControlError(422, "a fault either fails (status) or drops, not both")
        if drop and (trickle or patch):
            raise ControlError(422, "a dropped answer cannot be trickled or patched")
        if status is not None and patch:
            raise ControlError(422, "patch applies to success answers, not to a status")
        if status is None and not drop and latency == 0 and not trickle and not patch:
            raise ControlError(422, "a fault needs status/code, latency, drop, trickle or patch")
        if status is not None and message is None:
            message = DEFAULT_FAULT_MESSAGES.get(code or "", "Server error.")
        fault = Fault(
            endpoint, count, status, code, message, float(latency), drop, float(trickle),
            dict(patch) if patch else None, account,
        )
        self.faults.append(fault)
        return fault

    def set_random_faults(
        self,
        rate: float,
        *,
        seed: int | None = None,
        endpoints: tuple[str, ...] | list[str] = ("any",),
        kinds: tuple[str, ...] | list[str] = ("error", "latency", "drop"),
        latency: tuple[float, float] = (0.05, 0.3),
        errors: tuple[tuple[int, str], ...] | None = None,
        trickle: float = 1.0,
        late: tuple[float, float] = (90.0, 150.0),
    ) -> RandomFaults:
        if not 0.0 < late[0] <= late[1]:
            raise ControlError(422, "late must be [min, max] with 0 < min <= max")
        if not 0.0 <= rate <= 1.0:
            raise ControlError(422, "rate must be within 0..1")
        for e in endpoints:
            if e not in FAULT_ENDPOINTS:
                raise ControlError(422, f"unknown endpoint {e!r}")
        for k in kinds:
            if k not in RANDOM_KINDS:
                raise ControlError(422, f"unknown kind {k!r} ({', '.join(RANDOM_KINDS)})")
        if trickle <= 0:
            raise ControlError(422, "trickle must be > 0")
        if not kinds:
            raise ControlError(422, "kinds must not be empty")
        lo, hi = float(latency[0]), float(latency[1])
        if not 0 <= lo <= hi:
            raise ControlError(422, "latency must be [min, max] with 0 <= min <= max")
        self.random_faults = RandomFaults(
            rate=rate,
            rng=random.Random(seed),
            endpoints=tuple(endpoints),
            kinds=tuple(kinds),
            latency=(lo, hi),
            errors=tuple((int(s), str(c)) for s, c in errors) if errors else RANDOM_ERRORS,
            trickle=float(trickle),
            late=(float(late[0]), float(late[1])),
        )
        return self.random_faults

    def clear_faults(self) -> None:
        self.faults.clear()
        self.random_faults = None

    def _consume(self, fault: Fault) -> FaultAction:
        fault.remaining -= 1
        if fault.remaining == 0:
            self.faults.remove(fault)
        return FaultAction(
            fault.latency, fault.status, fault.code, fault.message, fault.drop,
            fault.trickle, fault.patch, late=fault.late,
        )

    def take_fault_for(self, api_key: str, endpoint: str) -> FaultAction | None:
        """Consume the fault (if any) that applies to this account's request: one
        added for this account first, else :meth:`take_fault`."""
        for fault in self.faults:
            if (
                fault.account == api_key
                and fault.remaining > 0
                and fault.endpoint in (endpoint, "any")
            ):
                return self._consume(fault)
        return self.take_fault(endpoint)

    def take_fault(self, endpoint: str) -> FaultAction | None:
        """Consume the fault (if any, not tied to an account) or the random fault
        that applies to this request."""
        for fault in self.faults:
            if fault.account is None and fault.remaining > 0 and fault.endpoint in (
                endpoint, "any"
            ):
                return self._consume(fault)
        rf = self.random_faults
        if rf is not None and ("any" in rf.endpoints or endpoint in rf.endpoints):
            if rf.rng.random() < rf.rate:
                kind = rf.rng.choice(rf.kinds)
                if kind == "late":
                    if endpoint != "purchase":
                        return None
                    return FaultAction(drop=True, late=rf.rng.uniform(*rf.late))
                if kind == "latency":
                    return FaultAction(latency=rf.rng.uniform(*rf.latency))
                if kind == "drop":
                    return FaultAction(drop=True)
                if kind == "trickle":
                    return FaultAction(trickle=rf.trickle)
                status, code = rf.rng.choice(rf.errors)
                return FaultAction(
                    status=status, code=code, message=DEFAULT_FAULT_MESSAGES.get(code, "Error.")
                )
        return None

    # --------------------------------------------------------------- catalogue
    def service(self, app: str) -> Service:
        svc = self.services.get(app)
        if svc is None:
            raise ControlError(404, f"unknown service {app!r}")
        return svc

    def set_stock(self, app: str, provider_id: str | int | None, count: int) -> None:
        if count < 0:
            raise ControlError(422, "count must be >= 0")
        svc = self.service(app)
        if not svc.multi:
            svc.stock = count  # provider_id is ignored for single-provider services
            return
        pid = str(provider_id) if provider_id is not None else None
        for pool in svc.pools:
            if pool.provider_id == pid:
                pool.count = count
                return
        raise ControlError(404, f"unknown provider_id {provider_id!r} for {app}")

    def set_price(
        self, app: str, provider_id: str | int | None, price: Decimal | str,
        *, listed: Decimal | str | None = None,
    ) -> None:
        """The price /purchase charges from now on; ``listed``: the (stale) price
        /apps keeps showing meanwhile (default: the same)."""
        amount = money(price)
        shown = None if listed is None else money(listed)
        if amount <= 0 or (shown is not None and shown <= 0):
            raise ControlError(422, "prices must be > 0")
        svc = self.service(app)
        if not svc.multi:
            svc.price, svc.listed = amount, shown
            return
        pid = str(provider_id) if provider_id is not None else None
        for pool in svc.pools:
            if pool.provider_id == pid:
                pool.price, pool.listed = amount, shown
                return
        raise ControlError(404, f"unknown provider_id {provider_id!r} for {app}")

    def set_removed(self, app: str, removed: bool) -> None:
        self.service(app).removed = removed

    def apps_view(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for svc in self.services.values():
            if svc.removed:
                continue
            if svc.multi:
                pools = sorted(svc.pools, key=lambda p: (p.shown, p.provider_id))
                in_stock = [p for p in pools if p.count > 0]
                # CHOICE: price = cheapest pool with stock (cheapest overall if none has stock);
                # empty pools stay listed with count 0.
                price = (in_stock or pools)[0].shown
                providers = [
                    {"provider_id": p.provider_id, "price": p.shown, "count": p.count}
                    for p in pools
                ]
                out.append(
                    {"code": svc.code, "name": svc.name, "price": price, "providers": providers}
                )
            else:
                shown = svc.price if svc.listed is None else svc.listed
                out.append(
                    {"code": svc.code, "name": svc.name, "price": shown, "providers": []}
                )
        return out

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
        """One check of an owned activation, honouring the 15-s Waiting cache."""
        now = self.now()
        if act.cancelled_at is not None:
            status, code = "Cancelled", None
        elif act.cache_until is not None and now < act.cache_until:
            status, code = "Waiting", None  # cached, even if an SMS arrived meanwhile
        elif act.code is not None:
            status, code = "Completed", act.code
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
