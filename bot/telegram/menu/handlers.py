"""/start, the main menu, /help, /cancel outside a flow, and everything unrecognised."""

from __future__ import annotations

from telegram import Update

from bot.telegram.common.handlers import (
    answer,
    is_admin,
    lang_of,
    pressed,
    send,
    show,
    user_id_of,
    users_bring_keys,
)
from bot.telegram.context import BotContext
from bot.telegram.history.handlers import history_command
from bot.telegram.menu import views
from bot.telegram.menu.callbacks import LangCb, MenuCb
from bot.telegram.orders.handlers import active_command
from bot.telegram.texts import plain
from bot.telegram.wallet.handlers import wallet_command

__all__ = [
    "cancel_command",
    "help_command",
    "language_callback",
    "language_command",
    "menu_callback",
    "noop_callback",
    "stale_callback",
    "start_command",
    "unknown_command",
    "unknown_message",
]

_COMMAND_SHOWN_MAX = 40


async def start_command(update: Update, context: BotContext) -> None:
    user_id_of(update)
    lang = lang_of(update, context)
    user = update.effective_user
    screen = views.main_menu(
        lang, own_key=users_bring_keys(context), first_name=user.first_name if user else None
    )
    await send(update, context, screen)


async def help_command(update: Update, context: BotContext) -> None:
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    screen = views.help_screen(
        lang,
        own_key=users_bring_keys(context),
        give_up_minutes=context.settings.give_up_minutes,
        cancel_lock_seconds=context.settings.cancel_lock_seconds,
        is_admin=is_admin(update, context),
    )
    await show(update, context, screen)


async def language_command(update: Update, context: BotContext) -> None:
    """``/language`` and the menu's 🌐 button: the language picker."""
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    await show(update, context, views.language_picker(lang))


async def language_callback(update: Update, context: BotContext) -> None:
    """``lang:<code>``: store the choice (the DB: it outlives a restart and wins over
    later language_codes) and answer in the new language."""
    press = await pressed(update, context, LangCb)
    if press is None:
        return
    query, _, data = press
    user_id = user_id_of(update)
    await context.engine.choose_locale(user_id, data.code)
    context.bot_data.langs[user_id] = data.code
    await answer(query)
    await show(update, context, views.language_set(data.code, own_key=users_bring_keys(context)))


async def menu_callback(update: Update, context: BotContext) -> None:
    """``menu:home|act|wal|hist|help`` (``menu:buy`` and ``menu:key`` start their flows)."""
    press = await pressed(update, context, MenuCb)
    if press is None:
        return
    query, lang, data = press
    if data.name == "act":
        await active_command(update, context)
    elif data.name == "wal":
        await wallet_command(update, context)
    elif data.name == "hist":
        await history_command(update, context)
    elif data.name == "help":
        await help_command(update, context)
    elif data.name == "lang":
        await language_command(update, context)
    else:  # "home" (and "buy"/"key" if their conversation did not take them)
        await answer(query)
        await show(update, context, views.main_menu(lang, own_key=users_bring_keys(context)))


async def noop_callback(update: Update, context: BotContext) -> None:
    if update.callback_query is not None:
        await answer(update.callback_query)


async def stale_callback(update: Update, context: BotContext) -> None:
    """Anything no other handler understood: forged, garbage or outdated data."""
    if update.callback_query is not None:
        await answer(update.callback_query, plain(lang_of(update, context), "cb_stale"))


async def cancel_command(update: Update, context: BotContext) -> None:
    lang = lang_of(update, context)
    await send(update, context, views.nothing_to_cancel(lang))


async def unknown_command(update: Update, context: BotContext) -> None:
    """``/foo``: say which command was not understood and list the real ones."""
    lang = lang_of(update, context)
    text = (update.message.text if update.message else None) or "/"
    command = text.split(maxsplit=1)[0].split("@", 1)[0][:_COMMAND_SHOWN_MAX]
    screen = views.unknown_command(
        lang, command, own_key=users_bring_keys(context), is_admin=is_admin(update, context)
    )
    await send(update, context, screen)


async def unknown_message(update: Update, context: BotContext) -> None:
    lang = lang_of(update, context)
    await send(update, context, views.unknown_text(lang, own_key=users_bring_keys(context)))
