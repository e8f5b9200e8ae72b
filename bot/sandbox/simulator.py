"""A strict, faithful DaisySim (server7) API simulator: a real aiohttp HTTP server.

API under ``/api/v1/server7/...`` exactly as in the DaisySim API reference (server7);
unauthenticated control endpoints under ``/_sim/...`` on the same port.

Choices where the upstream spec is silent (clients must not rely on more than the spec):

* Envelope for unknown routes: 404 ``NOT_FOUND``; wrong method: 405 ``METHOD_NOT_ALLOWED``.
* Order of checks on every API request: route → auth (401) → account state (403) →
  rate limit (429; a refused request has no effect and does not use budget) → injected
  fault → validation → business rules.
* Rate limits: fixed 60-s window starting at the first hit (Laravel ``RateLimiter``).
  ``/check`` and ``/check-all`` share one 60/60 s budget; a check-all request costs 1.
  The wait in the message is ``ceil(window end - now)``, at least 1.
* Validation errors (missing ``country``/``app``, bad ``ids``, bad history query):
  422 ``VALIDATION_ERROR``. A ``price`` field in /purchase is ignored.
* /purchase check order: country → service (unknown/removed → PRICE_VERIFICATION_FAILED;
  unknown ``provider_id`` for ``sb_*`` too) → stock (OUT_OF_STOCK) → balance
  (INSUFFICIENT_BALANCE). ``service`` in the answer and on the order = ``app_name`` if
  given, else the service's display name (e.g. ``sb_wa`` → "WhatsApp 3"); ``country`` =
  ``country_name`` if given else the country id. Activation ids are consecutive integers
  from 32886 (strings in JSON); phone numbers ``+1940XXXXXXX``, unique.
* /apps: ``sb_*`` pools are sorted cheapest-first (ties by provider_id); pools with no
  stock stay listed with ``count: 0``; the service ``price`` is the cheapest pool *with
  stock* (the cheapest pool overall if none has stock). Single-provider services have
  ample stock unless set through ``/_sim/stock``. ``/_sim/price`` sets what /purchase
  charges for a pool (single-provider: the service) and, with ``listed``, a different,
  stale price that /apps keeps showing (DaisySim's 5-minute price view lagging behind).
* /check and /check-all: the 15-s ``Waiting`` cache per activation id (a served Waiting is
  cached 15 s). When a stored code becomes visible (spec §13) has two readings: by
  default the page's literal words, a stored code is returned at once on every call,
  bypassing the cache; with ``cache_bound=True`` (CLI ``--cache-bound``, env
  ``DAISYSIM_SIM_CACHE_BOUND=1``) Waiting is served while cached even if the SMS has
  arrived, and the stored code on every call afterwards. Statuses beyond the documented two:
  ``Cancelled`` (after a successful cancel) and ``Expired`` (window over, no code). Found
  ids always carry ``phone_number``; ``Not Found`` (unknown/foreign) and ``Invalid`` (not a
  string of digits, e.g. JSON numbers) do not. ``ids`` must be a non-empty list of at most
  20 entries, else 422 VALIDATION_ERROR. /check of an unknown/foreign/non-numeric id → 404.
* /cancel order: NOT_FOUND → already cancelled (422 ``ALREADY_CANCELLED``, never a second
  refund) → code stored (422 CODE_RECEIVED — a code wins over TOO_EARLY) → window expired
  (full refund, no lock) → TOO_EARLY (``ceil`` of the seconds left) → full refund.
* Activation window (default 1200 s): afterwards no SMS can arrive; check/history show
  ``Expired``; cancel refunds in full, once (then status ``Cancelled``).
* /history: newest first; ``status`` ∈ completed|waiting|cancelled (cancelled = Cancelled +
  Expired) else 422; ``per_page`` default 20, above 100 clamped to 100, below 1 → 422;
  ``page`` 1-based (< 1 → 422, past the end → empty ``orders``).
* Faults (``/_sim/faults``): an error fault answers with its status/code and has no effect;
  latency is a real ``asyncio.sleep`` (wall time, not the sim clock) before processing; a
  drop performs the request's effect and then aborts the connection with no response.
  Faults are consumed only by requests that pass auth, account state and rate limiting.
  A *trickle* fault (slow loris) performs the request, sends the answer's headers (with
  its true Content-Length) at once and then its body one byte every ``trickle`` seconds
  (wall time) until done or the client goes away. A *patch* fault performs the request
  and, if it succeeds, replaces fields of the answer's ``data`` before sending it, to
  play a careless upstream (``{"amount_charged": -5}``; paths: see :func:`apply_patch`).
  A ``late`` purchase fault (the late purchase) validates the body, then cuts the
  connection (or answers its 5xx ``status``) and carries the purchase out ``late``
  simulator seconds later, with the server's checks at that time and that time as the
  order's ``created_at``; ``/_sim/state`` lists them under ``late_purchases`` (pending)
  and ``late_done`` (the activation ids created).
* ``rtt`` (CLI ``--rtt SECONDS``): every API request spends that long on the wire, on the
  simulator's clock (half before it is handled, half after).
* Auto-SMS (``auto_sms=(min, max)``): each purchase gets, with probability
  ``auto_sms_ratio``, a random 6-digit code due at purchase + uniform(min, max); due
  deliveries are applied lazily whenever a request (or a state read) is handled. A code
  due after the window closes never arrives; ``completed_at`` is the due time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.clock import Clock, SystemClock, VirtualClock
from bot.sandbox.sim_api import ApiRoutes
from bot.sandbox.sim_control import ControlRoutes
from bot.sandbox.sim_http import (
    Handler,
    apply_patch,
    fail,
    patch_answer,
    trickle_body,
)
from bot.sandbox.sim_state import (
    Account,
    Activation,
    ControlError,
    Fault,
    RandomFaults,
    SimError,
    SimState,
    Stats,
)

__all__ = [
    "ControlError",
    "SimError",
    "Simulator",
    "SimulatorServer",
    "Stats",
    "apply_patch",
    "main",
    "start_simulator",
]

API_PREFIX = "/api/v1/server7"


class Simulator(ApiRoutes, ControlRoutes):
    """The simulator: state + an aiohttp application serving it."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        cancel_lock: float = 180.0,
        window: float = 1200.0,
        auto_sms: tuple[float, float] | None = None,
        auto_sms_ratio: float = 1.0,
        seed: int | None = None,
        cache_bound: bool = False,
        rtt: float = 0.0,
    ) -> None:
        """``cache_bound``: the cache-bound reading of a stored code (see the module
        docstring; default: the documented reading). ``rtt``: seconds of the
        simulator's clock every API request spends on the wire, half before it
        is handled and half after (a VirtualClock makes it virtual time)."""
        if rtt < 0:
            raise ValueError("rtt must be >= 0")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.core = SimState(
            self.clock,
            cancel_lock=cancel_lock,
            window=window,
            auto_sms=auto_sms,
            auto_sms_ratio=auto_sms_ratio,
            seed=seed,
            cache_bound=cache_bound,
        )
        self.stats: Stats = self.core.stats
        self.rtt = float(rtt)
        self.on_wire = 0  # API requests now sleeping their rtt (not being worked on)

    # ------------------------------------------------------ Python control API
    def add_account(
        self,
        api_key: str,
        balance: Decimal | str | int = "0",
        email: str | None = None,
        state: str = "active",
    ) -> Account:
        """Create an account, or update an existing one (balance/email/state)."""
        return self.core.upsert_account(api_key, balance, email, state)

    def update_account(
        self,
        api_key: str,
        *,
        balance: Decimal | str | int | None = None,
        email: str | None = None,
        state: str | None = None,
    ) -> Account:
        return self.core.upsert_account(api_key, balance, email, state)

    def balance(self, api_key: str) -> Decimal:
        self.core.tick()
        return self.core.accounts[api_key].balance

    def activation(self, activation_id: str | int) -> Activation:
        self.core.tick()
        return self.core.activations[int(activation_id)]

    def deliver_sms(self, activation_id: str | int, code: str) -> Activation:
        """The SMS reaches the provider now. Raises ControlError if it cannot."""
        return self.core.deliver_sms(activation_id, code)

    def set_stock(self, app: str, provider_id: str | int | None, count: int) -> None:
        self.core.set_stock(app, provider_id, count)

    def set_price(
        self, app: str, provider_id: str | int | None, price: Decimal | str,
        *, listed: Decimal | str | None = None,
    ) -> None:
        """What /purchase charges for the pool (single-provider: the service) from
        now on; ``listed``: what /apps keeps showing (a lagging price view)."""
        self.core.set_price(app, provider_id, price, listed=listed)

    def remove_service(self, app: str) -> None:
        self.core.set_removed(app, True)

    def restore_service(self, app: str) -> None:
        self.core.set_removed(app, False)

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
        api_key: str | None = None,
        late: float | None = None,
    ) -> Fault:
        """The next ``count`` requests to ``endpoint`` fail / are slowed / are dropped /
        have their answer trickled one byte per ``trickle`` s / have ``patch`` applied
        to their answer (see the module docstring and :func:`apply_patch`). With
        ``api_key``, only that account's requests.

        ``late`` (purchase only): the late purchase. The request gets no answer (the
        connection is cut at once) or, with ``status``, that 5xx error; the server
        carries the purchase out ``late`` seconds of simulator time later (its own
        checks then; the order's ``created_at`` is that time)."""
        return self.core.add_fault(
            endpoint,
            count=count,
            status=status,
            code=code,
            message=message,
            latency=latency,
            drop=drop,
            trickle=trickle,
            patch=patch,
            account=api_key,
            late=late,
        )

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
        """Each request fails with probability ``rate`` (a seeded mix of ``kinds``:
        error, latency, drop, trickle — the answer sent one byte per ``trickle`` s —
        and late: a purchase answered by a cut connection and carried out
        uniform(*late) simulator seconds later, the late purchase)."""
        return self.core.set_random_faults(
            rate, seed=seed, endpoints=endpoints, kinds=kinds, latency=latency, errors=errors,
            trickle=trickle, late=late,
        )

    def clear_faults(self) -> None:
        self.core.clear_faults()

    def state(self) -> dict[str, Any]:
        return self.core.snapshot()

    def invariant_violations(self) -> list[str]:
        return self.core.invariant_violations()

    # ----------------------------------------------------------------- HTTP app
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._envelope_middleware])
        r = app.router
        p = API_PREFIX
        r.add_get(f"{p}/balance", self._wrap("balance", None, self._balance))
        r.add_get(f"{p}/countries", self._wrap("countries", None, self._countries))
        r.add_get(f"{p}/apps/{{country}}", self._wrap("apps", None, self._apps))
        r.add_post(f"{p}/purchase", self._wrap("purchase", "purchase", self._purchase))
        r.add_get(f"{p}/check/{{id}}", self._wrap("check", "check", self._check))
        r.add_post(f"{p}/check-all", self._wrap("check-all", "check", self._check_all))
        r.add_post(f"{p}/cancel/{{id}}", self._wrap("cancel", "cancel", self._cancel))
        r.add_get(f"{p}/history", self._wrap("history", None, self._history))
        self.add_control_routes(r)
        return app

    @web.middleware
    async def _envelope_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return fail(404, "NOT_FOUND", "Not found.")
        except web.HTTPMethodNotAllowed:
            return fail(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
        except web.HTTPException as exc:
            return fail(exc.status, "HTTP_ERROR", exc.reason)
        except SimError as exc:
            return fail(exc.status, exc.code, exc.message, exc.data)
        except ControlError as exc:
            return fail(exc.status, "CONTROL_ERROR", exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a simulator bug
            import logging

            logging.getLogger(__name__).exception("simulator bug")
            return fail(500, "SERVER_ERROR", "Internal server error.")

    async def _travel(self) -> None:
        """Half the round trip, on the simulator's clock."""
        self.on_wire += 1
        try:
            await self.clock.sleep(self.rtt / 2)
        finally:
            self.on_wire -= 1

    def _wrap(
        self, endpoint: str, bucket: str | None, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        inner = self._wrap_inner(endpoint, bucket, handler)

        async def wrapped(request: web.Request) -> web.StreamResponse:
            if self.rtt <= 0:
                return await inner(request)
            await self._travel()
            try:
                response = await inner(request)
            except SimError as exc:
                response = fail(exc.status, exc.code, exc.message, exc.data)
            await self._travel()
            return response

        return wrapped

    def _wrap_inner(
        self, endpoint: str, bucket: str | None, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        core = self.core

        async def wrapped(request: web.Request) -> web.StreamResponse:
            core.tick()
            acct = core.authenticate(request.headers.get("Authorization"))
            core.stats.requests[acct.api_key][endpoint] += 1
            core.check_account_state(acct)
            if bucket is not None:
                core.hit_rate_limit(acct, bucket, endpoint)
            fault = core.take_fault_for(acct.api_key, endpoint)
            if fault is not None and fault.late is not None:
                args = await self._purchase_args(request)  # a malformed one fails now
                core.add_late_purchase(acct, core.now() + fault.late, **args)
                if fault.status is not None:
                    return fail(fault.status, fault.code or "SERVER_ERROR",
                                fault.message or "Error.")
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            if fault is not None and fault.latency > 0:
                if request.can_read_body:
                    await request.read()  # cached: the work goes on if the client gives up
                await asyncio.sleep(fault.latency)
            core.tick()
            if fault is not None and fault.status is not None:
                return fail(fault.status, fault.code or "SERVER_ERROR", fault.message or "Error.")
            if fault is not None and fault.drop:
                try:
                    await handler(acct, request)  # the effect happens...
                except SimError:
                    pass
                if request.transport is not None:  # ...and nobody hears about it
                    request.transport.abort()
                return web.Response(status=500)
            if fault is None or not (fault.trickle or fault.patch):
                return await handler(acct, request)
            try:
                response = await handler(acct, request)
            except SimError as exc:
                response = fail(exc.status, exc.code, exc.message, exc.data)
            if fault.patch and 200 <= response.status < 300:
                response = patch_answer(response, fault.patch)
            if fault.trickle:
                return await trickle_body(request, response, fault.trickle)
            return response

        return wrapped

@dataclass
class SimulatorServer:
    sim: Simulator
    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}{API_PREFIX}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_simulator(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0
) -> SimulatorServer:
    runner = web.AppRunner(sim.make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if port == 0 else port
    return SimulatorServer(sim, runner, host, int(bound))


# ---------------------------------------------------------------------- CLI
def _parse_account(spec: str) -> tuple[str, str, str | None]:
    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected KEY:BALANCE[:EMAIL], got {spec!r}")
    try:
        Decimal(parts[1])
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"bad balance in {spec!r}") from None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _parse_range(spec: str) -> tuple[float, float]:
    lo, sep, hi = spec.partition("-")
    try:
        a = float(lo)
        b = float(hi) if sep else a
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, got {spec!r}") from None
    if not 0 <= a <= b:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {spec!r}")
    return a, b


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="daisybot simulator", description="A local DaisySim (server7) API simulator."
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument(
        "--account",
        action="append",
        type=_parse_account,
        default=[],
        metavar="KEY:BALANCE[:EMAIL]",
        help="an account (repeatable)",
    )
    ap.add_argument(
        "--auto-sms",
        type=_parse_range,
        default=None,
        metavar="MIN-MAX",
        help="deliver a random code MIN..MAX seconds after each purchase",
    )
    ap.add_argument(
        "--auto-sms-ratio",
        type=float,
        default=1.0,
        metavar="R",
        help="fraction of numbers that ever get a code (0..1)",
    )
    ap.add_argument("--cancel-lock", type=float, default=180.0, metavar="SECONDS")
    ap.add_argument(
        "--window",
        type=float,
        default=1200.0,
        metavar="SECONDS",
        help="activation window before a number expires",
    )
    ap.add_argument(
        "--virtual-clock", action="store_true", help="time moves only via POST /_sim/advance"
    )
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument(
        "--cache-bound",
        action="store_true",
        default=env_cache_bound(),
        help="a stored code stays hidden behind a cached Waiting (default: returned at "
        "once, the documented reading; env DAISYSIM_SIM_CACHE_BOUND=1)",
    )
    ap.add_argument("--rtt", type=float, default=0.0, metavar="SECONDS",
                    help="round-trip time every API request takes (simulator clock)")
    return ap


def env_cache_bound() -> bool:
    """``DAISYSIM_SIM_CACHE_BOUND`` set to 1/true/yes/on: the cache-bound reading."""
    value = os.environ.get("DAISYSIM_SIM_CACHE_BOUND", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


async def _serve(args: argparse.Namespace) -> None:
    clock: Clock = VirtualClock() if args.virtual_clock else SystemClock()
    sim = Simulator(
        clock,
        cancel_lock=args.cancel_lock,
        window=args.window,
        auto_sms=args.auto_sms,
        auto_sms_ratio=args.auto_sms_ratio,
        seed=args.seed,
        cache_bound=args.cache_bound,
        rtt=args.rtt,
    )
    for key, balance, email in args.account:
        sim.add_account(key, balance, email)
    server = await start_simulator(sim, args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(server.base_url, flush=True)
    print(f"control endpoints: {server.url}/_sim/", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.auto_sms_ratio <= 1.0:
        print("--auto-sms-ratio must be within 0..1", file=sys.stderr)
        return 2
    if args.rtt < 0:
        print("--rtt must be >= 0", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0



if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
