"""``daisybot playground``: the whole bot on your machine, in a browser.

One asyncio process runs:

* the DaisySim simulator (:mod:`bot.sandbox.simulator`) with funded demo
  accounts; SMS codes arrive by themselves a little while after a purchase, and
  some numbers never get one (so expiry and refunds can be seen);
* the fake Telegram Bot API (:mod:`bot.sandbox.fake_telegram`);
* the real bot, built exactly as ``daisybot run`` builds it (``build_application``
  with :class:`~bot.clock.SystemClock`), long-polling the fake Bot API;
* the web chat (:mod:`bot.sandbox.webchat`) with a side panel backed by the
  simulator: the demo wallet, the numbers bought, "deliver SMS now".

The database and the generated Fernet key live in ``--data`` (default
``./playground-data``) and persist between runs; the simulator is in memory, so
demo wallets are refilled at every start. The fake Bot API's chats (messages,
message ids, update offsets) are kept in ``--data`` too (``telegram.json``, see
:mod:`bot.sandbox.chat_store`), so the bot can still edit its order messages and
what it says right after a restart reaches the chat. The simulator's activation
ids continue after the highest one the database remembers
(``sim.core._next_id``; for a data dir from before chats were kept, so do each
chat's message ids: ``fake.state.chat(uid).next_message_id``). Numbers still open
when the playground stopped vanish with the old simulator: the bot finds them
"Not Found", marks them failed (operator mode: the user's wallet is refunded) and
says so in the chat.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.clock import SystemClock
from bot.config import FundingMode, Settings
from bot.sandbox import sim_state
from bot.sandbox.chat_store import CHATS_FILE, ChatStore
from bot.sandbox.fake_telegram import FakeTelegram
from bot.sandbox.playground_data import (
    STATE_FILE,
    fernet_key,
    last_message_ids,
    load_state,
    max_remote_id,
    remove_database,
    write_private,
)
from bot.sandbox.simulator import Simulator, SimulatorServer, start_simulator
from bot.sandbox.webchat import make_webchat_app, start_webchat
from bot.telegram.context import DaisyApp
from bot.telegram.texts import money

__all__ = [
    "PLAYGROUND_TOKEN",
    "USER_LANGUAGES",
    "USER_NAMES",
    "Playground",
    "PlaygroundOptions",
    "SimPanel",
    "start_playground",
]

log = logging.getLogger(__name__)

# Deliberately not shaped like a real token (those are 8-10 digits + ':' + 35 chars).
PLAYGROUND_TOKEN = "123456:PLAYGROUND"
# The demo chat users and the Telegram language_code each one's client sends (IETF tags
# as Telegram sends them), so a newcomer sees the bot in several languages. The first
# three are the default picker; Alice and Bob stay English (tests and the README drive
# them with English texts); --users 7 shows every shipped language.
USER_LANGUAGES: tuple[tuple[str, str], ...] = (
    ("Alice", "en"),
    ("Bob", "en"),
    ("Carol", "es"),
    ("Dmitri", "ru"),
    ("Sofía", "es"),
    ("Ana", "pt-br"),
    ("Dariush", "fa"),
    ("Dave", "en"),
    ("Erin", "en"),
)
USER_NAMES = tuple(name for name, _ in USER_LANGUAGES)
LANGUAGE_OF = dict(USER_LANGUAGES)
FIRST_USER_ID = 1001
DB_NAME = "playground.sqlite3"


@dataclass
class PlaygroundOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    # operator: /start → Buy works right away (every user has demo credit);
    # own_key: each user first links a demo DaisySim key with /key.
    mode: FundingMode = FundingMode.OPERATOR
    users: int = 3
    data_dir: Path = field(default_factory=lambda: Path("playground-data"))
    fresh: bool = False
    cancel_lock: float = 30.0  # seconds (DaisySim's real lock: 180 s)
    give_up_minutes: float = 3.0  # (the bot's production default: 20 min)
    auto_sms: tuple[float, float] | None = (8.0, 40.0)  # None = codes only via the panel
    auto_sms_ratio: float = 0.75
    poll_interval: float = 5.0  # seconds between the bot's check-all rounds
    demo_balance: Decimal = Decimal("25")  # own-key: each demo DaisySim wallet
    operator_balance: Decimal = Decimal("1000")  # operator mode: the operator's wallet
    starting_credit: Decimal = Decimal("10")  # operator mode: each chat user's credit
    log_level: str = "WARNING"
    seed: int | None = None
    cache_bound: bool = False  # the simulator's cache-bound reading of a stored code


def _money(value: Decimal | str) -> str:
    """As the bot shows money (``$8.917``, ``$10.00``): the panel must not round."""
    return money(Decimal(value))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min"


# --------------------------------------------------------------------------- panel


class SimPanel:
    """The web chat's side panel, backed by the simulator (and the engine)."""

    def __init__(self, pg: Playground, rng: random.Random) -> None:
        self._pg = pg
        self._rng = rng

    async def panel(self) -> dict[str, Any]:
        pg = self._pg
        state = pg.sim.state()
        owners = {key: name for name, key in pg.demo_keys.items()}
        buyers: dict[str, str] = {}  # operator mode: remote activation id -> chat user
        if pg.operator_key is not None:
            engine = pg.app.bot_data.engine
            for uid, user_name in pg.users:
                page = await engine.history(uid, "all", 1, 100)
                buyers.update({a.remote_id: user_name for a in page.items if a.remote_id})
        services = pg.sim.core.services
        numbers: list[dict[str, Any]] = []
        for act in reversed(state["activations"]):  # newest first
            svc = services.get(act["app"])
            name = svc.name if svc is not None else act["app"]
            if act["pool"]:
                name += f" (pool {act['pool']})"
            status = str(act["status"])
            shown = status.lower()
            if status == "Waiting" and act["sms_pending"]:
                shown = "waiting · SMS on its way"
            elif status == "Cancelled" and act["refunded"]:
                shown = "cancelled · refunded"
            elif status == "Expired":
                shown = "expired · no SMS"
            who = owners.get(act["account"]) or buyers.get(act["id"])
            numbers.append(
                {
                    "activation_id": act["id"],
                    "service": f"{name} · {who}" if who else name,
                    "phone": act["phone_number"],
                    "status": shown,
                    "code": act["code"],
                    "can_deliver": status == "Waiting",
                }
            )
        data: dict[str, Any] = {"numbers": numbers, "notes": pg.notes()}
        accounts = state["accounts"]
        if pg.options.mode is FundingMode.OWN_KEY:
            data["wallet"] = " · ".join(
                f"{name}: {_money(accounts[key]['balance'])}"
                for name, key in pg.demo_keys.items()
                if key in accounts
            )
            for name, key in pg.demo_keys.items():
                data[f"{name}'s demo key"] = key
        else:
            assert pg.operator_key is not None
            engine = pg.app.bot_data.engine
            parts: list[str] = []
            for uid, name in pg.users:
                view = await engine.wallet(uid)
                shown_balance = _money(view.balance) if view.balance is not None else "—"
                parts.append(f"{name}: {shown_balance}")
            data["wallet"] = " · ".join(parts)
            data["operator's DaisySim wallet"] = _money(accounts[pg.operator_key]["balance"])
        data["mode"] = pg.options.mode.value
        return data

    async def deliver_sms(self, activation_id: str) -> str:
        code = f"{self._rng.randrange(1_000_000):06d}"
        act = self._pg.sim.deliver_sms(activation_id, code)
        if not self._pg.options.cache_bound:
            return f"SMS {code} reached {act.phone}. The bot shows it at its next check."
        return (
            f"SMS {code} reached {act.phone}. The bot shows it at its next check "
            f"(every {self._pg.options.poll_interval:g} s; DaisySim may answer from its "
            f"{sim_state.WAITING_CACHE_SECONDS:g}-s 'Waiting' cache first)."
        )


