"""The BASELINE: the provider's reference flow (spec section 12), step 3.

Each activation is polled on its own: ``POST /check-all`` with that one id every
15 s, up to 40 times; stop on ``Completed`` (the code) or ``Not Found`` /
``Invalid``. Plain HTTP with no client-side limiter, no batching and no retry,
like the provider's JavaScript example (a failed poll — e.g. a 429 — is simply
followed by the next one 15 s later).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from bot.clock import Clock

INTERVAL = 15.0
MAX_POLLS = 40


@dataclass
class Outcome:
    activation_id: str
    code: str | None = None
    seen_at: float | None = None  # clock time the code was first seen
    polls: int = 0
    rate_limited: int = 0
    errors: int = 0
    status: str = "Waiting"


@dataclass
class ReferenceFleet:
    """One independent reference poller per activation."""

    http: httpx.AsyncClient
    clock: Clock
    interval: float = INTERVAL
    max_polls: int = MAX_POLLS
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    busy: int = 0  # pollers between two sleeps (mid-request)
    tasks: list[asyncio.Task[Outcome]] = field(default_factory=list)

    @classmethod
    def create(cls, base_url: str, api_key: str, clock: Clock, **kwargs: float) -> ReferenceFleet:
        http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=10.0,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        )
        return cls(http, clock, **kwargs)  # type: ignore[arg-type]

    def start(self, activation_id: str, delay: float = 0.0) -> None:
        self.outcomes[activation_id] = Outcome(activation_id)
        self.busy += 1  # counted busy until its first sleep
        self.tasks.append(asyncio.ensure_future(self._run(activation_id, delay)))

    async def _sleep(self, seconds: float) -> None:
        self.busy -= 1
        try:
            await self.clock.sleep(seconds)
        finally:
            self.busy += 1

    async def _run(self, activation_id: str, delay: float) -> Outcome:
        out = self.outcomes[activation_id]
        try:
            if delay > 0:
                await self._sleep(delay)
            for _ in range(self.max_polls):
                out.polls += 1
                item = await self._check(activation_id, out)
                if item is not None:
                    code = item.get("code")
                    out.status = str(item.get("status"))
                    if code:
                        out.code = str(code)
                        out.seen_at = self.clock.now()
                        return out
                    if out.status in ("Not Found", "Invalid"):
                        return out
                await self._sleep(self.interval)
            return out
        finally:
            self.busy -= 1

    async def _check(self, activation_id: str, out: Outcome) -> dict[str, object] | None:
        try:
            response = await self.http.post("/check-all", json={"ids": [activation_id]})
        except httpx.HTTPError:
            out.errors += 1
            return None
        if response.status_code == 429:
            out.rate_limited += 1
            return None
        if response.status_code != 200:
            out.errors += 1
            return None
        payload = response.json()
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            out.errors += 1
            return None
        return data[0]

    async def wait(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks)

    async def aclose(self) -> None:
        for task in self.tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()
