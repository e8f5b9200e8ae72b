"""The DaisySim API endpoints (``/api/v1/server7/...``) of the simulator: balance,
countries, apps, purchase, check, check-all, cancel and history. Authentication,
account state, rate limits and faults come first (see ``Simulator._wrap``)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.sandbox.sim_http import json_body, ok, validation_error
from bot.sandbox.sim_state import Account, SimError, SimState

MAX_CHECK_ALL_IDS = 20
MAX_PER_PAGE = 100


class ApiRoutes:
    """The API handlers of :class:`~bot.sandbox.simulator.Simulator`."""

    core: SimState

    async def _balance(self, acct: Account, request: web.Request) -> web.Response:
        return ok({"balance": acct.balance, "currency": "USD", "email": acct.email})

    async def _countries(self, acct: Account, request: web.Request) -> web.Response:
        return ok({"countries": [{"id": "USA", "name": "USA"}]})

    async def _apps(self, acct: Account, request: web.Request) -> web.Response:
        if request.match_info["country"] != "USA":
            raise SimError(422, "INVALID_COUNTRY", "Country not supported")
        return ok(self.core.apps_view())

    async def _purchase(self, acct: Account, request: web.Request) -> web.Response:
        act = self.core.purchase(acct, **await self._purchase_args(request))
        return ok(
            {
                "activation_id": act.aid,
                "phone_number": act.phone,
                "service": act.service_label,
                "country": act.country_label,
                "amount_charged": act.price,
                "balance_after": acct.balance,
            },
            "Number purchased successfully.",
        )

    @staticmethod
    async def _purchase_args(request: web.Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, dict):
            body = {}
        fields: dict[str, str | None] = {}
        for name in ("country", "app"):
            value = body.get(name)
            if value is None or value == "":
                raise validation_error(f"The {name} field is required.")
            if not isinstance(value, str):
                raise validation_error(f"The {name} field must be a string.")
            fields[name] = value
        for name in ("app_name", "country_name"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise validation_error(f"The {name} field must be a string.")
            fields[name] = value or None
        pid = body.get("provider_id")
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, str | int)):
            raise validation_error("The provider_id field must be a string.")
        return {
            "country": fields["country"] or "",
            "app": fields["app"] or "",
            "provider_id": None if pid is None or pid == "" else str(pid),
            "app_name": fields["app_name"],
            "country_name": fields["country_name"],
        }

    async def _check(self, acct: Account, request: web.Request) -> web.Response:
        act = self.core.find(acct, request.match_info["id"])
        if act is None:
            raise SimError(404, "NOT_FOUND", "Activation not found.")
        return ok(self.core.check_one(act))

    async def _check_all(self, acct: Account, request: web.Request) -> web.Response:
        body = await json_body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if ids is None:
            raise validation_error("The ids field is required.")
        if not isinstance(ids, list):
            raise validation_error("The ids field must be an array.")
        if not ids:
            raise validation_error("The ids field is required.")
        if len(ids) > MAX_CHECK_ALL_IDS:
            raise validation_error(
                f"The ids field must not have more than {MAX_CHECK_ALL_IDS} items."
            )
        items: list[dict[str, Any]] = []
        for raw in ids:
            if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
                shown = raw if isinstance(raw, str) else json.dumps(raw)
                items.append({"activation_id": shown, "status": "Invalid", "code": None})
                continue
            act = self.core.find(acct, raw)
            if act is None:
                items.append({"activation_id": raw, "status": "Not Found", "code": None})
            else:
                items.append(self.core.check_one(act))
        return ok(items)

    async def _cancel(self, acct: Account, request: web.Request) -> web.Response:
        act, refund = self.core.cancel(acct, request.match_info["id"])
        return ok(
            {"activation_id": act.aid, "refund": refund, "balance_after": acct.balance},
            "Activation cancelled and refunded.",
        )

    async def _history(self, acct: Account, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status") or None
        if status is not None and status not in ("completed", "waiting", "cancelled"):
            raise validation_error("The selected status is invalid.")

        def int_param(name: str, default: int) -> int:
            raw = q.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                raise validation_error(f"The {name} field must be an integer.") from None
            if value < 1:
                raise validation_error(f"The {name} field must be at least 1.")
            return value

        per_page = min(int_param("per_page", 20), MAX_PER_PAGE)
        page = int_param("page", 1)
        return ok(self.core.history(acct, status, page, per_page))
