"""The Buy flow: services → pool (``sb_*``) → confirmation → purchase → order message.

A ConversationHandler keeps the state that cannot live in callback data (the
text filter while a list is shown, the timeout); every button is stateless and
also an entry point, so buttons keep working after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import Message, Update
from telegram.error import BadRequest, Forbidden
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.services.api import (
    DuplicateRequest,
    EngineError,
    PurchasePending,
    QuoteExpired,
    QuoteNotFound,
    Service,
)
from bot.telegram.buy import views
from bot.telegram.buy.callbacks import (
    BUY_TYPES,
    BuyAgain,
    BuyConfirm,
    BuyList,
    BuyPool,
    BuyQuote,
    BuyService,
    buy_list,
    buy_pool,
    matches,
)
from bot.telegram.common.callbacks import CallbackError, parse_any, pattern_of
from bot.telegram.common.handlers import (
    answer,
    cancel_flow_command,
    edit,
    flow_conversation,
    forget_quotes,
    lang_of,
    send,
    stop_propagation,
    user_id_of,
    users_bring_keys,
)
from bot.telegram.common.views import Screen, notice
from bot.telegram.context import BotContext
from bot.telegram.menu.callbacks import MenuCb
from bot.telegram.orders.handlers import show_order_in
from bot.telegram.texts import plain, t

__all__ = ["BROWSING", "BUY_PATTERN", "build_buy_conversation"]

log = logging.getLogger(__name__)

BROWSING = 1
_QUERY_MAX = 40


# ------------------------------------------------------------------ helpers


def _remember_message(context: BotContext, message: Message) -> None:
    if context.user_data is not None:
        context.user_data["buy_msg"] = (message.chat_id, message.message_id)


def _forget_message(context: BotContext, message: Message) -> None:
    if context.user_data is not None and context.user_data.get("buy_msg") == (
        message.chat_id,
        message.message_id,
    ):
        del context.user_data["buy_msg"]


def _query_for(context: BotContext, message_id: int) -> str | None:
    if context.user_data is None:
        return None
    queries = context.user_data.get("buy_queries")
    if isinstance(queries, dict):
        value = queries.get(message_id)
        return value if isinstance(value, str) else None
    return None


def _set_query(context: BotContext, message_id: int, query: str | None) -> None:
    if context.user_data is None:
        return
    queries = context.user_data.setdefault("buy_queries", {})
    if query is None:
        queries.pop(message_id, None)
    else:
        queries[message_id] = query
        while len(queries) > 20:
            queries.pop(next(iter(queries)))


def _find_service(services: Sequence[Service], token: str) -> Service | None:
    return next((s for s in services if matches(token, s.code)), None)


async def _list_screen(
    context: BotContext, user_id: int, lang: str, page: int, query: str | None
) -> Screen:
    try:
        services = await context.engine.list_services(user_id)
        recent = await context.engine.recent_services(user_id)
    except EngineError as exc:
        return views.purchase_error(
            lang, exc, own_key=users_bring_keys(context), retry=buy_list(page)
        )
    return views.service_list(lang, services, recent, page, query)


async def _confirm_screen(
    context: BotContext, user_id: int, lang: str, service: Service, provider: str | None,
    *, fresh: bool = False,
) -> Screen:
    """A fresh quote (stored by the engine with an id) as the confirmation screen."""
    try:
        quote = await context.engine.quote(user_id, service.code, provider, fresh=fresh)
    except EngineError as exc:
        return views.purchase_error(
            lang,
            exc,
            own_key=users_bring_keys(context),
            retry=buy_pool(service.code, provider),
            app=service.code,
            pool=provider,
            user_id=user_id,
            service=service,
        )
    return views.confirm(
        lang,
        quote,
        cancel_lock_seconds=context.settings.cancel_lock_seconds,
        own_key=users_bring_keys(context),
        user_id=user_id,
    )


async def _choice_screen(
    context: BotContext,
    user_id: int,
    lang: str,
    app: str,
    pool: str | None,
    *,
    pick_pool: bool = False,
    retry: str | None = None,
    fresh: bool = False,
) -> Screen:
    """The screen for the service (and pool) tokens ``app`` / ``pool`` from callback
    data: the pools (``pick_pool`` on a multi-pool service, or an unknown pool), else
    the confirmation."""
    try:
        services = await context.engine.list_services(user_id)
    except EngineError as exc:
        return views.purchase_error(lang, exc, own_key=users_bring_keys(context), retry=retry)
    service = _find_service(services, app)
    if service is None:
        return views.service_gone(lang)
    provider: str | None = None
    if pick_pool and service.multi_pool:
        return views.pools(lang, service)
    if not pick_pool and pool is not None:
        found = next((p for p in service.pools if matches(pool, p.provider_id)), None)
        if found is None:
            return views.pools(lang, service)
        provider = found.provider_id
    return await _confirm_screen(context, user_id, lang, service, provider, fresh=fresh)


# ----------------------------------------------------------------- handlers


def _search_text(text: str) -> str | None:
    return " ".join(text.split())[:_QUERY_MAX] or None


@stop_propagation
async def buy_command(update: Update, context: BotContext) -> int:
    """``/buy`` lists the services; ``/buy whatsapp`` lists the ones matching, as
    typing "whatsapp" under the list does."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    query = _search_text(" ".join(context.args or []))
    screen = await _list_screen(context, user_id, lang, 1, query)
    message = await send(update, context, screen)
    _set_query(context, message.message_id, query)
    _remember_message(context, message)
    return BROWSING


