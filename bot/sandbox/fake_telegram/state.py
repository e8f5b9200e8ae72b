"""What the fake Bot API knows: the bot, users and their private chats (messages as
they are now, with their edit history), the updates queue, callback queries, commands
and settings, the webhook, and the per-chat event log tests and the web chat wait on.

No HTTP here (see ``server.py``) and no Bot API method (see ``methods/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from bot.clock import Clock, SystemClock
from bot.sandbox.fake_telegram.errors import JSON
from bot.sandbox.fake_telegram.snapshots import (
    Button,
    CallbackAnswer,
    ChatEvent,
    ChatMessage,
    WebhookDelivery,
)
from bot.sandbox.fake_telegram.stars import StarsLedger

T = TypeVar("T")


class FakeUser(Protocol):
    """What the state needs of a user (users.FakeUser, which drives the chat, is
    built on the state: this protocol keeps the import one way)."""

    id: int
    first_name: str
    username: str | None
    language_code: str | None
    last_name: str | None

    def to_user_json(self) -> JSON: ...

    def to_chat_json(self) -> JSON: ...


TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_\-]+$")
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@dataclass
class Stored:
    """A message as the fake stores it (the Bot API JSON, as it is now)."""

    data: JSON
    from_bot: bool
    deleted: bool = False
    edits: int = 0
    history: list[JSON] = field(default_factory=list)


@dataclass
class Query:
    """A callback query a user sent, and the bot's answer once it came."""

    id: str
    chat_id: int
    message_id: int
    data: str
    created: float
    answer: CallbackAnswer | None = None


@dataclass
class Chat:
    """The private chat with one user (chat id == user id)."""

    user: FakeUser
    messages: dict[int, Stored] = field(default_factory=dict)
    next_message_id: int = 1
    started: bool = False
    blocked: bool = False
    reply_keyboard: JSON | None = None
    events: list[ChatEvent] = field(default_factory=list)
    send_times: deque[float] = field(default_factory=deque)


@dataclass
class Webhook:
    """setWebhook's settings, and the delivery to a webhook on this machine."""

    url: str = ""
    info: JSON = field(default_factory=dict)
    secret: str | None = None
    last_error: tuple[int, str] | None = None
    task: asyncio.Task[None] | None = None
    retry_delay: float = 0.2
    deliveries: list[WebhookDelivery] = field(default_factory=list)


