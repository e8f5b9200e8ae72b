"""The main menu, /help, and the answers to what the bot did not understand."""

from __future__ import annotations

from telegram import BotCommand

from bot.telegram.common.views import Screen, join
from bot.telegram.menu.keyboards import language_kb, main_menu_kb
from bot.telegram.texts import LANGUAGE_NAMES, N_, Raw, fmt_lock, label, pick_lang, t

__all__ = [
    "bot_commands",
    "commands_text",
    "help_screen",
    "language_picker",
    "language_set",
    "main_menu",
    "nothing_to_cancel",
    "unknown_command",
    "unknown_text",
]


def main_menu(lang: str, *, own_key: bool, first_name: str | None = None) -> Screen:
    name = first_name or label(lang, "welcome_no_name")
    text = (
        join(t(lang, "welcome", name=name), "", t(lang, "menu_title"))
        if first_name is not None
        else t(lang, "menu_title")
    )
    return Screen(text, main_menu_kb(lang, own_key=own_key))


def commands_text(lang: str, *, own_key: bool, is_admin: bool = False) -> Raw:
    """The command list (in /help and after an unknown command)."""
    key_line = Raw(t(lang, "help_key_line") + "\n") if own_key else Raw("")
    admin_lines = Raw("")
    if is_admin:
        admin_lines = Raw("\n\n" + t(lang, "help_admin_lines"))
        if not own_key:
            admin_lines = Raw(admin_lines + "\n" + t(lang, "help_admin_wallet_lines"))
            admin_lines = Raw(admin_lines + "\n" + t(lang, "help_admin_price_lines"))
            admin_lines = Raw(admin_lines + "\n" + t(lang, "help_admin_refund_line"))  # top-ups
    return t(lang, "commands", key_line=key_line, admin_lines=admin_lines)


def help_screen(
    lang: str,
    *,
    own_key: bool,
    give_up_minutes: float,
    cancel_lock_seconds: float,
    is_admin: bool = False,
) -> Screen:
    minutes = f"{give_up_minutes:g}"
    return Screen(
        t(
            lang,
            "help",
            give_up=minutes,
            commands=commands_text(lang, own_key=own_key, is_admin=is_admin),
            lock=fmt_lock(cancel_lock_seconds, lang),
        ),
        main_menu_kb(lang, own_key=own_key),
    )


def unknown_command(lang: str, command: str, *, own_key: bool, is_admin: bool = False) -> Screen:
    return Screen(
        t(
            lang,
            "unknown_command",
            command=command,
            commands=commands_text(lang, own_key=own_key, is_admin=is_admin),
        ),
        main_menu_kb(lang, own_key=own_key),
    )


def unknown_text(lang: str, *, own_key: bool) -> Screen:
    return Screen(t(lang, "unknown_text"), main_menu_kb(lang, own_key=own_key))


def nothing_to_cancel(lang: str) -> Screen:
    return Screen(t(lang, "nothing_to_cancel"))


# The bot's command menu (setMyCommands), in order; /key only when users bring keys.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("cmd_start")),
    ("buy", N_("cmd_buy")),
    ("active", N_("cmd_active")),
    ("wallet", N_("cmd_wallet")),
    ("history", N_("cmd_history")),
    ("key", N_("cmd_key")),
    ("help", N_("cmd_help")),
    ("cancel", N_("cmd_cancel")),
    ("language", N_("cmd_language")),
)


def language_picker(lang: str) -> Screen:
    return Screen(t(lang, "language_title"), language_kb(lang))


def language_set(lang: str, *, own_key: bool) -> Screen:
    """After a choice: said in the new language, with the main menu."""
    text = join(t(lang, "language_set", language=LANGUAGE_NAMES[lang]), "",
                t(lang, "menu_title"))
    return Screen(text, main_menu_kb(lang, own_key=own_key))


def bot_commands(locale: str, *, users_bring_keys: bool) -> list[BotCommand]:
    """The command menu in ``locale`` (setMyCommands, once per language)."""
    lang = pick_lang(locale)
    return [
        BotCommand(name, label(lang, key))
        for name, key in _COMMANDS
        if users_bring_keys or name != "key"
    ]