@stop_propagation
async def buy_text(update: Update, context: BotContext) -> int:
    """Typing while the list is shown filters the services (a new list message)."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    query = _search_text((update.message.text if update.message else None) or "")
    screen = await _list_screen(context, user_id, lang, 1, query)
    message = await send(update, context, screen)
    _set_query(context, message.message_id, query)
    _remember_message(context, message)
    return BROWSING


@stop_propagation
async def buy_callback(update: Update, context: BotContext) -> int | None:
    query = update.callback_query
    if query is None:
        return None
    lang = lang_of(update, context)
    message = query.message
    try:
        data = parse_any(query.data, (MenuCb, *BUY_TYPES))
    except CallbackError:
        await answer(query, plain(lang, "cb_stale"))
        return None
    if not isinstance(message, Message):
        await answer(query, plain(lang, "cb_stale"))
        return None
    user_id = user_id_of(update)
    if isinstance(data, BuyQuote):
        return await _purchase(update, context, data, message, lang)
    if isinstance(data, BuyConfirm):  # an older version's Confirm: never buys
        return await _confirm_again(update, context, data, message, lang)
    await answer(query)

    async def render(screen: Screen) -> Message:
        """Edit the pressed message, except for "Buy again" on an order (or code)
        message: that one stays, the flow continues in a new message."""
        if isinstance(data, BuyAgain):
            target = await send(update, context, screen)
        else:
            await edit(message, context, screen)
            target = message
        _remember_message(context, target)
        return target

    if isinstance(data, MenuCb | BuyList):
        if isinstance(data, MenuCb):  # a fresh list: forget this message's filter
            page, search = 1, None
            _set_query(context, message.message_id, None)
        else:
            page, search = data.page, _query_for(context, message.message_id)
        await render(await _list_screen(context, user_id, lang, page, search))
        return BROWSING

    if not isinstance(data, BuyService | BuyPool | BuyAgain):
        return None
    screen = await _choice_screen(
        context,
        user_id,
        lang,
        data.app,
        None if isinstance(data, BuyService) else data.pool,
        pick_pool=isinstance(data, BuyService),
        retry=query.data if isinstance(query.data, str) else None,
    )
    await render(screen)
    return BROWSING


async def _confirm_again(
    update: Update, context: BotContext, data: BuyConfirm, message: Message, lang: str
) -> int:
    """A Confirm that is not a stored quote (an older version's button, or forged):
    nothing is bought and no "Buying…" is said; the current price (fresh) is shown
    to be confirmed again."""
    query = update.callback_query
    assert query is not None
    await answer(query, plain(lang, "cb_confirm_again"))
    screen = await _choice_screen(
        context, user_id_of(update), lang, data.app, data.pool, retry=buy_list(1), fresh=True
    )
    await edit(message, context, screen)
    _remember_message(context, message)
    return BROWSING


async def _purchase(
    update: Update, context: BotContext, data: BuyQuote, message: Message, lang: str
) -> int | None:
    """Confirm: check the stored quote (a database read), answer, then buy it. The
    engine re-checks the quote and reads the prices fresh; a price is never taken
    from the button, and one quote buys at most once (double taps, restarts)."""
    query = update.callback_query
    assert query is not None
    user_id = user_id_of(update)
    engine = context.engine
    own_key = users_bring_keys(context)
    try:
        quote = await engine.check_quote(user_id, data.quote_id)
    except QuoteNotFound:  # someone else's, or forged: nothing to say about it
        await answer(query, plain(lang, "cb_stale"))
        return None
    except DuplicateRequest as exc:  # bought already (a double tap): show the order
        await answer(query, plain(lang, "cb_already_buying"))
        if exc.activation is not None:
            await show_order_in(context, message, exc.activation, lang)
        return ConversationHandler.END
    except QuoteExpired as exc:  # its time is over (or /cancel, a timeout): ask again
        await answer(query, plain(lang, "cb_confirm_again"))
        if exc.quote is None:
            screen = views.service_gone(lang)
        else:
            screen = views.confirm(
                lang, exc.quote, cancel_lock_seconds=context.settings.cancel_lock_seconds,
                own_key=own_key, user_id=user_id,
            )
        await edit(message, context, screen)
        _remember_message(context, message)
        return BROWSING
    except EngineError as exc:
        await answer(query)
        await edit(message, context, views.purchase_error(lang, exc, own_key=own_key))
        return BROWSING
    await answer(query, plain(lang, "cb_buying"))
    _forget_message(context, message)  # it becomes the order message: never time it out
    service = quote.service
    try:
        await edit(message, context, notice(lang, "buy_buying", name=service.name))
        activation = await engine.buy_quote(
            user_id,
            quote.id,
            chat_id=message.chat_id,
            message_id=message.message_id,  # later events update this screen
        )
    except PurchasePending as exc:
        # Not known whether it went through: the pressed message shows the pending
        # order; the outcome event edits it (and notifies) once it is known.
        await show_order_in(context, message, exc.activation, lang)
        return ConversationHandler.END
    except DuplicateRequest as exc:
        if exc.activation is not None:
            await show_order_in(context, message, exc.activation, lang)
        else:
            await edit(message, context, notice(lang, "cb_already_buying"))
        return ConversationHandler.END
    except EngineError as exc:
        _remember_message(context, message)  # still a buy screen
        screen = views.purchase_error(
            lang,
            exc,
            own_key=own_key,
            retry=buy_pool(service.code, quote.provider_id),
            app=service.code,
            pool=quote.provider_id,
            user_id=user_id,
            service=service,
        )
        await edit(message, context, screen)
        return BROWSING
    await show_order_in(context, message, activation, lang)
    return ConversationHandler.END


async def buy_timeout(update: object, context: BotContext) -> None:
    ref = context.user_data.pop("buy_msg", None) if context.user_data is not None else None
    if not (isinstance(ref, tuple) and len(ref) == 2):
        return
    await forget_quotes(context, ref[0])  # a Confirm on a timed-out screen never buys
    lang = lang_of(update, context)
    try:
        await context.bot.edit_message_text(
            chat_id=ref[0], message_id=ref[1], text=t(lang, "buy_timeout")
        )
    except (BadRequest, Forbidden) as exc:
        log.debug("buy timeout edit failed: %s", exc)


# The flow's buttons: menu:buy and every buy:* type (derived from their grammars).
BUY_PATTERN = pattern_of(MenuCb.pattern(name="buy"), *(kind.pattern() for kind in BUY_TYPES))


def build_buy_conversation(timeout_seconds: float) -> ConversationHandler[BotContext]:
    return flow_conversation(
        "buy",
        entry_points=[
            CommandHandler("buy", buy_command),
            CallbackQueryHandler(buy_callback, pattern=BUY_PATTERN),
        ],
        states={
            BROWSING: [
                CallbackQueryHandler(buy_callback, pattern=BUY_PATTERN),
                MessageHandler(filters.TEXT & ~filters.COMMAND, buy_text),
            ],
        },
        on_cancel=cancel_flow_command,
        on_timeout=buy_timeout,
        timeout_seconds=timeout_seconds,
    )
