"""The simulator's control endpoints (``/_sim/...``, unauthenticated, on the API's
port): accounts, SMS delivery, the virtual clock, stock, prices, faults, services and
a state snapshot."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.clock import Clock, VirtualClock
from bot.sandbox.sim_http import json_body, json_response
from bot.sandbox.sim_state import FAULT_ENDPOINTS, ControlError, SimState


class ControlRoutes:
    """The ``/_sim/...`` handlers of :class:`~bot.sandbox.simulator.Simulator`."""

    clock: Clock
    core: SimState

    def add_control_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/_sim/accounts", self._ctl_accounts)
        router.add_post("/_sim/sms", self._ctl_sms)
        router.add_post("/_sim/advance", self._ctl_advance)
        router.add_post("/_sim/stock", self._ctl_stock)
        router.add_post("/_sim/price", self._ctl_price)
        router.add_post("/_sim/faults", self._ctl_faults)
        router.add_post("/_sim/services", self._ctl_services)
        router.add_get("/_sim/state", self._ctl_state)

    @staticmethod
    async def _ctl_body(request: web.Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ControlError(422, "a JSON object body is required")
        return body

    @staticmethod
    def _ctl_ok(data: Any) -> web.Response:
        return json_response({"success": True, "message": "OK", "data": data})

    async def _ctl_accounts(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        key = body.get("api_key")
        if not isinstance(key, str) or not key:
            raise ControlError(422, "api_key (string) is required")
        balance = body.get("balance")
        if balance is not None and (
            isinstance(balance, bool) or not isinstance(balance, str | int | float)
        ):
            raise ControlError(422, "balance must be a number or a decimal string")
        try:
            acct = self.core.upsert_account(
                key,
                str(balance) if balance is not None else None,
                body.get("email"),
                body.get("state"),
            )
        except ArithmeticError:
            raise ControlError(422, "balance is not a valid decimal") from None
        return self._ctl_ok(
            {
                "api_key": acct.api_key,
                "balance": str(acct.balance),
                "email": acct.email,
                "state": acct.state,
            }
        )

    async def _ctl_sms(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        aid, code = body.get("activation_id"), body.get("code")
        if aid is None or code is None:
            raise ControlError(422, "activation_id and code are required")
        act = self.core.deliver_sms(aid, str(code))
        return self._ctl_ok({"activation_id": act.aid, "code": act.code})

    async def _ctl_advance(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        if not isinstance(self.clock, VirtualClock):
            raise ControlError(409, "the simulator is not running on a virtual clock")
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ControlError(422, "seconds must be a number >= 0")
        self.clock.advance(float(seconds))
        now = self.core.tick()
        return self._ctl_ok({"now": now})

    async def _ctl_stock(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        app, count = body.get("app"), body.get("count")
        if not isinstance(app, str) or isinstance(count, bool) or not isinstance(count, int):
            raise ControlError(422, "app (string) and count (integer) are required")
        self.core.set_stock(app, body.get("provider_id"), count)
        return self._ctl_ok(self.core.snapshot()["stock"][app])

    async def _ctl_price(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        app, price, listed = body.get("app"), body.get("price"), body.get("listed")
        if not isinstance(app, str) or not all(
            v is None or (isinstance(v, str | int | float) and not isinstance(v, bool))
            for v in (price, listed)
        ) or price is None:
            raise ControlError(422, "app (string) and price (number or string) are required")
        try:
            self.core.set_price(
                app, body.get("provider_id"), str(price),
                listed=None if listed is None else str(listed),
            )
        except ArithmeticError:
            raise ControlError(422, "price is not a valid decimal") from None
        return self._ctl_ok(
            [a for a in self.core.apps_view() if a["code"] == app] or None
        )

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        try:
            if body.get("clear"):
                self.core.clear_faults()
            if "random" in body:
                rnd = body["random"]
                if rnd is None:
                    self.core.random_faults = None
                elif isinstance(rnd, dict):
                    lat = rnd.get("latency", (0.05, 0.3))
                    errs = rnd.get("errors")
                    late = rnd.get("late", (90.0, 150.0))
                    self.core.set_random_faults(
                        float(rnd.get("rate", 0.1)),
                        seed=rnd.get("seed"),
                        endpoints=tuple(rnd.get("endpoints", ("any",))),
                        kinds=tuple(rnd.get("kinds", ("error", "latency", "drop"))),
                        latency=(float(lat[0]), float(lat[1])),
                        errors=tuple((int(s), str(c)) for s, c in errs) if errs else None,
                        trickle=float(rnd.get("trickle", 1.0)),
                        late=(float(late[0]), float(late[1])),
                    )
                else:
                    raise ControlError(422, "random must be an object or null")
            if (
                "endpoint" in body
                or "status" in body
                or "code" in body
                or "drop" in body
                or "latency" in body
                or "trickle" in body
                or "patch" in body
                or "late" in body
            ):
                self.core.add_fault(
                    str(body.get("endpoint", "any")),
                    count=int(body.get("count", 1)),
                    status=int(body["status"]) if body.get("status") is not None else None,
                    code=body.get("code"),
                    message=body.get("message"),
                    latency=float(body.get("latency") or 0.0),
                    drop=bool(body.get("drop", False)),
                    trickle=float(body.get("trickle") or 0.0),
                    patch=body.get("patch"),
                    account=body.get("api_key"),
                    late=float(body["late"]) if body.get("late") is not None else None,
                )
        except (TypeError, ValueError, IndexError) as exc:
            raise ControlError(422, f"bad fault specification: {exc}") from None
        rf = self.core.random_faults
        return self._ctl_ok(
            {
                "faults": [f.as_dict() for f in self.core.faults],
                "random": rf.as_dict() if rf else None,
                "endpoints": list(FAULT_ENDPOINTS),
            }
        )

    async def _ctl_services(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        app = body.get("app")
        if not isinstance(app, str):
            raise ControlError(422, "app (string) is required")
        self.core.set_removed(app, bool(body.get("remove", True)))
        return self._ctl_ok({"app": app, "removed": self.core.services[app].removed})

    async def _ctl_state(self, request: web.Request) -> web.Response:
        return self._ctl_ok(self.core.snapshot())