# --------------------------------------------------------------------------- playground


@dataclass
class Playground:
    options: PlaygroundOptions
    url: str
    sim: Simulator
    sim_server: SimulatorServer
    fake: FakeTelegram
    app: DaisyApp
    settings: Settings
    users: list[tuple[int, str]]
    demo_keys: dict[str, str]  # own-key: user name -> demo DaisySim key
    operator_key: str | None
    panel_provider: SimPanel | None = None  # the web chat's side panel
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)

    def notes(self) -> list[str]:
        o = self.options
        notes = [
            f"Playground: a local DaisySim simulator and a local Telegram stand-in. "
            f"Demo timings: Cancel & refund opens {_duration(o.cancel_lock)} after purchase "
            f"(real DaisySim: 3 min); a number with no code is cancelled and refunded after "
            f"{_duration(o.give_up_minutes * 60)} (bot default: 20 min).",
        ]
        if o.auto_sms is not None and o.auto_sms_ratio > 0:
            lo, hi = o.auto_sms
            share = round(o.auto_sms_ratio * 100)
            notes.append(
                f"SMS codes arrive by themselves {lo:g}–{hi:g} s after purchase for about "
                f"{share} % of numbers; the others never get one, so you can watch the "
                f"refund. Or press “Deliver SMS now” in the panel."
            )
        else:
            notes.append("Codes arrive only when you press “Deliver SMS now” in the panel.")
        if o.mode is FundingMode.OWN_KEY:
            keys = ", ".join(f"{name}: {key}" for name, key in self.demo_keys.items())
            notes.append(
                f"Own-key mode: send /key and paste your demo DaisySim key ({keys}). "
                f"Each demo wallet holds {_money(o.demo_balance)} (refilled at every start). "
                f"{self.users[0][1]} is an admin: try /admin."
            )
        else:
            admin = self.users[0][1]
            notes.append(
                f"Operator mode: every chat user starts with {_money(o.starting_credit)} of "
                f"credit. {admin} is an admin: try /admin or /credit {self.users[-1][0]} 5."
            )
        return notes

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:  # keep closing the rest
                log.exception("playground: error while closing")