class BotState:
    """The fake's data plus the primitives every method needs (events, waiting,
    snapshots, the updates queue)."""

    def __init__(
        self,
        token: str,
        *,
        bot_username: str,
        bot_id: int,
        bot_first_name: str,
        clock: Clock | None,
        callback_query_ttl: float | None,
        chat_rate_limit: tuple[int, float] | None,
        first_update_id: int,
        webhook_retry_delay: float,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.bot_id = bot_id
        self.bot_first_name = bot_first_name
        self.clock: Clock = clock or SystemClock()
        self.callback_query_ttl = callback_query_ttl
        self.chat_rate_limit = chat_rate_limit

        self.users: dict[int, FakeUser] = {}
        self.chats: dict[int, Chat] = {}
        self.updates: list[JSON] = []  # unconfirmed updates, ordered by update_id
        self.next_update_id = first_update_id
        self.allowed_updates: list[str] | None = None
        self.poller: object | None = None  # the getUpdates call that is current
        self.webhook = Webhook(retry_delay=webhook_retry_delay)
        self.queries: dict[str, Query] = {}
        self.query_counter = itertools.count(1)
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.bot_settings: dict[tuple[str, str], Any] = {}
        self.stars = StarsLedger()  # invoices, pre-checkout queries, charges, transactions
        self.global_events: list[ChatEvent] = []
        self.seq = 0  # sequence number of the newest event (0 before any)
        self.changed = asyncio.Event()
        self.in_flight = 0
        self.closing = False
        self.running = False  # the HTTP server is up (webhook delivery may run)

    def now(self) -> float:
        return self.clock.now()

    @property
    def bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # -- users / chats ---------------------------------------------------------------
    def add_user(self, user: FakeUser) -> None:
        self.users[user.id] = user
        self.chats[user.id] = Chat(user=user)

    def chat(self, chat_id: int) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise KeyError(f"no chat {chat_id}; create the user with fake.user(...) first")
        return chat

    def new_message_id(self, chat: Chat) -> int:
        mid = chat.next_message_id
        chat.next_message_id += 1
        return mid

    # -- events ----------------------------------------------------------------------
    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def emit(self, chat_id: int | None, kind: str, message_id: int | None, data: JSON) -> ChatEvent:
        self.seq += 1
        ev = ChatEvent(self.seq, chat_id, kind, message_id, data)
        if chat_id is None:
            self.global_events.append(ev)
        else:
            self.chat(chat_id).events.append(ev)
        self.notify()
        return ev

    def events_since(self, chat_id: int, since: int = 0) -> list[ChatEvent]:
        """Events of chat ``chat_id`` (and global ones) with seq > ``since``, in order."""
        chat_events = [e for e in self.chat(chat_id).events if e.seq > since]
        global_events = [e for e in self.global_events if e.seq > since]
        if not global_events:
            return chat_events
        return sorted(chat_events + global_events, key=lambda e: e.seq)

    async def wait_until(self, probe: Callable[[], T | None], timeout: float) -> T | None:  # noqa: ASYNC109
        """Re-run ``probe`` on every change until it returns non-None (or ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self.changed
            result = probe()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closing:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_idle(self, quiet: float = 0.15, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every update has been fetched and confirmed, no request is in flight
        and nothing happened for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            busy = bool(self.updates) or self.in_flight > 0
            event = self.changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"bot not idle after {timeout}s (pending updates: {len(self.updates)}, "
                    f"requests in flight: {self.in_flight})"
                )
            try:
                await asyncio.wait_for(event.wait(), min(quiet, remaining))
            except TimeoutError:
                if not busy and not (bool(self.updates) or self.in_flight > 0):
                    return

    # -- transcript --------------------------------------------------------------------
    def snapshot(self, stored: Stored) -> ChatMessage:
        d = stored.data
        markup = d.get("reply_markup") or {}
        buttons = [[Button.from_json(b) for b in row] for row in markup.get("inline_keyboard", [])]
        invoice = self.stars.invoices.get((d["chat"]["id"], d["message_id"]))
        return ChatMessage(
            message_id=d["message_id"],
            chat_id=d["chat"]["id"],
            from_bot=stored.from_bot,
            text=d.get("text", ""),
            entities=[dict(e) for e in d.get("entities", [])],
            buttons=buttons,
            edited=stored.edits > 0,
            deleted=stored.deleted,
            date=d["date"],
            edit_date=d.get("edit_date"),
            raw=json.loads(json.dumps(d)),
            invoice=dict(d["invoice"]) if "invoice" in d else None,
            invoice_paid=invoice is not None and invoice.paid_charge_id is not None,
            successful_payment=d.get("successful_payment"),
            refunded_payment=d.get("refunded_payment"),
        )

    def transcript(self, chat_id: int, *, include_deleted: bool = False) -> list[ChatMessage]:
        chat = self.chat(chat_id)
        return [
            self.snapshot(s) for s in chat.messages.values() if include_deleted or not s.deleted
        ]

    def message(self, chat_id: int, message_id: int) -> ChatMessage | None:
        stored = self.chat(chat_id).messages.get(message_id)
        return None if stored is None else self.snapshot(stored)

    # -- the updates queue ---------------------------------------------------------------
    def push_update(self, payload: JSON) -> int:
        uid = self.next_update_id
        self.next_update_id += 1
        self.updates.append({"update_id": uid, **payload})
        self.notify()
        return uid

    def confirm(self, offset: int) -> None:
        """getUpdates' ``offset``: forget every update before it (negative: keep the last)."""
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    def deliverable(self, limit: int) -> list[JSON]:
        """Up to ``limit`` pending updates of the allowed kinds (others are dropped for
        good, like Telegram does), as copies."""
        allowed = self.allowed_updates
        keep: list[JSON] = []
        out: list[JSON] = []
        for upd in self.updates:
            kind = next(k for k in upd if k != "update_id")
            if allowed:
                ok = kind in allowed
            else:
                ok = kind not in DEFAULT_EXCLUDED_UPDATES
            if not ok:
                continue  # dropped for good, like Telegram does
            keep.append(upd)
            if len(out) < limit:
                out.append(upd)
        self.updates = keep
        return [json.loads(json.dumps(u)) for u in out]

    # -- commands ------------------------------------------------------------------------
    def commands_for(self, user_id: int) -> list[JSON]:
        """Commands the user's client would show (scope + language resolution)."""
        user = self.users.get(user_id)
        lang = (user.language_code or "") if user else ""
        scopes = [f"chat:{user_id}", "all_private_chats", "default"]
        for scope in scopes:
            for lc in ([lang] if lang else []) + [""]:
                cmds = self.commands.get((scope, lc))
                if cmds:
                    return [dict(c) for c in cmds]
        return []
