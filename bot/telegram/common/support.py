"""SUPPORT_CONTACT: where users get help, added to every text that tells them to
ask an admin (an empty wallet, not enough balance, access refused, the service
unavailable, an error on our side). Without it those texts stand on their own.

Set once by the composition root (:func:`use_support_contact`, like the date_time
entities switch); the value is validated by :mod:`bot.config` (``@name`` or
``https://t.me/name``). It is shown as plain text: Telegram links @usernames and
t.me addresses by itself.
"""

from __future__ import annotations

from bot.telegram.texts import Raw, plain, t

__all__ = ["support_contact", "support_plain", "use_support_contact", "with_support"]

_contact: list[str | None] = [None]


def use_support_contact(contact: str | None) -> None:
    _contact[0] = contact or None


def support_contact() -> str | None:
    return _contact[0]


def with_support(lang: str, text: str) -> Raw:
    """``text`` (safe HTML) and, when SUPPORT_CONTACT is set, the support line."""
    contact = _contact[0]
    if contact is None:
        return Raw(text)
    line = t(lang, "support_line", contact=contact)
    return Raw(f"{text}\n{line}")


def support_plain(lang: str, text: str, *, limit: int = 200) -> str:
    """Plain ``text`` (a callback answer) with the support line when it fits ``limit``."""
    contact = _contact[0]
    if contact is None:
        return text
    line = plain(lang, "support_line", contact=contact)
    longer = f"{text}\n{line}"
    return longer if len(longer) <= limit else text