async def _stop_bot(app: DaisyApp) -> None:
    from bot.app import shutdown

    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await shutdown(app)
    await app.shutdown()


def _settings(options: PlaygroundOptions, fake: FakeTelegram, sim_url: str,
              db_path: Path, fernet: str, operator_key: str | None,
              admin_ids: list[int]) -> Settings:
    # Every field is given explicitly: a developer's .env or environment (a real
    # token, ALLOWED_USER_IDS, WEBHOOK_URL...) must not leak into the playground.
    values: dict[str, Any] = {
        name: info.get_default(call_default_factory=True)
        for name, info in Settings.model_fields.items()
    }
    values.update(
        bot_token=fake.token,
        telegram_base_url=fake.url,
        daisysim_base_url=sim_url,
        daisysim_api_key=operator_key,
        funding_mode=options.mode,
        database_path=str(db_path),
        encryption_key=fernet,
        admin_ids=admin_ids,
        allowed_user_ids=[],
        give_up_minutes=options.give_up_minutes,
        cancel_lock_seconds=options.cancel_lock,
        poll_interval_seconds=options.poll_interval,
        daisysim_timeout_seconds=10.0,
        log_level=options.log_level,
        webhook_url=None,
        webhook_secret=None,
        health_port=None,
    )
    return Settings(_env_file=None, **values)


