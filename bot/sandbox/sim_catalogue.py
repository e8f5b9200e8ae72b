"""The DaisySim simulator's catalogue: services (single-provider or with provider
pools), their prices (what /purchase charges vs the possibly stale price /apps
lists), stock, removal, and the /apps view."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.sandbox.sim_models import ControlError, money


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


class CatalogueMixin:
    """The catalogue part of :class:`~bot.sandbox.sim_state.SimState`."""

    services: dict[str, Service]

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
