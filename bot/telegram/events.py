"""Delivers engine events to Telegram (what each says: :mod:`bot.telegram.orders.views`).

* ``code_received``   → the code is pushed as a NEW message (so the phone
  notifies) with a copy button; the order message is updated too.
* ``cancel_available`` → the order message gets its "Cancel & refund" button.
* ``expired``          → the order message shows "refund in progress".
* ``refunded`` / ``failed`` → the order message is edited, plus a short notice
  (not for a refund the user asked for: they are looking at the order). A
  ``failed`` purchase that was in doubt says "not bought, the hold is released".
* ``purchased``        → a purchase left in doubt went through: the pressed
  message (stored with the purchase) becomes the order, plus a short notice.

The engine acknowledges an event once this handler returns and redelivers it if
it raises. So: Forbidden (the user blocked the bot) and permanent BadRequests
are swallowed (acknowledged); transient errors (network, timeouts, flood
control after the rate limiter's retries) are raised. Once the code message is
out, later failures are swallowed so a redelivery never sends the code twice; a
code push that got no answer counts as out once the order message (which shows
the code too) has been updated.

Flood control (see :mod:`bot.telegram.ratelimit`): code pushes go out first, notices
next, order re-renders last (a queued re-render is dropped when a newer edit of the
same message comes). None of them waits for a chat's flood pause, which would hold
up every other chat's events: a request that would have to wait raises
RetryAfter, and the event is handed back to the outbox with
:class:`~bot.services.api.RetryLater` (delivered when the pause is over).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from telegram import Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.services.api import Activation, EngineError, Event, EventKind, RetryLater
from bot.telegram.common.handlers import is_not_modified, user_lang
from bot.telegram.context import BotData, DaisyApp
from bot.telegram.orders import views
from bot.telegram.ratelimit import Outgoing, Priority, retry_after_seconds
from bot.telegram.request import maybe_delivered

__all__ = ["EventRenderer"]

log = logging.getLogger(__name__)

# The outbox never waits for a flood pause (max_wait 0), nor long for its turn in a
# busy chat (max_queue): the engine redelivers the event, and meanwhile every other
# chat's events and the engine's next tick go on. (A code push goes first in its
# chat: it waits at most for the chat's next free slot, about a second.)
CODE = Outgoing(Priority.CODE, max_wait=0.0, max_queue=5.0)
NOTICE = Outgoing(Priority.NOTICE, max_wait=0.0, max_queue=2.0)
COSMETIC = Outgoing(Priority.COSMETIC, max_wait=0.0, max_queue=2.0)
# The order message's re-render once the code is out: nothing is redelivered after
# the push, so it is not awaited by the outbox; it waits its turn (and a short
# flood pause) in the background instead.
AFTER_CODE = Outgoing(Priority.COSMETIC)


class _Unconfirmed(Exception):
    """A code push got no answer and the order update standing in for it could not
    go either: an ordinary failure (the redelivery pushes the code again)."""


class EventRenderer:
    def __init__(self, application: DaisyApp) -> None:
        self._app = application

    @property
    def _data(self) -> BotData:
        return self._app.bot_data

    @property
    def _own_key(self) -> bool:
        return self._data.engine.users_bring_keys

    async def _lang(self, user_id: int) -> str:
        """The user's language from the DB (a push after a restart, before the user
        wrote again, still speaks their language)."""
        settings = self._data.settings
        default = settings.default_locale if settings is not None else "en"
        return await user_lang(self._data, user_id, default)

    async def __call__(self, event: Event) -> None:
        a = event.activation
        try:
            await self._render(event)
        except RetryAfter as exc:
            # Nothing of this event went out (later steps swallow their errors).
            raise RetryLater(retry_after_seconds(exc), f"flood control: {exc}") from exc
        except Forbidden as exc:
            log.info("event %s for user %s dropped: bot blocked (%s)", event.id, a.user_id, exc)
        except BadRequest as exc:
            if not is_not_modified(exc):
                log.warning("event %s (%s) for activation %s: %s", event.id, event.kind, a.id,
                            exc)

    async def _render(self, event: Event) -> None:
        a = event.activation
        lang = await self._lang(a.user_id)
        bot = self._app.bot
        chat_id = a.chat_id if a.chat_id is not None else a.user_id
        kind = event.kind
        if kind == EventKind.CODE_RECEIVED and event.interrupted:
            # The last delivery died half-way (e.g. the bot was killed right after
            # sending): the code may already be in the chat. The order message shows
            # it too, so update that and never push the code a second time.
            log.info("code event %s for activation %s was interrupted; not re-pushed",
                     event.id, a.id)
            await self._update_order(a, lang, chat_id, CODE)
            return
        if kind == EventKind.CODE_RECEIVED:
            screen = views.otp(lang, a)
            try:
                await bot.send_message(
                    chat_id=chat_id, text=screen.text, reply_markup=screen.markup,
                    rate_limit_args=replace(CODE, on_send=event.sending),
                )
            except RetryAfter:
                raise  # not sent
            except NetworkError as exc:
                if not maybe_delivered(exc):
                    raise
                # No answer (timeout, connection cut): Telegram may well have delivered
                # it. The order message carries the code too; once that edit goes
                # through the user has the code, so it is not pushed a second time.
                # If the edit fails as well, this raises and the event is redelivered.
                log.warning("code push for activation %s unconfirmed (%s)", a.id, exc)
                try:
                    await self._update_order(a, lang, chat_id, CODE)
                except RetryAfter as later:
                    raise _Unconfirmed(str(later)) from later
                return
            # The code is out: never fail (and get redelivered) after this point.
            self._app.create_task(self._after_code(a, lang, chat_id),
                                  name=f"order-after-code:{a.id}")
            return
        await self._update_order(a, lang, chat_id, COSMETIC)
        notice = views.event_notice(lang, event, own_key=self._own_key)
        if notice is not None:
            try:
                await bot.send_message(chat_id=chat_id, text=notice, rate_limit_args=NOTICE)
            except RetryAfter:
                raise  # deferred: the redelivery re-renders the order (not modified) and sends it
            except TelegramError as exc:
                log.warning("notice for activation %s failed: %s", a.id, exc)

    async def _after_code(self, a: Activation, lang: str, chat_id: int) -> None:
        try:
            await self._update_order(a, lang, chat_id, AFTER_CODE)
        except TelegramError as exc:
            if not (isinstance(exc, BadRequest) and is_not_modified(exc)):
                log.warning("order message update after code failed for %s: %s", a.id, exc)
        except Exception:  # a background task: say it, never raise into the loop
            log.exception("order message update after code failed for %s", a.id)

    async def _update_order(
        self, snapshot: Activation, lang: str, chat_id: int, how: Outgoing
    ) -> None:
        """Re-render the order message from the activation's *current* state (an
        event may arrive late; the snapshot could be older than the message)."""
        engine = self._data.engine
        try:
            current = await engine.get_activation(snapshot.user_id, snapshot.id)
        except EngineError:
            current = snapshot
        if current.message_id is None and snapshot.message_id is not None:
            current_msg: int | None = snapshot.message_id
        else:
            current_msg = current.message_id
        screen = views.order(lang, current, self._data.clock.now())
        bot = self._app.bot
        if current_msg is not None:
            try:
                await bot.edit_message_text(
                    chat_id=chat_id,
                    message_id=current_msg,
                    text=screen.text,
                    reply_markup=screen.markup,
                    rate_limit_args=how,
                )
                return
            except BadRequest as exc:
                if is_not_modified(exc):
                    return
                # Deleted or too old to edit: post a fresh order message instead.
                log.info("order message %s of activation %s not editable (%s); sending anew",
                         current_msg, current.id, exc)
        message: Message = await bot.send_message(
            chat_id=chat_id, text=screen.text, reply_markup=screen.markup,
            rate_limit_args=how if how is CODE else NOTICE,
        )
        if not current.state.is_final:
            await engine.set_message(current.user_id, current.id, chat_id, message.message_id)