def _ascii_slug(name: str) -> str:
    """"Sofía" -> "sofia": demo keys stay ASCII like real API keys."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in plain.lower() if ch.isalnum()) or "user"


def _prepare_data_dir(
    options: PlaygroundOptions, users: list[tuple[int, str]]
) -> tuple[Path, str, dict[str, str], str | None]:
    """Create the data dir; return (database path, Fernet key, demo keys, operator key).

    Demo keys persist with the database, so a key linked with /key keeps working.
    """
    data_dir = Path(options.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db_path = data_dir / DB_NAME
    if options.fresh:
        remove_database(db_path)
        with contextlib.suppress(FileNotFoundError):
            (data_dir / CHATS_FILE).unlink()  # the chats go with the database
    fernet = fernet_key(data_dir)
    saved = load_state(data_dir)
    raw_keys = saved.get("demo_keys")
    saved_keys: dict[str, Any] = raw_keys if isinstance(raw_keys, dict) else {}
    demo_keys: dict[str, str] = {}
    operator_key: str | None = None
    if options.mode is FundingMode.OWN_KEY:
        for _, name in users:
            key = saved_keys.get(name)
            if not isinstance(key, str) or not key.startswith("demo_"):
                key = f"demo_{_ascii_slug(name)}_{secrets.token_hex(6)}"
            demo_keys[name] = key
    else:
        key = saved.get("operator_key")
        if not isinstance(key, str) or not key.startswith("demo_"):
            key = f"demo_operator_{secrets.token_hex(8)}"
        operator_key = key
    state = dict(saved)
    if demo_keys:
        state["demo_keys"] = {**saved_keys, **demo_keys}
    if operator_key is not None:
        state["operator_key"] = operator_key
    write_private(data_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")
    return db_path, fernet, demo_keys, operator_key


async def start_playground(options: PlaygroundOptions) -> Playground:
    """Start simulator, fake Bot API, bot and web chat; ``await pg.close()`` stops them."""
    from bot.app import build_application, startup

    if not 1 <= options.users <= len(USER_NAMES):
        raise ValueError(f"users must be within 1..{len(USER_NAMES)}")
    users = [(FIRST_USER_ID + i, USER_NAMES[i]) for i in range(options.users)]
    db_path, fernet, demo_keys, operator_key = _prepare_data_dir(options, users)

    closers: list[Callable[[], Awaitable[None]]] = []

    async def unwind() -> None:
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                await closer()

    rng = random.Random(options.seed)
    try:
        sim = Simulator(
            SystemClock(),
            cancel_lock=options.cancel_lock,
            window=max(1200.0, options.give_up_minutes * 60 + 120),
            auto_sms=options.auto_sms,
            auto_sms_ratio=options.auto_sms_ratio,
            seed=options.seed,
            cache_bound=options.cache_bound,
        )
        sim.core._next_id = max(sim.core._next_id, max_remote_id(db_path) + 1)
        for name, key in demo_keys.items():
            sim.add_account(key, options.demo_balance, email=f"{name.lower()}@demo.daisysim")
        if operator_key is not None:
            sim.add_account(operator_key, options.operator_balance, email="operator@demo.daisysim")
        sim_server = await start_simulator(sim, "127.0.0.1", 0)
        closers.append(sim_server.close)

        fake = FakeTelegram(
            PLAYGROUND_TOKEN, bot_username="daisybot_playground_bot", bot_first_name="DaisyBot"
        )
        await fake.start("127.0.0.1", 0)
        closers.append(fake.close)
        # The chats exist before the bot starts (it may notify users right away), with
        # their messages, ids and offsets from the last run (chat_store.py).
        store = ChatStore(fake, Path(options.data_dir) / CHATS_FILE)
        store.load()
        store.start()
        closers.append(store.close)  # runs after the bot stopped, before fake.close
        last_ids = last_message_ids(db_path)
        for uid, name in users:
            # the roster decides the language, also over a chat kept from an older run
            fake.user(uid, name).language_code = LANGUAGE_OF.get(name, "en")
            tg_chat = fake.state.chat(uid)
            if uid in last_ids and tg_chat.next_message_id <= last_ids[uid]:
                # A data dir from before chats were kept: never reuse a remembered
                # message id.
                tg_chat.next_message_id = last_ids[uid] + 1

        # The first chat user is an admin in both modes (own key: /admin's stats, and
        # /credit says wallets are DaisySim's instead of "not allowed").
        admin_ids = [users[0][0]]
        settings = _settings(options, fake, sim_server.base_url, db_path, fernet,
                             operator_key, admin_ids)
        app = build_application(settings, clock=SystemClock())
        await app.initialize()
        closers.append(lambda: _stop_bot(app))
        await startup(app)
        if options.mode is FundingMode.OPERATOR:
            engine = app.bot_data.engine
            for uid, _ in users:
                await engine.ensure_user(uid)
                view = await engine.wallet(uid)
                if not view.ledger:
                    await engine.admin_adjust(
                        users[0][0], uid, options.starting_credit, "playground starting credit"
                    )
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=10)

        pg = Playground(
            options=options,
            url="",
            sim=sim,
            sim_server=sim_server,
            fake=fake,
            app=app,
            settings=settings,
            users=users,
            demo_keys=demo_keys,
            operator_key=operator_key,
        )
        pg.panel_provider = SimPanel(pg, rng)
        chat = make_webchat_app(fake, side_panel=pg.panel_provider, users=users)
        base, close_chat = await start_webchat(chat, options.host, options.port)
        closers.append(close_chat)
    except BaseException:
        await unwind()
        raise
    host = options.host
    if host in ("0.0.0.0", "::", ""):
        base = base.replace(f"//{host}:", "//127.0.0.1:", 1)
    pg.url = base
    pg._closers = closers
    return pg
