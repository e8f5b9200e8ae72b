"""The test-facing side: :class:`FakeUser` (a user chatting privately with the bot:
send, press, block, wait for the bot's answer) and what a user's action does to the
fake (a message or callback query queued as an update, a my_chat_member on block)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable

from bot.sandbox.fake_telegram.entities import finalize_text
from bot.sandbox.fake_telegram.errors import JSON
from bot.sandbox.fake_telegram.methods.payments import (
    expire,
    new_link_pre_checkout,
    new_pre_checkout,
)
from bot.sandbox.fake_telegram.snapshots import (
    Button,
    CallbackAnswer,
    ChatMessage,
    format_transcript,
)
from bot.sandbox.fake_telegram.stars import PRE_CHECKOUT_TIMEOUT, PaymentResult
from bot.sandbox.fake_telegram.state import BotState, Query, Stored


class FakeUser:
    """A Telegram user chatting privately with the bot (chat id == user id)."""

    def __init__(
        self,
        state: BotState,
        user_id: int,
        first_name: str,
        username: str | None,
        language_code: str | None,
        last_name: str | None = None,
    ) -> None:
        self.state = state
        self.id = user_id
        self.first_name = first_name
        self.username = username
        self.language_code = language_code
        self.last_name = last_name
        self._mark = 0  # event seq of this user's last action (send/press)

    # -- identity --------------------------------------------------------------------
    @property
    def chat_id(self) -> int:
        return self.id

    def to_user_json(self) -> JSON:
        data: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def to_chat_json(self) -> JSON:
        data: JSON = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    # -- actions ---------------------------------------------------------------------
    async def send(self, text: str) -> int:
        """The user sends a text message (``/cmd`` gets a bot_command entity); returns update id."""
        return user_sends(self.state, self, text)

    async def press(
        self,
        label: str | re.Pattern[str],
        *,
        message_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> CallbackAnswer:
        """Press a callback button by its label (exact string or regex) on the newest bot
        message that has it (or on ``message_id``); wait for answerCallbackQuery."""
        msg, button = self._find_button(label, message_id)
        if button.kind != "callback" or button.callback_data is None:
            raise AssertionError(
                f"button {button.text!r} on message #{msg.message_id} is a {button.kind} button, "
                "not a callback button"
            )
        query_id = user_presses(self.state, self, msg.message_id, button.callback_data)
        return await wait_callback_answer(self.state, query_id, timeout=timeout)

    async def press_nowait(
        self, label: str | re.Pattern[str], *, message_id: int | None = None
    ) -> str:
        """Like :meth:`press` but returns the callback query id without waiting."""
        msg, button = self._find_button(label, message_id)
        if button.callback_data is None:
            raise AssertionError(f"button {button.text!r} is not a callback button")
        return user_presses(self.state, self, msg.message_id, button.callback_data)

    async def press_data(
        self,
        data: str,
        message_id: int,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> CallbackAnswer:
        """Send a forged callback query with arbitrary ``data`` for ``message_id``."""
        query_id = user_presses(self.state, self, message_id, data, forged=True)
        return await wait_callback_answer(self.state, query_id, timeout=timeout)

    async def pay(
        self,
        message_id: int | None = None,
        *,
        duplicate: bool = False,
        lose_update: bool = False,
        timeout: float = 15.0,  # noqa: ASYNC109
    ) -> PaymentResult:
        """Press Pay on invoice ``message_id`` (default: the newest unpaid invoice) and
        confirm: the bot gets a ``pre_checkout_query`` and has 10 seconds of the fake's
        clock to answer it. Returns how it ended: ``paid`` (a ``successful_payment``
        message update was queued; ``charge_id`` is its telegram_payment_charge_id),
        ``declined`` (``error_message`` is the bot's) or ``expired`` (no answer in time).

        ``duplicate``: once paid, the successful_payment update is delivered a second
        time (a new update_id, same content), as Telegram may do.
        ``lose_update``: once paid, the successful_payment update is never delivered
        (``payment_update_id`` is None): the charge shows only in getStarTransactions.
        ``timeout``: real seconds to wait at most (a safety net; with a VirtualClock the
        10 seconds pass only when the test advances the clock).
        """
        query_id = self.pay_nowait(message_id, lose_update=lose_update)
        result = await wait_payment(self.state, query_id, timeout)
        if duplicate and result.payment_update_id is not None:
            result.duplicate_update_id = redeliver(self.state, result.payment_update_id)
        return result

    def pay_nowait(self, message_id: int | None = None, *, lose_update: bool = False) -> str:
        """Like :meth:`pay` but returns the pre-checkout query id without waiting (see
        :func:`wait_payment`)."""
        if message_id is None:
            message_id = self._newest_invoice()
        q = new_pre_checkout(self.state, self.id, message_id, lose_update=lose_update)
        self._mark = self.state.seq
        return q.id

    async def pay_link(
        self,
        link: str,
        *,
        lose_update: bool = False,
        timeout: float = 15.0,  # noqa: ASYNC109
    ) -> PaymentResult:
        """Open a createInvoiceLink link and pay it (same flow as :meth:`pay`)."""
        q = new_link_pre_checkout(self.state, self.id, link, lose_update=lose_update)
        self._mark = self.state.seq
        return await wait_payment(self.state, q.id, timeout)

    def _newest_invoice(self) -> int:
        for m in reversed(self.chat()):
            if m.from_bot and m.invoice is not None and not m.invoice_paid:
                return m.message_id
        raise AssertionError(
            f"no unpaid invoice in chat {self.id}:\n{format_transcript(self.chat())}"
        )

    async def block(self) -> None:
        """The user blocks the bot (sends get 403; a my_chat_member update is queued)."""
        set_blocked(self.state, self, True)

    async def unblock(self) -> None:
        set_blocked(self.state, self, False)

    def _find_button(
        self, label: str | re.Pattern[str], message_id: int | None
    ) -> tuple[ChatMessage, Button]:
        messages = self.chat()
        if message_id is not None:
            candidates = [m for m in messages if m.message_id == message_id]
            if not candidates:
                raise AssertionError(
                    f"no message #{message_id} in chat {self.id}:\n{format_transcript(messages)}"
                )
        else:
            candidates = [m for m in reversed(messages) if m.from_bot]
        for m in candidates:
            b = m.find_button(label)
            if b is not None:
                return m, b
        raise AssertionError(
            f"no button {label!r} in chat {self.id}:\n{format_transcript(messages)}"
        )

    # -- inspection ------------------------------------------------------------------
    def chat(self, *, include_deleted: bool = False) -> list[ChatMessage]:
        """The transcript as it is now (edits applied; deleted messages left out)."""
        return self.state.transcript(self.id, include_deleted=include_deleted)

    def bot_messages(self) -> list[ChatMessage]:
        return [m for m in self.chat() if m.from_bot]

    def last(self, *, from_bot: bool | None = True) -> ChatMessage:
        """The newest (not deleted) message; by default the newest *bot* message."""
        for m in reversed(self.chat()):
            if from_bot is None or m.from_bot == from_bot:
                return m
        raise AssertionError(f"no {'bot ' if from_bot else ''}message in chat {self.id}")

    def message(self, message_id: int) -> ChatMessage:
        snap = self.state.message(self.id, message_id)
        if snap is None:
            raise AssertionError(f"no message #{message_id} in chat {self.id}")
        return snap

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """Labels of the custom reply keyboard currently shown, if any."""
        kb = self.state.chat(self.id).reply_keyboard
        if kb is None:
            return None
        return [[b["text"] for b in row] for row in kb.get("keyboard", [])]

    def mark(self) -> int:
        """Make "now" the reference point of :meth:`wait_for` (returns the event seq)."""
        self._mark = self.state.seq
        return self._mark

    async def wait_for(
        self,
        predicate: Callable[[ChatMessage], bool] | str | re.Pattern[str],
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        since: int | None = None,
    ) -> ChatMessage:
        """Wait until a bot message sent or edited after this user's last action (or after
        event ``since``) matches; returns it in its current state.

        ``predicate`` may be a substring, a regex or a callable.  Raises AssertionError with
        the transcript on timeout.
        """
        check: Callable[[ChatMessage], bool]
        if isinstance(predicate, str):
            needle = predicate
            check = lambda m: needle in m.text  # noqa: E731
        elif isinstance(predicate, re.Pattern):
            pattern = predicate
            check = lambda m: pattern.search(m.text) is not None  # noqa: E731
        else:
            check = predicate
        ref = self._mark if since is None else since

        def probe() -> ChatMessage | None:
            chat = self.state.chat(self.id)
            seen: set[int] = set()
            for ev in chat.events:
                if ev.seq <= ref or ev.kind not in ("message", "edited") or ev.message_id is None:
                    continue
                if ev.message_id in seen:
                    continue
                seen.add(ev.message_id)
                snap = self.state.message(self.id, ev.message_id)
                if snap is not None and snap.from_bot and not snap.deleted and check(snap):
                    return snap
            return None

        found = await self.state.wait_until(probe, timeout)
        if found is None:
            raise AssertionError(
                f"timed out after {timeout}s waiting for a bot message matching {predicate!r} "
                f"in chat {self.id}; transcript:\n{format_transcript(self.chat())}"
            )
        return found

    async def wait_idle(self, quiet: float = 0.15, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.state.wait_idle(quiet=quiet, timeout=timeout)


# -- what users do -------------------------------------------------------------------


def get_user(
    state: BotState,
    user_id: int,
    first_name: str = "Alice",
    username: str | None = None,
    language_code: str | None = "en",
    last_name: str | None = None,
) -> FakeUser:
    """Get or create a user (and the private chat with them)."""
    existing = state.users.get(user_id)
    if isinstance(existing, FakeUser):
        return existing
    if user_id <= 0:
        raise ValueError("user ids are positive")
    u = FakeUser(state, user_id, first_name, username, language_code, last_name)
    state.add_user(u)
    return u


def user_sends(state: BotState, user: FakeUser, text: str) -> int:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a user can't send an empty message")
    chat = state.chat(user.id)
    chat.started = True
    final_text, entities = finalize_text(text, [])
    msg: JSON = {
        "message_id": state.new_message_id(chat),
        "from": user.to_user_json(),
        "chat": user.to_chat_json(),
        "date": int(state.now()),
        "text": final_text,
    }
    if entities:
        msg["entities"] = entities
    chat.messages[msg["message_id"]] = Stored(data=msg, from_bot=False)
    kb = chat.reply_keyboard
    if kb is not None and kb.get("one_time_keyboard"):
        labels = {b["text"] for row in kb.get("keyboard", []) for b in row}
        if final_text in labels:
            chat.reply_keyboard = None
            state.emit(user.id, "reply_keyboard", None, {"keyboard": None})
    ev = state.emit(
        user.id,
        "message",
        msg["message_id"],
        {"message": state.snapshot(chat.messages[msg["message_id"]]).to_json()},
    )
    user._mark = ev.seq
    return state.push_update({"message": json.loads(json.dumps(msg))})


def user_presses(
    state: BotState, user: FakeUser, message_id: int, data: str, *, forged: bool = False
) -> str:
    chat = state.chat(user.id)
    stored = chat.messages.get(message_id)
    if stored is None or stored.deleted:
        raise AssertionError(f"message #{message_id} does not exist in chat {user.id}")
    if not stored.from_bot:
        raise AssertionError(f"message #{message_id} is not a bot message")
    if not forged:
        snap = state.snapshot(stored)
        if not any(b.callback_data == data for row in snap.buttons for b in row):
            raise AssertionError(f"message #{message_id} has no button with data {data!r}")
    qid = str(state.bot_id % 1000 * 10**15 + user.id % 10**6 * 10**6 + next(state.query_counter))
    state.queries[qid] = Query(qid, user.id, message_id, data, state.now())
    ev = state.emit(user.id, "callback_query", message_id, {"query_id": qid, "data": data})
    user._mark = ev.seq
    query: JSON = {
        "id": qid,
        "from": user.to_user_json(),
        "message": json.loads(json.dumps(stored.data)),
        "chat_instance": str(abs(hash((state.bot_id, user.id))) % 10**18),
        "data": data,
    }
    state.push_update({"callback_query": query})
    return qid


async def wait_callback_answer(
    state: BotState,
    query_id: str,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> CallbackAnswer:
    q = state.queries[query_id]
    answer = await state.wait_until(lambda: q.answer, timeout)
    if answer is None:
        raise AssertionError(
            f"the bot did not answer callback query {q.data!r} (message #{q.message_id}) "
            f"within {timeout}s; transcript:\n{format_transcript(state.transcript(q.chat_id))}"
        )
    return answer


async def wait_payment(
    state: BotState,
    query_id: str,
    timeout: float = 15.0,  # noqa: ASYNC109
) -> PaymentResult:
    """Wait until the bot answered pre-checkout query ``query_id`` or its 10 seconds on
    the fake's clock are over (then the payment fails: ``expired``)."""
    q = state.stars.queries[query_id]
    left = PRE_CHECKOUT_TIMEOUT - (state.now() - q.created)
    answered = asyncio.ensure_future(
        state.wait_until(lambda: q if q.status != "pending" else None, timeout)
    )
    ran_out = asyncio.ensure_future(state.clock.sleep(max(left, 0.0)))
    try:
        await asyncio.wait({answered, ran_out}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (answered, ran_out):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if q.status == "pending":
        if not ran_out.done() or ran_out.cancelled():
            raise AssertionError(
                f"the bot did not answer pre-checkout query {q.id} (invoice #{q.message_id}) "
                f"within {timeout}s of real time, and the fake's clock did not reach its "
                f"10 s limit; transcript:\n{format_transcript(state.transcript(q.chat_id))}"
            )
        expire(state, q)
    return PaymentResult(
        query_id=q.id,
        status=q.status,
        ok=q.ok,
        error_message=q.error_message,
        charge_id=q.charge_id,
        payment_update_id=q.payment_update_id,
    )


def redeliver(state: BotState, update_id: int) -> int:
    """Deliver payment update ``update_id`` (pre_checkout_query, successful_payment or
    refunded_payment message) once more, with a new update_id; returns it."""
    content = state.stars.updates.get(update_id)
    if content is None:
        raise KeyError(f"update {update_id} is not a payment update the fake delivered")
    new_id = state.push_update(json.loads(json.dumps(content)))
    state.stars.updates[new_id] = content
    return new_id


def push_raw_update(state: BotState, content: JSON) -> int:
    """Queue an update exactly as given, malformed or not (``content`` without
    ``update_id``, one kind key: ``{"message": {...}}``); returns its update_id."""
    if not isinstance(content, dict) or len(content) != 1 or "update_id" in content:
        raise ValueError("give the update's content (one kind key), without update_id")
    return state.push_update(json.loads(json.dumps(content)))


def set_blocked(state: BotState, user: FakeUser, blocked: bool) -> None:
    chat = state.chat(user.id)
    if chat.blocked == blocked:
        return
    chat.blocked = blocked
    now = int(state.now())
    member = lambda status: {"user": state.bot_user, "status": status}  # noqa: E731
    old, new = ("member", "kicked") if blocked else ("kicked", "member")
    if new == "kicked":
        new_member = {**member("kicked"), "until_date": 0}
        old_member = member(old)
    else:
        new_member = member(new)
        old_member = {**member("kicked"), "until_date": 0}
    state.push_update(
        {
            "my_chat_member": {
                "chat": user.to_chat_json(),
                "from": user.to_user_json(),
                "date": now,
                "old_chat_member": old_member,
                "new_chat_member": new_member,
            }
        }
    )
