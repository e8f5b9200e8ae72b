""":class:`FakeTelegram`: the one object tests hold. A facade over the three roles:
the HTTP server (:mod:`.server`), the state (:mod:`.state`) and the test-facing API
(:mod:`.users`, :mod:`.faults`, :mod:`.persistence`)."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.sandbox.fake_telegram.errors import JSON
from bot.sandbox.fake_telegram.faults import Faults, InjectedError
from bot.sandbox.fake_telegram.methods import HOOK_NAMES, METHODS, Method
from bot.sandbox.fake_telegram.persistence import STATE_VERSION, export_state, import_state
from bot.sandbox.fake_telegram.server import FakeBotServer
from bot.sandbox.fake_telegram.snapshots import (
    CallbackAnswer,
    ChatEvent,
    ChatMessage,
    RecordedCall,
    RecordedRequest,
    WebhookDelivery,
)
from bot.sandbox.fake_telegram.stars import Charge, InvoiceInfo, PaymentResult, PreCheckout
from bot.sandbox.fake_telegram.state import TOKEN_RE, BotState
from bot.sandbox.fake_telegram.users import (
    FakeUser,
    get_user,
    push_raw_update,
    redeliver,
    user_presses,
    wait_callback_answer,
    wait_payment,
)


class FakeTelegram:
    """The fake Bot API server plus the test-side API (users, transcripts, injections)."""

    STATE_VERSION = STATE_VERSION

    def __init__(
        self,
        token: str,
        *,
        bot_username: str = "daisysim_test_bot",
        bot_id: int | None = None,
        bot_first_name: str = "DaisySim Test Bot",
        clock: Clock | None = None,
        callback_query_ttl: float | None = None,
        chat_rate_limit: tuple[int, float] | None = None,
        first_update_id: int = 1000,
        webhook_retry_delay: float = 0.2,
    ) -> None:
        """``webhook_retry_delay``: first pause before a failed webhook delivery is
        retried (doubling up to 10x; Telegram waits longer, tests don't want to)."""
        if not TOKEN_RE.match(token):
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.state = BotState(
            token,
            bot_username=bot_username,
            bot_id=bot_id if bot_id is not None else int(token.split(":", 1)[0]),
            bot_first_name=bot_first_name,
            clock=clock,
            callback_query_ttl=callback_query_ttl,
            chat_rate_limit=chat_rate_limit,
            first_update_id=first_update_id,
            webhook_retry_delay=webhook_retry_delay,
        )
        self.faults = Faults(self.state)
        self.server = FakeBotServer(
            self.state, self.faults, entry=self._route, dispatch=self._dispatch
        )

    async def _route(self, request: web.Request) -> web.Response:
        return await self._handle(request)

    def _dispatch(self, method: str, params: JSON) -> Any:
        return getattr(self, HOOK_NAMES[method])(params)

    async def _handle(self, request: web.Request) -> web.Response:
        """Every Bot API request goes through here: a subclass may wrap it (the
        benchmarks' TimedFakeTelegram stamps each request)."""
        return await self.server.handle(request)

    # -- identity and settings -------------------------------------------------------
    @property
    def token(self) -> str:
        return self.state.token

    @property
    def bot_username(self) -> str:
        return self.state.bot_username

    @property
    def bot_id(self) -> int:
        return self.state.bot_id

    @property
    def bot_first_name(self) -> str:
        return self.state.bot_first_name

    @property
    def bot_user(self) -> JSON:
        return self.state.bot_user

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.state.clock = clock

    # -- lifecycle -------------------------------------------------------------------
    def make_app(self) -> web.Application:
        return self.server.make_app()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.server.start(host, port)

    async def close(self) -> None:
        await self.server.close()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_base(self) -> str:
        """Pass as ``base_url`` to ``telegram.Bot`` / ``ApplicationBuilder().base_url()``."""
        return self.url + "/bot"

    # -- users, chats and what happened ----------------------------------------------
    def user(
        self,
        user_id: int,
        first_name: str = "Alice",
        username: str | None = None,
        language_code: str | None = "en",
        last_name: str | None = None,
    ) -> FakeUser:
        """Get or create a user (and the private chat with them)."""
        return get_user(self.state, user_id, first_name, username, language_code, last_name)

    @property
    def users(self) -> list[FakeUser]:
        return [u for u in self.state.users.values() if isinstance(u, FakeUser)]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request: ``(method, params)``."""
        return self.server.requests

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request with its HTTP status and reply."""
        return self.server.calls

    def calls_to(self, method: str) -> list[JSON]:
        """Params of every request to ``method`` (e.g. "deleteMessage")."""
        return [r.params for r in self.requests if r.method.lower() == method.lower()]

    @property
    def seq(self) -> int:
        """Sequence number of the newest event (0 before any)."""
        return self.state.seq

    def events_since(self, chat_id: int, since: int = 0) -> list[ChatEvent]:
        """Events of chat ``chat_id`` (and global ones) with seq > ``since``, in order."""
        return self.state.events_since(chat_id, since)

    async def wait_events(self, chat_id: int, since: int, timeout: float) -> list[ChatEvent]:  # noqa: ASYNC109
        """Wait (up to ``timeout``) for events newer than ``since``; [] on timeout."""
        state = self.state
        found = await state.wait_until(lambda: state.events_since(chat_id, since) or None, timeout)
        return found or []

    async def wait_idle(self, quiet: float = 0.15, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every update has been fetched and confirmed, no request is in flight
        and nothing happened for ``quiet`` seconds."""
        await self.state.wait_idle(quiet=quiet, timeout=timeout)

    def transcript(self, chat_id: int, *, include_deleted: bool = False) -> list[ChatMessage]:
        return self.state.transcript(chat_id, include_deleted=include_deleted)

    def message(self, chat_id: int, message_id: int) -> ChatMessage | None:
        return self.state.message(chat_id, message_id)

    def reply_keyboard(self, chat_id: int) -> JSON | None:
        return self.state.chat(chat_id).reply_keyboard

    def next_message_id(self, chat_id: int) -> int:
        """The id the next message in chat ``chat_id`` will get."""
        return self.state.chat(chat_id).next_message_id

    @property
    def pending_updates(self) -> list[JSON]:
        return [json.loads(json.dumps(u)) for u in self.state.updates]

    def commands_for(self, user_id: int) -> list[JSON]:
        """Commands the user's client would show (scope + language resolution)."""
        return self.state.commands_for(user_id)

    # -- webhook -----------------------------------------------------------------------
    @property
    def webhook_url(self) -> str:
        return self.state.webhook.url

    @property
    def webhook_secret(self) -> str | None:
        """The ``secret_token`` given to setWebhook (getWebhookInfo does not show it)."""
        return self.state.webhook.secret

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every attempt to POST an update to the webhook."""
        return self.state.webhook.deliveries

    @property
    def webhook_retry_delay(self) -> float:
        return self.state.webhook.retry_delay

    # -- callback queries ----------------------------------------------------------------
    def press_callback(
        self, user_id: int, message_id: int, data: str, *, forged: bool = False
    ) -> str:
        """User ``user_id`` presses the callback button with ``data`` on ``message_id``
        (it must exist unless ``forged``); returns the callback query id."""
        return user_presses(self.state, self.user(user_id), message_id, data, forged=forged)

    def callback_answer(self, query_id: str) -> CallbackAnswer | None:
        q = self.state.queries.get(query_id)
        return None if q is None else q.answer

    async def wait_callback_answer(self, query_id: str, timeout: float = 10.0) -> CallbackAnswer:  # noqa: ASYNC109
        return await wait_callback_answer(self.state, query_id, timeout)

    def push_raw_update(self, content: JSON) -> int:
        """Test hook: queue an update exactly as given, malformed or not (``content``
        without ``update_id``, one kind key: ``{"message": {...}}``). It is delivered
        by getUpdates or to the webhook like any other. Returns its update_id."""
        return push_raw_update(self.state, content)

    # -- Telegram Stars payments ----------------------------------------------------------
    async def pay(
        self,
        user_id: int,
        message_id: int | None = None,
        *,
        duplicate: bool = False,
        lose_update: bool = False,
        timeout: float = 15.0,  # noqa: ASYNC109
    ) -> PaymentResult:
        """User ``user_id`` pays invoice ``message_id``: see :meth:`FakeUser.pay`."""
        return await self.user(user_id).pay(
            message_id, duplicate=duplicate, lose_update=lose_update, timeout=timeout
        )

    def pay_nowait(
        self, user_id: int, message_id: int | None = None, *, lose_update: bool = False
    ) -> str:
        """Start paying (the pre_checkout_query is queued); returns the query id."""
        return self.user(user_id).pay_nowait(message_id, lose_update=lose_update)

    async def wait_payment(self, query_id: str, timeout: float = 15.0) -> PaymentResult:  # noqa: ASYNC109
        """How the payment of pre-checkout query ``query_id`` ended (waits for it)."""
        return await wait_payment(self.state, query_id, timeout)

    def redeliver(self, update_id: int) -> int:
        """Deliver payment update ``update_id`` again (same content, new update_id), as
        Telegram may deliver a successful_payment twice; returns the new update_id."""
        return redeliver(self.state, update_id)

    def pre_checkout(self, query_id: str) -> PreCheckout:
        return self.state.stars.queries[query_id]

    def invoice(self, chat_id: int, message_id: int) -> InvoiceInfo | None:
        """What the fake knows of invoice message ``message_id`` (payload included)."""
        return self.state.stars.invoices.get((chat_id, message_id))

    def invoice_link(self, link: str) -> InvoiceInfo | None:
        """The invoice behind a createInvoiceLink link."""
        return self.state.stars.links.get(link.rsplit("$", 1)[-1])

    @property
    def charges(self) -> dict[str, Charge]:
        """Every Stars payment, by telegram_payment_charge_id (``refunded`` flag)."""
        return dict(self.state.stars.charges)

    @property
    def star_transactions(self) -> list[JSON]:
        """The bot's StarTransactions, oldest first (what getStarTransactions pages)."""
        return json.loads(json.dumps(self.state.stars.transactions))

    @property
    def star_balance(self) -> int:
        """Stars received minus Stars refunded."""
        return sum(
            t["amount"] if "source" in t else -t["amount"] for t in self.state.stars.transactions
        )

    # -- persistence (the playground keeps its chats across restarts) ---------------
    def export_state(self) -> JSON:
        """See :func:`bot.sandbox.fake_telegram.persistence.export_state`."""
        return export_state(self.state)

    def import_state(self, state: JSON) -> None:
        """See :func:`bot.sandbox.fake_telegram.persistence.import_state`."""
        import_state(self.state, state)

    # -- failures --------------------------------------------------------------------
    def inject_error(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = None,
        count: int = 1,
        description: str | None = None,
        chat_id: int | None = None,
        for_seconds: float | None = None,
    ) -> InjectedError:
        """Make the next ``count`` calls of ``method`` ("*" = any except getUpdates) fail;
        ``chat_id``: only calls for that chat.

        429 defaults to ``retry_after=1`` and "Too Many Requests: retry after N" (with
        ``parameters.retry_after``, as Telegram answers).

        ``for_seconds``: a storm instead of a count — every matching call fails until
        that many seconds of the fake's clock have passed (``count`` is ignored); a
        429 without ``retry_after`` then tells the seconds left in the window.
        """
        return self.faults.inject_error(
            method,
            status,
            retry_after=retry_after,
            count=count,
            description=description,
            chat_id=chat_id,
            for_seconds=for_seconds,
        )

    def drop_response(
        self, method: str, *, count: int = 1, chat_id: int | None = None
    ) -> InjectedError:
        """The next ``count`` calls of ``method`` take effect (a message is really
        sent), then the connection is cut before the answer: the bot sees a network
        error and cannot know whether the call went through."""
        return self.faults.drop_response(method, count=count, chat_id=chat_id)

    def clear_injected(self) -> None:
        self.faults.clear()


def _method_hook(method: Method) -> Any:
    def hook(self: FakeTelegram, params: JSON) -> Any:
        return method(self.state, params)

    return hook


# Test hooks: every Bot API method is also ``FakeTelegram._m_<snake_name>(params)``
# (``_m_send_message``, ``_m_answer_callback_query``, ...) and requests are dispatched
# through it, so a subclass may wrap one (the soak's PushKillFake wraps
# _m_send_message to kill the bot right after an OTP message was stored).
for _name, _method in METHODS.items():
    setattr(FakeTelegram, HOOK_NAMES[_name], _method_hook(_method))
