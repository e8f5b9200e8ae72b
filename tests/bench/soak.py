"""Soak test with ``kill -9``:
``python -m tests.bench.soak [--purchases 100] [--kills 10] [--fault-rate 0.1] [--seed N]``.

The bot runs as a SUBPROCESS (``python -m bot run``, configured through the
environment) against the DaisySim simulator and the fake Bot API, both running
in this process on the real clock. Fake users buy numbers through the chat
(/start → Buy → service → Confirm); some press "Cancel & refund" when it appears.
Meanwhile the bot is killed with SIGKILL at least ``--kills`` times — at the
moment the simulator handles a purchase, a poll or a cancel (before or after its
effect, so the answer is lost), or at a random moment — and restarted each time.
A share (``--fault-rate``) of all upstream requests fails: 5xx errors, added
latency, dropped connections after the effect (lost purchase answers), answers
trickled one byte at a time (slow loris: the client's total deadline must cut them),
and late purchases (the connection is cut and DaisySim carries the purchase out a
minute or more later, after the bot wrote it off: the sweep must find the order and
cancel it for the refund). Telegram storms too: every few seconds one user's chat
answers 429 (retry_after 7 s) to everything for a while, and sendMessage /
editMessageText throw short 429s.

When every activation is final, the chat transcripts, the bot's database (opened
read-only) and the simulator's state are compared. Exit status 0 only if all of
these are zero: lost codes, codes pushed twice, numbers left unrefunded, double
purchases, wallet mismatches (to the cent), undelivered events, and upstream
orders left unaccounted (every late order is either a bot order or a stray order
refunded exactly once upstream, or recorded as a loss because its code came first).

Top-ups (issue 13): users also top up their wallets with Telegram Stars (/wallet →
Top up → a pack → the invoice → Pay), and one kill kind lands right after the bot
answered a pre-checkout query (the payment is taken, its successful_payment update
not yet fetched); a quarter of the payments never get their successful_payment
update at all (only getStarTransactions shows them). At the end every Stars payment
the fake took must be credited exactly once (0 lost credits, 0 double credits), at
its top-up's amount, and the wallets must add up with the top-ups included.

Timings are shortened on both sides (cancel lock, activation window, give-up
time, poll interval) so that a run takes a few minutes; with ``--fast-budgets``
(default) the purchase and cancel budgets are raised from 10 to 60 per minute,
in the simulator and in the bot's client limiter alike (the bot is started
through :mod:`tests.bench.run_bot` for that), so that 100 purchases do not take
ten minutes of waiting for the purchase budget. ``--real-budgets`` keeps 10/min.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from bot.clock import SystemClock
from bot.sandbox import sim_state
from bot.sandbox.fake_telegram import ChatMessage, FakeUser
from tests.bench.common import OPERATOR_KEY, SimHandle, start_sim
from tests.bench.harness import BotProcess, TimedFakeTelegram, populate, read_only, wait_ready
from tests.texts import button, lead, pattern, service_button, text

# The bot's texts by key (tests/texts.py), never its English copy.
BUY = button("btn_buy")
CANCEL = button("btn_cancel_refund")
CONFIRM = pattern("btn_confirm")
OTP_PREFIX = lead("otp_message")  # "🔑 Code for", also the start of the sent HTML
COPY_CODE = button("btn_copy_code")
SERVICES = (service_button("Signal"), service_button("Telegram"), service_button("WhatsApp 2"))
LISTING = text("buy_list_title")
CONFIRMING = pattern("buy_confirm")
NUMBER = pattern("order_number")
NUMBER_PENDING = text("order_number_pending")
CODE = pattern("order_code")
SIM_BALANCE = Decimal("5000")
USER_CREDIT = Decimal("200")
FIRST_USER = 500_000
ADMIN_ID = 1
TOPUP = button("btn_topup")
TOPUP_TITLE = pattern("topup_title")
TOPUP_PACK = pattern("btn_topup_pack")
KILL_KINDS = ("topup", "purchase", "poll", "cancel", "random")


@dataclass(frozen=True)
class SoakConfig:
    purchases: int = 100
    kills: int = 10
    fault_rate: float = 0.1
    seed: int = 1
    users: int = 20
    cancel_ratio: float = 0.35  # share of users who press Cancel & refund
    cancel_lock: float = 8.0
    give_up: float = 40.0  # the bot's give-up time (seconds)
    window: float = 60.0  # the simulator's activation window
    poll_interval: float = 3.0
    auto_sms: tuple[float, float] = (2.0, 45.0)
    auto_sms_ratio: float = 0.75
    fast_budgets: bool = True
    kill_gap: tuple[float, float] = (2.0, 8.0)  # seconds of running between kills
    wait: float = 20.0  # a user's patience for one bot reply (covers a restart)
    deadline: float = 900.0  # the whole run (safety net)
    kill_mid_push: bool = True  # every other kill right after an OTP message went out
    kill_kinds: tuple[str, ...] = KILL_KINDS
    late_weight: int = 1  # weight of "late" among the random fault kinds (0: none)
    late: tuple[float, float] = (65.0, 90.0)  # a late purchase lands this many s later
    trickle: float = 0.5  # slow loris: seconds per byte
    telegram_storms: bool = True  # 429 storms on one chat + short 429s on sends/edits
    storm_gap: tuple[float, float] = (5.0, 12.0)
    storm_seconds: float = 10.0
    topups: int = 20  # Stars payments to make (top-ups)
    topup_ratio: float = 0.3  # a user's chance to top up before a purchase
    lost_update_ratio: float = 0.25  # payments whose successful_payment never arrives


CI = SoakConfig(
    purchases=15, kills=8, users=8, cancel_lock=4.0, give_up=15.0, window=25.0,
    poll_interval=2.0, auto_sms=(1.0, 14.0), auto_sms_ratio=0.7, kill_gap=(1.0, 3.0),
    wait=10.0, deadline=180.0, kill_kinds=("topup", "purchase", "poll", "cancel"),
    late=(20.0, 35.0), storm_gap=(3.0, 6.0), storm_seconds=6.0, topups=6,
)


@dataclass
class Report:
    purchases: int = 0  # upstream activations
    confirms: int = 0  # Confirm presses by the users
    cancels_pressed: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    codes_delivered: int = 0
    codes_pushed: int = 0
    refunded_upstream: int = 0
    # invariants (all must be 0)
    lost_codes: int = 0
    # A code whose push was in doubt (the bot was killed between recording the push and
    # sending it, or the push got no answer): by design it is not pushed again (never
    # twice) but shown on the order message. Counted here, not as lost, only when the
    # bot's log says so for that order AND the chat shows the code (checked in verify).
    codes_shown_only: int = 0
    codes_pushed_twice: int = 0
    unrefunded: int = 0
    double_purchases: int = 0
    wallet_mismatches: int = 0
    undelivered_events: int = 0
    open_activations: int = 0
    unaccounted_orders: int = 0  # upstream orders neither a bot order nor a stray order
    strays: Counter[str] = field(default_factory=Counter)  # stray orders by final state
    lost_amount: Decimal = Decimal(0)  # stray orders whose code came first (a loss)
    storms: int = 0  # Telegram 429 storms started
    topups_paid: int = 0  # Stars payments the fake took
    topups_credited: int = 0
    topup_notices_twice: int = 0  # informational: a kill between the notice and its mark
    lost_credits: int = 0
    double_credits: int = 0
    crashes: int = 0  # exits we did not cause (or a failed graceful stop)
    error_lines: int = 0  # ERROR lines in the bot's log (informational)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    INVARIANTS = ("lost_codes", "codes_pushed_twice", "unrefunded", "double_purchases",
                  "wallet_mismatches", "undelivered_events", "open_activations",
                  "unaccounted_orders", "crashes", "lost_credits", "double_credits")

    @property
    def ok(self) -> bool:
        return all(getattr(self, name) == 0 for name in self.INVARIANTS)

    def problem(self, counter: str, text: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        if len(self.problems) < 50:
            self.problems.append(f"{counter}: {text}")

    def render(self) -> str:
        lines = [
            f"purchases (upstream activations): {self.purchases}   confirms pressed: "
            f"{self.confirms}   cancels pressed: {self.cancels_pressed}",
            f"kill -9: {sum(self.kills.values())} ({_counts(self.kills)})   "
            f"restarts: {self.restarts}",
            f"upstream faults injected: {sum(self.faults.values())} ({_counts(self.faults)})"
            f"   Telegram 429 storms: {self.storms}",
            f"stray orders (late orders no bot order owns): {sum(self.strays.values())} "
            f"({_counts(self.strays)}; lost to a code first: ${self.lost_amount})",
            f"codes delivered upstream: {self.codes_delivered}   pushed: {self.codes_pushed}   "
            f"shown on the order message only (push in doubt): {self.codes_shown_only}   "
            f"numbers refunded upstream: {self.refunded_upstream}",
            f"top-ups paid (Stars): {self.topups_paid}   credited: {self.topups_credited}   "
            f"balance notices sent twice: {self.topup_notices_twice}",
            "",
            f"lost codes:            {self.lost_codes}",
            f"codes pushed twice:    {self.codes_pushed_twice}",
            f"numbers unrefunded:    {self.unrefunded}",
            f"double purchases:      {self.double_purchases}",
            f"wallet mismatches:     {self.wallet_mismatches}",
            f"undelivered events:    {self.undelivered_events}",
            f"activations not final: {self.open_activations}",
            f"orders unaccounted:    {self.unaccounted_orders}",
            f"lost credits:          {self.lost_credits}",
            f"double credits:        {self.double_credits}",
            f"bot crashes:           {self.crashes}   (ERROR lines in its log: "
            f"{self.error_lines})",
            f"=> {'OK' if self.ok else 'FAILED'} in {self.seconds:.0f} s",
        ]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


# ------------------------------------------------------------------------ budgets


@contextlib.contextmanager
def simulator_budgets(per_minute: int | None) -> Iterator[None]:
    """Raise the simulator's purchase and cancel limits (restored afterwards)."""
    saved = dict(sim_state.RATE_LIMITS)
    try:
        if per_minute is not None:
            for bucket in ("purchase", "cancel"):
                sim_state.RATE_LIMITS[bucket] = (per_minute, saved[bucket][1])
        yield
    finally:
        sim_state.RATE_LIMITS.clear()
        sim_state.RATE_LIMITS.update(saved)


