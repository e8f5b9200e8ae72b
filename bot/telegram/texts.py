"""Every user-facing text of the bot, per language: the one public entry point.

Each feature package keeps its English texts in its own ``texts.py`` (``TEXTS``);
shared ones are in :mod:`bot.telegram.common.texts`. They are merged here into
:data:`EN` — a key defined twice is an error at import — and :data:`CATALOGUE`
maps a language to its table. Key names are stable message ids: never rename one.

Texts are HTML (the bot sends with ``parse_mode=HTML``). Placeholders use
``str.format`` syntax; :func:`t` escapes every value with :func:`html.escape`
unless it is wrapped in :class:`Raw` (already-safe HTML built from this
catalogue). English is complete; add a language by adding a dict with the same
keys to :data:`CATALOGUE` (``tests/e2e/test_texts.py`` checks keys and
placeholders match English, and that every key is used).
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from bot.telegram.admin.texts import TEXTS as ADMIN
from bot.telegram.buy.texts import TEXTS as BUY
from bot.telegram.common.format import (
    Raw,
    fmt_clock,
    fmt_duration,
    fmt_lock,
    fmt_time,
    fmt_wait,
    money,
    seconds_until,
)
from bot.telegram.common.texts import TEXTS as COMMON
from bot.telegram.history.texts import TEXTS as HISTORY
from bot.telegram.keys.texts import TEXTS as KEYS
from bot.telegram.menu.texts import TEXTS as MENU
from bot.telegram.orders.texts import TEXTS as ORDERS
from bot.telegram.wallet.texts import TEXTS as WALLET

__all__ = [
    "CATALOGUE",
    "DEFAULT_LANG",
    "EN",
    "FEATURE_TEXTS",
    "Raw",
    "fmt_clock",
    "fmt_duration",
    "fmt_lock",
    "fmt_time",
    "fmt_wait",
    "label",
    "merge_catalogues",
    "money",
    "pick_lang",
    "placeholders",
    "plain",
    "seconds_until",
    "strip_html",
    "t",
]

DEFAULT_LANG: Final = "en"

# The English table of each package (bot.telegram.<name>.texts).
FEATURE_TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "common": COMMON,
    "menu": MENU,
    "buy": BUY,
    "orders": ORDERS,
    "wallet": WALLET,
    "history": HISTORY,
    "keys": KEYS,
    "admin": ADMIN,
}


def merge_catalogues(parts: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One table from the per-feature ones; a key in two of them raises ValueError."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name, table in parts.items():
        for key, template in table.items():
            if key in merged:
                raise ValueError(f"text key {key!r} is defined in both {owner[key]} and {name}")
            merged[key] = template
            owner[key] = name
    return merged


EN: Final[dict[str, str]] = merge_catalogues(FEATURE_TEXTS)

CATALOGUE: dict[str, dict[str, str]] = {"en": EN}


def pick_lang(code: str | None, default: str = DEFAULT_LANG) -> str:
    """The catalogue language for a Telegram ``language_code`` (``"en-US"`` → ``"en"``)."""
    if code:
        base = code.split("-")[0].lower()
        if base in CATALOGUE:
            return base
    return default if default in CATALOGUE else DEFAULT_LANG


def _escape(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Decimal):
        return html.escape(money(value))
    return html.escape(str(value), quote=False)


def _template(lang: str, key: str) -> str:
    template = CATALOGUE.get(lang, EN).get(key)
    if template is None:
        template = EN[key]  # KeyError for a missing key: a programming error
    return template


def t(lang: str, key: str, /, **values: object) -> Raw:
    """Render text ``key`` in ``lang`` (English fallback), HTML-escaping every value."""
    return Raw(_template(lang, key).format(**{name: _escape(v) for name, v in values.items()}))


def label(lang: str, key: str, /, **values: object) -> str:
    """Render a button label or plain (non-HTML) text: values are not escaped."""
    return _template(lang, key).format(
        **{n: (money(v) if isinstance(v, Decimal) else str(v)) for n, v in values.items()}
    )


_TAG = re.compile(r"<[^>]+>")


def strip_html(text: str) -> str:
    """HTML text → plain text (for answerCallbackQuery and alerts)."""
    return html.unescape(_TAG.sub("", text))


def plain(lang: str, key: str, /, **values: object) -> str:
    """Render text ``key`` as plain text (tags removed), at most 200 characters."""
    return strip_html(t(lang, key, **values))[:200]


def placeholders(template: str) -> set[str]:
    """Names of the ``{placeholders}`` in a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
