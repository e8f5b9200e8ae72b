"""Injected faults of the DaisySim simulator: one-shot faults (an error status, latency,
a dropped or trickled answer, a patched success, a late purchase) and seeded random
faults, and which one a request gets."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bot.sandbox.sim_models import ControlError


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


class FaultsMixin:
    """The fault part of :class:`~bot.sandbox.sim_state.SimState`."""

    faults: list[Fault]
    random_faults: RandomFaults | None

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