# ------------------------------------------------------------------------- killer


class Killer:
    """Kills the bot process from inside the simulator's request handling."""

    ENDPOINTS: ClassVar[dict[str, str]] = {
        "purchase": "purchase", "poll": "check-all", "cancel": "cancel"}

    def __init__(self, bot: BotProcess, report: Report) -> None:
        self.bot = bot
        self.report = report
        self.armed: tuple[str, str] | None = None  # (endpoint, "before" | "after")
        self.kind = ""
        self.killed = asyncio.Event()

    def arm(self, kind: str, phase: str) -> None:
        self.kind = f"mid-{kind} ({phase})"
        self.armed = (self.ENDPOINTS[kind], phase)
        self.killed.clear()

    def disarm(self) -> None:
        self.armed = None

    def kill_now(self, kind: str) -> None:
        if self.bot.running:
            os.kill(self.bot.pid, signal.SIGKILL)
            self.report.kills[kind] += 1
        self.armed = None
        self.killed.set()

    def hook(self, endpoint: str, phase: str) -> None:
        if self.armed == (endpoint, phase):
            self.kill_now(self.kind)

    def middleware(self) -> Any:
        @web.middleware
        async def kill_hook(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            endpoint = _endpoint(request.path)
            self.hook(endpoint, "before")
            response = await handler(request)
            self.hook(endpoint, "after")  # the effect is applied, the answer not sent
            return response

        return kill_hook


def _endpoint(path: str) -> str:
    tail = path.split("/api/v1/server7/", 1)[-1]
    return tail.split("/", 1)[0]


class PushKillFake(TimedFakeTelegram):
    """Optionally kills the bot when it sends an OTP message (after the fake has
    stored it, before the bot hears back)."""

    killer: Killer | None = None
    armed = False
    topup_armed = False  # kill right after an ok pre-checkout answer

    def _m_answer_pre_checkout_query(self, p: dict[str, Any]) -> Any:
        result = super()._m_answer_pre_checkout_query(p)  # type: ignore[misc]
        ok = str(p.get("ok", "")).lower() in ("true", "1")
        if ok and self.topup_armed and self.killer is not None:
            self.topup_armed = False  # paid; its successful_payment is not yet fetched
            self.killer.kill_now("mid-topup (after the pre-checkout answer)")
        return result

    def _m_send_message(self, p: dict[str, Any]) -> Any:
        result = super()._m_send_message(p)  # type: ignore[misc]  # set per method at import
        if self.armed and self.killer is not None and str(p.get("text", "")).startswith(
            OTP_PREFIX
        ):
            self.armed = False
            self.killer.kill_now("mid-push (after sendMessage)")
        return result


# -------------------------------------------------------------------------- users


@dataclass
class Shared:
    cfg: SoakConfig
    sim: SimHandle
    report: Report
    rng: random.Random
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    kills_done: bool = False  # the supervisor made all its kills
    topup_kill: bool = False  # a kill waits for a pre-checkout answer: keep paying

    def enough(self) -> bool:
        """Users keep buying until the target is reached AND every kill is made: a
        kill aimed at a purchase, a poll or a push needs traffic to hit (on a loaded
        machine the target alone was reached before the last kills)."""
        return self.kills_done and len(self.sim.sim.core.activations) >= self.cfg.purchases


async def _press(user: FakeUser, label: Any, message_id: int, wait: float) -> bool:
    try:
        await user.press(label, message_id=message_id, timeout=wait)
    except AssertionError:
        return False
    return True


async def buy_one(user: FakeUser, sh: Shared, service: re.Pattern[str]) -> ChatMessage | None:
    """One purchase through the chat. Returns the order message, or None when
    something (a fault, a kill, an error screen) got in the way."""
    wait = sh.cfg.wait
    try:
        await user.send("/start")
        menu = await user.wait_for(lambda m: m.has_button(BUY), wait)
        if not await _press(user, BUY, menu.message_id, wait):
            return None
        lst = await user.wait_for(lambda m: LISTING in m.text and any(
            service.search(lb) for lb in m.button_labels), wait)
        if not await _press(user, service, lst.message_id, wait):
            return None
        confirm = await user.wait_for(
            lambda m: CONFIRMING.search(m.text) is not None and m.has_button(CONFIRM), wait)
        if sh.enough():
            return None
        sh.report.confirms += 1
        if not await _press(user, CONFIRM, confirm.message_id, wait):
            return None
        mid = confirm.message_id
        return await user.wait_for(
            lambda m: m.message_id == mid and NUMBER.search(m.text) is not None
            and NUMBER_PENDING not in m.text, wait)
    except AssertionError:
        return None


async def cancel_when_possible(user: FakeUser, order: ChatMessage, sh: Shared) -> None:
    """Press "Cancel & refund" once it appears on the order (unless a code came)."""
    mid = order.message_id
    try:
        msg = await user.wait_for(
            lambda m: m.message_id == mid
            and (m.has_button(CANCEL) or CODE.search(m.text) is not None),
            sh.cfg.cancel_lock + sh.cfg.wait, since=0)
    except AssertionError:
        return
    if not msg.has_button(CANCEL):
        return
    await asyncio.sleep(sh.rng.uniform(0.0, 2.0))
    current = user.message(mid)
    if current.has_button(CANCEL):
        sh.report.cancels_pressed += 1
        await _press(user, CANCEL, mid, sh.cfg.wait)


async def topup_one(user: FakeUser, sh: Shared) -> None:
    """/wallet → Top up → a pack → Pay (a kill or a fault may get in the way)."""
    wait = sh.cfg.wait
    try:
        await user.send("/wallet")
        wallet = await user.wait_for(lambda m: m.has_button(TOPUP), wait)
        if not await _press(user, TOPUP, wallet.message_id, wait):
            return
        packs = await user.wait_for(lambda m: TOPUP_TITLE.search(m.text) is not None
                                    and m.has_button(TOPUP_PACK), wait)
        label = sh.rng.choice([b for b in packs.button_labels if TOPUP_PACK.fullmatch(b)])
        seen = {m.message_id for m in user.chat() if m.invoice is not None}
        if not await _press(user, label, packs.message_id, wait):
            return
        invoice = await user.wait_for(
            lambda m: m.from_bot and m.invoice is not None and m.message_id not in seen, wait)
        # a share of payments whose successful_payment Telegram never delivers: only
        # getStarTransactions shows them (the bot's reconciliation must credit them)
        lose = sh.rng.random() < sh.cfg.lost_update_ratio
        result = await user.pay(invoice.message_id, lose_update=lose, timeout=wait)
    except AssertionError:
        return
    if result.paid:
        sh.report.topups_paid += 1


async def user_loop(user: FakeUser, sh: Shared, canceler: bool) -> None:
    while not sh.enough() and not sh.stop.is_set():
        wanted = sh.report.topups_paid < sh.cfg.topups or sh.topup_kill
        if wanted and sh.rng.random() < sh.cfg.topup_ratio:
            await topup_one(user, sh)
        service = sh.rng.choice(SERVICES)
        order = await buy_one(user, sh, service)
        if order is None:
            await asyncio.sleep(sh.rng.uniform(0.2, 1.0))
            continue
        if canceler:
            task = asyncio.ensure_future(cancel_when_possible(user, order, sh))
            sh.cancel_tasks.add(task)
            task.add_done_callback(sh.cancel_tasks.discard)
        await asyncio.sleep(sh.rng.uniform(0.0, 0.5))


# ------------------------------------------------------------------ telegram storms


async def telegram_storms(fake: PushKillFake, users: list[FakeUser], sh: Shared) -> None:
    """Every few seconds one user's chat answers 429 (retry_after 7 s) to every call
    for a while, and sendMessage / editMessageText each throw a few short 429s."""
    cfg, rng = sh.cfg, sh.rng
    while not sh.stop.is_set():
        await asyncio.sleep(rng.uniform(*cfg.storm_gap))
        if sh.stop.is_set():
            return
        victim = rng.choice(users)
        fake.inject_error("*", 429, retry_after=7, chat_id=victim.id,
                          for_seconds=cfg.storm_seconds)
        fake.inject_error("sendMessage", 429, retry_after=1, count=2)
        fake.inject_error("editMessageText", 429, retry_after=1, count=2)
        sh.report.storms += 1


# ---------------------------------------------------------------------- supervisor


async def supervise(bot: BotProcess, fake: PushKillFake, killer: Killer, sh: Shared) -> None:
    """Kill at least ``kills`` times, restarting each time."""
    cfg, rng = sh.cfg, sh.rng
    kinds = list(cfg.kill_kinds)
    if cfg.kill_mid_push:  # every other kill right after an OTP message went out
        kinds = [k for pair in zip(["push"] * len(kinds), kinds, strict=True) for k in pair]
    done = 0
    while done < cfg.kills and not sh.stop.is_set():
        await asyncio.sleep(rng.uniform(*cfg.kill_gap))
        kind = kinds[done % len(kinds)] if done < len(kinds) else rng.choice(kinds)
        if kind == "random":
            killer.kill_now("random moment")
        elif kind == "topup":
            killer.killed.clear()
            fake.topup_armed = sh.topup_kill = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(killer.killed.wait(), 3 * cfg.wait)
            sh.topup_kill = False
            if fake.topup_armed:
                fake.topup_armed = False
                killer.kill_now("random moment (no top-up in time)")
        elif kind == "push":
            killer.killed.clear()  # (set by the previous kill: the wait would not wait)
            fake.armed = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(killer.killed.wait(), 2 * cfg.wait)
            if fake.armed:
                fake.armed = False
                killer.kill_now("random moment (no OTP push in time)")
        else:
            for target in (kind, "poll"):  # polls go on while anything is waiting
                killer.arm(target, rng.choice(("before", "after")))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(killer.killed.wait(), cfg.wait)
                if killer.killed.is_set():
                    break
            if not killer.killed.is_set():
                killer.kill_now(f"random moment (no {kind} in time)")
        done += 1
        await asyncio.to_thread(bot.kill9)  # reap (it is dead already)
        code = bot.proc.returncode if bot.proc is not None else None
        if code != -signal.SIGKILL:
            sh.report.problem("crashes", f"the bot exited with {code} before a kill")
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        bot.start()
        sh.report.restarts += 1
        await wait_ready(fake, bot, limit=60.0)
    sh.kills_done = True


async def settle(bot: BotProcess, db_path: Path, sh: Shared, fake: PushKillFake) -> None:
    """Wait until every activation is final and every event delivered."""
    deadline = (time.monotonic() + 2 * sh.cfg.give_up + sh.cfg.window + sh.cfg.late[1]
                + 240.0)
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        if not bot.running:  # not killed by us: a crash
            sh.report.problem("crashes", f"the bot exited with {bot.proc and bot.proc.returncode}")
            bot.start()
            sh.report.restarts += 1
            await wait_ready(fake, bot, limit=60.0)
        busy = True
        with contextlib.suppress(Exception):
            conn = read_only(db_path)
            try:
                open_n = conn.execute(
                    "SELECT COUNT(*) FROM activations WHERE state IN"
                    " ('purchasing','waiting','cancelling','expired')").fetchone()[0]
                pending = conn.execute(
                    "SELECT COUNT(*) FROM events WHERE delivered_at IS NULL").fetchone()[0]
                # the sweep: strays being cancelled, write-offs still watched for a
                # late order (unless it was found), late purchases not yet landed
                open_n += conn.execute(
                    "SELECT COUNT(*) FROM stray_orders WHERE state = 'cancelling'").fetchone()[0]
                open_n += conn.execute(
                    "SELECT COUNT(*) FROM activations a WHERE watch_until > ? AND NOT EXISTS"
                    " (SELECT 1 FROM stray_orders s WHERE s.activation_id = a.id)",
                    (time.time(),)).fetchone()[0]
                credited = {r[0] for r in conn.execute(
                    "SELECT charge_id FROM ledger WHERE charge_entry = 'topup'")}
                open_n += len(set(fake.charges) - credited)  # payments not yet credited
            finally:
                conn.close()
            open_n += len(sh.sim.sim.core.late_purchases)
            busy = open_n > 0 or pending > 0 or bool(fake.pending_updates)
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:
            return
        await asyncio.sleep(0.25)


# ---------------------------------------------------------------------- verification


def otp_codes(messages: list[ChatMessage]) -> list[str]:
    out: list[str] = []
    for m in messages:
        if not (m.from_bot and m.text.startswith(OTP_PREFIX)):
            continue
        button = m.find_button(COPY_CODE)
        if button is not None and button.copy_text:
            out.append(button.copy_text)
        else:
            codes = m.entity_texts("code")
            out.append(codes[-1] if codes else "")
    return out


def verify_strays(strays: list[dict[str, Any]], sim: SimHandle, report: Report) -> set[str]:
    """Stray orders (upstream orders no bot order owns: late orders of written-off
    purchases) are refunded exactly once upstream, or lost with their code and never
    refunded. Returns their upstream ids."""
    core = sim.sim.core
    refunds = Counter(e.activation_id for e in core.accounts[OPERATOR_KEY].ledger
                      if e.kind == "refund")
    for s in strays:
        rid = str(s["remote_id"])
        report.strays[s["state"]] += 1
        act = core.activations.get(int(rid)) if rid.isdigit() else None
        if act is None:
            report.problem("unaccounted_orders", f"stray {rid} unknown upstream")
        elif s["state"] == "refunded" and refunds[rid] != 1:
            report.problem("unrefunded", f"stray {rid} refunded {refunds[rid]}× upstream")
        elif s["state"] == "lost":
            if act.code is None or refunds[rid]:
                report.problem("unaccounted_orders", f"stray {rid} lost: code {act.code}, "
                                                     f"refunded {refunds[rid]}×")
            report.lost_amount += Decimal(s["amount"])
        elif s["state"] == "cancelling":
            report.problem("unaccounted_orders", f"stray {rid} still being cancelled")
    return {str(s["remote_id"]) for s in strays}


def count_faults(sim: SimHandle, report: Report) -> None:
    """Count every fault the simulator injects, by kind, in ``report.faults``."""
    original_take = sim.sim.core.take_fault

    def counting_take(endpoint: str) -> Any:
        action = original_take(endpoint)
        if action is not None:
            kind = ("late" if action.late is not None else "drop" if action.drop
                    else "trickle" if action.trickle else
                    f"{action.status}" if action.status else "latency")
            report.faults[kind] += 1
        return action

    sim.sim.core.take_fault = counting_take  # type: ignore[method-assign]


def _transcript(fake: PushKillFake, chat: int) -> list[ChatMessage]:
    try:
        return fake.transcript(chat)
    except KeyError:
        return []


def _push_in_doubt(log_text: str, activation_id: int) -> bool:
    """The bot logged that this order's code push was in doubt: a redelivery after a
    kill between recording the push and sending it, or a push without an answer."""
    return (f"for activation {activation_id} was interrupted; not re-pushed" in log_text
            or f"code push for activation {activation_id} unconfirmed" in log_text)


def verify(db_path: Path, sim: SimHandle, fake: PushKillFake, report: Report,
           log_text: str = "") -> None:
    core = sim.sim.core
    conn = read_only(db_path)
    try:
        rows = [dict(r) for r in conn.execute("SELECT * FROM activations ORDER BY id")]
        ledger = [dict(r) for r in conn.execute("SELECT * FROM ledger ORDER BY id")]
        strays = [dict(r) for r in conn.execute("SELECT * FROM stray_orders ORDER BY id")]
        topups = {r["charge_id"]: dict(r) for r in conn.execute(
            "SELECT * FROM topups WHERE charge_id IS NOT NULL")}
        report.undelivered_events = conn.execute(
            "SELECT COUNT(*) FROM events WHERE delivered_at IS NULL").fetchone()[0]
    finally:
        conn.close()
    stray_ids = verify_strays(strays, sim, report)
    topped_up = verify_topups(ledger, topups, fake, report)
    # The checks below are about bot orders: stray orders are accounted for above.
    sim_acts = {a.aid: a for a in core.activations.values()
                if a.account == OPERATOR_KEY and a.aid not in stray_ids}
    report.purchases = len(sim_acts) + len(stray_ids)
    by_remote: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["remote_id"] is not None:
            by_remote[r["remote_id"]].append(r)
        if r["state"] in ("purchasing", "waiting", "cancelling", "expired"):
            report.problem("open_activations", f"activation {r['id']} still {r['state']}")

    # --- double purchases: every upstream activation belongs to exactly one order
    for aid in sim_acts:
        n = len(by_remote.get(aid, []))
        if n != 1:
            report.problem("double_purchases",
                           f"upstream activation {aid} has {n} bot orders (expected 1)")
    for remote in by_remote:
        if remote not in sim_acts:
            report.problem("double_purchases", f"bot order for unknown upstream id {remote}")

    # --- codes: each delivered code pushed exactly once, in its owner's chat
    pushed: dict[int, Counter[str]] = {}
    for r in rows:
        chat = r["chat_id"] if r["chat_id"] is not None else r["user_id"]
        if chat not in pushed:
            try:
                pushed[chat] = Counter(otp_codes(fake.transcript(chat)))
            except KeyError:
                pushed[chat] = Counter()
    for aid, act in sim_acts.items():
        owners = by_remote.get(aid, [])
        if act.code is None:
            continue
        report.codes_delivered += 1
        if not owners:
            report.problem("lost_codes", f"code of {aid} has no owner")
            continue
        owner = owners[0]
        chat = owner["chat_id"] if owner["chat_id"] is not None else owner["user_id"]
        n = pushed.get(chat, Counter())[act.code]
        shown = n == 0 and _push_in_doubt(log_text, owner["id"]) and any(
            m.from_bot and act.code in m.text for m in _transcript(fake, chat))
        if shown:
            report.codes_shown_only += 1
        elif n == 0:
            report.problem("lost_codes", f"code {act.code} of {aid} never pushed to {chat}")
        elif n > 1:
            report.problem("codes_pushed_twice", f"code {act.code} of {aid} pushed {n} times")
        if n:
            report.codes_pushed += 1
        if owner["state"] != "completed" or owner["code"] != act.code:
            report.problem("lost_codes", f"{aid}: bot state {owner['state']} code "
                                         f"{owner['code']} vs upstream {act.code}")

    # --- refunds: every number without a code refunded exactly once, both sides
    sim_refunds = Counter(e.activation_id for e in core.accounts[OPERATOR_KEY].ledger
                          if e.kind == "refund" and e.activation_id not in stray_ids)
    bot_refunds = Counter(e["activation_id"] for e in ledger if e["kind"] == "refund")
    for aid, act in sim_acts.items():
        owners = by_remote.get(aid, [])
        if act.code is not None:
            if sim_refunds[aid]:
                report.problem("unrefunded", f"{aid} has a code and was refunded upstream")
            continue
        if sim_refunds[aid] != 1:
            report.problem("unrefunded", f"{aid}: refunded {sim_refunds[aid]}× upstream")
        else:
            report.refunded_upstream += 1
        for owner in owners:
            if owner["state"] not in ("refunded", "failed") or bot_refunds[owner["id"]] != 1:
                report.problem(
                    "unrefunded",
                    f"{aid}: bot order {owner['id']} {owner['state']}, "
                    f"{bot_refunds[owner['id']]} refund entries")

    # --- wallets, to the cent
    for problem in sim.sim.invariant_violations():
        report.problem("wallet_mismatches", f"simulator: {problem}")
    acct = core.accounts[OPERATOR_KEY]
    all_charges = sum((-e.amount for e in acct.ledger if e.kind == "charge"), Decimal(0))
    all_refunds = sum((e.amount for e in acct.ledger if e.kind == "refund"), Decimal(0))
    if acct.balance != SIM_BALANCE - all_charges + all_refunds:
        report.problem("wallet_mismatches", f"simulator wallet {acct.balance} != "
                                            f"{SIM_BALANCE} - {all_charges} + {all_refunds}")
    # the bot's users pay for bot orders only (a stray order is the operator's)
    charges = sum((-e.amount for e in acct.ledger
                   if e.kind == "charge" and e.activation_id not in stray_ids), Decimal(0))
    refunds = sum((e.amount for e in acct.ledger
                   if e.kind == "refund" and e.activation_id not in stray_ids), Decimal(0))
    by_user: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in ledger:
        by_user[e["user_id"]].append(e)
    per_act: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for e in ledger:
        if e["activation_id"] is not None:
            per_act[e["activation_id"]][e["kind"]] = Decimal(e["amount"])
    bot_net = Decimal(0)
    for r in rows:
        kinds = per_act.get(r["id"], {})
        hold, release = kinds.get("hold"), kinds.get("release")
        charge, refund = kinds.get("charge"), kinds.get("refund")
        if hold is not None and (release is None or release != -hold):
            report.problem("wallet_mismatches", f"order {r['id']}: hold {hold} release {release}")
        upstream = sim_acts.get(r["remote_id"]) if r["remote_id"] is not None else None
        if upstream is None:
            if charge is not None or refund is not None:
                report.problem("wallet_mismatches", f"order {r['id']} charged, never bought")
            continue
        if charge is None or -charge != upstream.price:
            report.problem("wallet_mismatches",
                           f"order {r['id']}: charged {charge} for upstream {upstream.price}")
            continue
        bot_net += -charge
        if r["state"] == "completed" and refund is not None:
            report.problem("wallet_mismatches", f"order {r['id']} completed and refunded")
        if r["state"] in ("refunded", "failed"):
            if refund is None or refund != -charge:
                report.problem("wallet_mismatches", f"order {r['id']}: refund {refund}")
            else:
                bot_net -= refund
    if bot_net != charges - refunds:
        report.problem("wallet_mismatches",
                       f"bot net charges {bot_net} != upstream net {charges - refunds}")
    for uid, entries in by_user.items():
        total = sum((Decimal(e["amount"]) for e in entries), Decimal(0))
        expected = USER_CREDIT + topped_up.get(uid, Decimal(0)) - sum(
            (-per_act[r["id"]].get("charge", Decimal(0)) - per_act[r["id"]].get(
                "refund", Decimal(0)) for r in rows if r["user_id"] == uid), Decimal(0))
        if total != expected:
            report.problem("wallet_mismatches", f"user {uid}: balance {total} != {expected}")


def verify_topups(ledger: list[dict[str, Any]], topups: dict[str, dict[str, Any]],
                  fake: PushKillFake, report: Report) -> dict[int, Decimal]:
    """Every Stars payment the fake took is credited exactly once, to its payer, at
    its top-up's amount for its top-up's price; no credit without a payment.
    Returns the credited dollars per user (for the wallet check)."""
    credits = Counter(e["charge_id"] for e in ledger if e["charge_entry"] == "topup")
    amounts: dict[str, Decimal] = {
        e["charge_id"]: Decimal(e["amount"]) for e in ledger if e["charge_entry"] == "topup"}
    per_user: dict[int, Decimal] = defaultdict(Decimal)
    charges = fake.charges
    report.topups_paid = max(report.topups_paid, len(charges))
    for cid, charge in charges.items():
        n = credits[cid]
        if n == 0:
            report.problem("lost_credits", f"payment {cid[:12]}… of user {charge.user_id} "
                                           f"({charge.amount} Stars) never credited")
            continue
        if n > 1:
            report.problem("double_credits", f"payment {cid[:12]}… credited {n} times")
        report.topups_credited += 1
        row = topups.get(cid)
        if row is None or row["user_id"] != charge.user_id or row["paid_price"] != charge.amount:
            report.problem("wallet_mismatches", f"payment {cid[:12]}…: top-up row {row}")
        elif amounts[cid] != Decimal(row["amount"]):
            report.problem("wallet_mismatches", f"payment {cid[:12]}…: credited {amounts[cid]}"
                                                f" for a top-up of {row['amount']}")
        per_user[charge.user_id] += amounts[cid]
        shown = [m for m in fake.transcript(charge.user_id)
                 if m.from_bot and cid in m.entity_texts("code")]
        if len(shown) > 1:
            report.topup_notices_twice += 1
    for cid in credits:
        if cid not in charges:
            report.problem("double_credits", f"credit for {cid[:12]}… without a payment")
    return per_user


# ----------------------------------------------------------------------------- run


async def run_soak(cfg: SoakConfig, *, log: Callable[[str], None] | None = None,
                   keep_dir: Path | None = None) -> Report:
    report = Report()
    started = time.monotonic()
    say = log or (lambda _text: None)
    rng = random.Random(cfg.seed)
    budget = 60 if cfg.fast_budgets else None
    with simulator_budgets(budget), tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = keep_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db_path = work / "bot.sqlite3"
        holder: dict[str, Killer] = {}

        def hook_mw() -> Any:
            @web.middleware
            async def mw(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                         ) -> web.StreamResponse:
                killer = holder.get("k")
                if killer is None:
                    return await handler(request)
                return await killer.middleware()(request, handler)
            return mw

        sim = await start_sim(
            SystemClock(), balance=str(SIM_BALANCE), middlewares=[hook_mw()],
            cancel_lock=cfg.cancel_lock, window=cfg.window, auto_sms=cfg.auto_sms,
            auto_sms_ratio=cfg.auto_sms_ratio, seed=cfg.seed,
        )
        count_faults(sim, report)
        fake = PushKillFake()
        await fake.start()
        await populate(db_path, sim.sim, users=cfg.users, active=0, first_user=FIRST_USER,
                       credit=USER_CREDIT)
        extra = {
            "CANCEL_LOCK_SECONDS": str(cfg.cancel_lock),
            "GIVE_UP_MINUTES": repr(cfg.give_up / 60.0),
            "POLL_INTERVAL_SECONDS": str(cfg.poll_interval),
            "DAISYSIM_TIMEOUT_SECONDS": "5",
            "TOPUP_RECONCILE_SECONDS": "10",
        }
        bot = BotProcess.configure(work, telegram_url=fake.url, daisysim_url=sim.base_url,
                                   db_path=db_path, admin_ids=[ADMIN_ID], env=extra,
                                   budget_per_minute=budget)
        killer = Killer(bot, report)
        holder["k"] = killer
        fake.killer = killer
        sh = Shared(cfg, sim, report, rng)
        try:
            bot.start()
            await wait_ready(fake, bot, limit=60.0)
            kinds = ("error", "latency", "drop", "trickle") + ("late",) * cfg.late_weight
            sim.sim.set_random_faults(cfg.fault_rate, seed=cfg.seed, kinds=kinds,
                                      trickle=cfg.trickle, late=cfg.late)
            users = [fake.user(FIRST_USER + i, first_name=f"User{i}") for i in range(cfg.users)]
            cancelers = set(rng.sample(range(cfg.users), round(cfg.users * cfg.cancel_ratio)))
            say(f"soak: {cfg.users} users, {len(cancelers)} cancel; target {cfg.purchases} "
                f"purchases, {cfg.kills} kills, fault rate {cfg.fault_rate}")
            tasks = [asyncio.ensure_future(user_loop(u, sh, i in cancelers))
                     for i, u in enumerate(users)]
            sup = asyncio.ensure_future(supervise(bot, fake, killer, sh))
            storms = (asyncio.ensure_future(telegram_storms(fake, users, sh))
                      if cfg.telegram_storms else None)
            deadline = started + cfg.deadline
            while time.monotonic() < deadline:
                if all(t.done() for t in tasks) and sup.done():
                    break
                if sup.done() and sup.exception() is not None:
                    raise sup.exception()  # type: ignore[misc]
                await asyncio.sleep(0.2)
            sh.stop.set()
            if storms is not None:
                storms.cancel()
                await asyncio.gather(storms, return_exceptions=True)
            fake.clear_injected()  # the storms end with the buying
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not sup.done():
                sup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sup
            # a kill the supervisor armed and no longer waits for must not land later
            killer.disarm()
            fake.armed = fake.topup_armed = False
            say(f"soak: buying done ({len(sim.sim.core.activations)} upstream activations, "
                f"{sum(report.kills.values())} kills); settling")
            sim.sim.clear_faults()  # let the last retries through
            if not bot.running:
                await asyncio.to_thread(bot.kill9)
                bot.start()
                report.restarts += 1
                await wait_ready(fake, bot, limit=60.0)
            await settle(bot, db_path, sh, fake)
            for t in list(sh.cancel_tasks):
                t.cancel()
        finally:
            code = await asyncio.to_thread(bot.stop)
        if code != 0:
            report.problem("crashes", f"graceful stop ended with exit status {code}")
        await asyncio.sleep(0.2)
        verify(db_path, sim, fake, report, bot.log_text())
        errors = [line for line in bot.log_text().splitlines() if " ERROR " in line]
        report.error_lines = len(errors)
        if errors:
            say(f"soak: {len(errors)} ERROR lines in the bot log, e.g. {errors[0][:300]}")
        await fake.close()
        await sim.close()
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--purchases", type=int, default=100)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--fault-rate", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--no-kill-mid-push", action="store_true",
                    help="do not kill right after the fake stored an OTP message (by default "
                         "every other kill lands there: the code must not be pushed twice)")
    ap.add_argument("--real-budgets", action="store_true",
                    help="keep the published 10/min purchase and cancel limits")
    ap.add_argument("--ci", action="store_true", help="the CI variant's small sizes/timings")
    ap.add_argument("--late-weight", type=int, default=None,
                    help="weight of late purchases among the random fault kinds (default 1; "
                         "0: none)")
    ap.add_argument("--no-telegram-storms", action="store_true",
                    help="no Telegram 429 storms")
    ap.add_argument("--keep", type=Path, default=None, help="keep the bot's files here")
    args = ap.parse_args(argv)
    base = CI if args.ci else SoakConfig()
    overrides: dict[str, Any] = {"seed": args.seed, "fault_rate": args.fault_rate,
                                 "kill_mid_push": not args.no_kill_mid_push,
                                 "fast_budgets": not args.real_budgets,
                                 "late_weight": base.late_weight if args.late_weight is None
                                 else max(0, args.late_weight),
                                 "telegram_storms": not args.no_telegram_storms}
    if not args.ci:
        overrides.update(purchases=args.purchases, kills=args.kills, users=args.users)
    from dataclasses import replace

    cfg = replace(base, **overrides)
    if args.real_budgets:
        cfg = replace(cfg, deadline=max(cfg.deadline, cfg.purchases * 7.0 + 300.0))
    report = asyncio.run(run_soak(cfg, log=lambda t: print(t, file=sys.stderr, flush=True),
                                  keep_dir=args.keep))
    print(report.render())
    return 0 if report.ok and sum(report.kills.values()) >= cfg.kills else 1


if __name__ == "__main__":
    raise SystemExit(main())
