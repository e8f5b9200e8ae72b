"""/start, the main menu, /help, /cancel outside a flow, and everything unrecognised."""

from __future__ import annotations

from telegram import Update

from bot.telegram import callbacks as cb
from bot.telegram import keyboards as kb
from bot.telegram import views
from bot.telegram.context import BotContext
from bot.telegram.handlers.common import answer, lang_of, own_key, pressed, send, show, user_id_of
from bot.telegram.handlers.orders import active_command
from bot.telegram.handlers.wallet import history_command, wallet_command
from bot.telegram.texts import plain, t
from bot.telegram.views import Screen

__all__ = [
    "cancel_command",
    "help_command",
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
        lang, own_key=own_key(context), first_name=user.first_name if user else None
    )
    await send(update, context, screen)


async def help_command(update: Update, context: BotContext) -> None:
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    screen = views.help_screen(
        lang,
        own_key=own_key(context),
        give_up_minutes=context.settings.give_up_minutes,
        cancel_lock_seconds=context.settings.cancel_lock_seconds,
        is_admin=_is_admin(update, context),
    )
    await show(update, context, screen)


def _is_admin(update: Update, context: BotContext) -> bool:
    user = update.effective_user
    return user is not None and user.id in context.settings.admin_ids


async def menu_callback(update: Update, context: BotContext) -> None:
    """``menu:home|act|wal|hist|help`` (``menu:buy`` and ``menu:key`` start their flows)."""
    press = await pressed(update, context, cb.MenuCb)
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
    else:  # "home" (and "buy"/"key" if their conversation did not take them)
        await answer(query)
        await show(update, context, views.main_menu(lang, own_key=own_key(context)))


async def noop_callback(update: Update, context: BotContext) -> None:
    if update.callback_query is not None:
        await answer(update.callback_query)


async def stale_callback(update: Update, context: BotContext) -> None:
    """Anything no other handler understood: forged, garbage or outdated data."""
    if update.callback_query is not None:
        await answer(update.callback_query, plain(lang_of(update, context), "cb_stale"))


async def cancel_command(update: Update, context: BotContext) -> None:
    lang = lang_of(update, context)
    await send(update, context, Screen(t(lang, "nothing_to_cancel")))


async def unknown_command(update: Update, context: BotContext) -> None:
    """``/foo``: say which command was not understood and list the real ones."""
    lang = lang_of(update, context)
    text = (update.message.text if update.message else None) or "/"
    command = text.split(maxsplit=1)[0].split("@", 1)[0][:_COMMAND_SHOWN_MAX]
    screen = views.unknown_command(
        lang, command, own_key=own_key(context), is_admin=_is_admin(update, context)
    )
    await send(update, context, screen)


async def unknown_message(update: Update, context: BotContext) -> None:
    lang = lang_of(update, context)
    markup = kb.main_menu_kb(lang, own_key=own_key(context))
    await send(update, context, Screen(t(lang, "unknown_text"), markup))
