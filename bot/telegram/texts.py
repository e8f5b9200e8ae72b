"""Every user-facing text of the bot, per language: the one public entry point.

The texts live in gettext catalogues, ``bot/telegram/locales/<lang>.po`` (see
:mod:`bot.telegram.catalogues`); message ids are stable KEYS: never rename one.
Code names a text only through :func:`t`, :func:`label`, :func:`plain` or
:func:`nt` with a literal key, so ``pybabel extract`` sees every key::

    pybabel extract --no-default-keywords -k t:2 -k label:2 -k plain:2 -k nt:2,3 \
        -k notice:2 -k with_home:2 -k N_ -o messages.pot bot/telegram

(a key kept in a table is marked with :func:`N_`; see
:data:`bot.telegram.catalogues.EXTRACT_KEYWORDS`).

Texts are HTML (the bot sends with ``parse_mode=HTML``). Placeholders use
``str.format`` syntax; :func:`t` escapes every value with :func:`html.escape`
unless it is wrapped in :class:`Raw` (already-safe HTML built from the
catalogue). A :class:`~decimal.Decimal` value is money, formatted for the
language (:func:`money`). In a right-to-left language every plain value (a
phone number, a code, a price, an id, a name) is wrapped in Unicode bidi
isolates (FSI … PDI) here, the one place that does it.
"""

from __future__ import annotations

import gettext
import html
import re
import string
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from bot.telegram.catalogues import LANGUAGES, RTL_LANGUAGES, load
from bot.telegram.common.format import (
    Raw,
    Signed,
    clock_entity,
    date_time_entities,
    fmt_clock,
    fmt_duration,
    fmt_lock,
    fmt_time,
    fmt_wait,
    money,
    relative_entity,
    seconds_until,
    time_entity,
    use_date_time_entities,
)

__all__ = [
    "CATALOGUE",
    "DEFAULT_LANG",
    "EN",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "N_",
    "PLURALS",
    "Raw",
    "Signed",
    "clock_entity",
    "date_time_entities",
    "fmt_clock",
    "fmt_duration",
    "fmt_lock",
    "fmt_time",
    "fmt_wait",
    "isolate",
    "label",
    "money",
    "nt",
    "pick_lang",
    "placeholders",
    "plain",
    "relative_entity",
    "seconds_until",
    "strip_html",
    "t",
    "time_entity",
    "use_date_time_entities",
]

DEFAULT_LANG: Final = "en"

# Each language's name in itself (the /language picker; not translated).
LANGUAGE_NAMES: Final[Mapping[str, str]] = {
    "en": "English",
    "ru": "Русский",
    "es": "Español",
    "pt_BR": "Português (Brasil)",
    "fa": "فارسی",
}

_TRANSLATIONS: Final[dict[str, gettext.GNUTranslations]] = {
    lang: load(lang) for lang in LANGUAGES
}


def _tables() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, tuple[str, ...]]]]:
    singles: dict[str, dict[str, str]] = {}
    plurals: dict[str, dict[str, tuple[str, ...]]] = {}
    for lang, tr in _TRANSLATIONS.items():
        catalog: dict[object, str] = tr._catalog  # type: ignore[attr-defined]
        singles[lang] = {k: v for k, v in catalog.items() if isinstance(k, str) and k}
        forms: dict[str, dict[int, str]] = {}
        for k, v in catalog.items():
            if isinstance(k, tuple):
                forms.setdefault(k[0], {})[k[1]] = v
        plurals[lang] = {k: tuple(f[i] for i in sorted(f)) for k, f in forms.items()}
    return singles, plurals


# {lang: {key: template}} and {lang: {key: plural forms}}: read-only views of
# the compiled catalogues (for the catalogue check and tests/texts.py).
CATALOGUE, PLURALS = _tables()
EN: Final[dict[str, str]] = CATALOGUE[DEFAULT_LANG]


def N_(key: str, /) -> str:
    """Mark a text key named outside a :func:`t` call (a table of keys) so
    ``pybabel extract -k N_`` sees it; returns the key unchanged."""
    return key


def pick_lang(code: str | None, default: str = DEFAULT_LANG) -> str:
    """The catalogue language for a Telegram ``language_code``: ``"en-US"`` → ``"en"``,
    ``"pt-br"`` → ``"pt_BR"``, ``"pt"`` → ``"pt_BR"``; else ``default``."""
    if code:
        wanted = code.replace("-", "_").lower()
        by_lower = {lang.lower(): lang for lang in LANGUAGES}
        if wanted in by_lower:
            return by_lower[wanted]
        base = wanted.split("_")[0]
        for lang in LANGUAGES:
            if lang.split("_")[0].lower() == base:
                return lang
    return default if default in CATALOGUE else DEFAULT_LANG


_FSI, _PDI = "\u2068", "\u2069"


def isolate(lang: str, text: str) -> str:
    """``text`` wrapped in bidi isolates when ``lang`` is right-to-left."""
    return f"{_FSI}{text}{_PDI}" if lang in RTL_LANGUAGES and text else text


def _plain_value(lang: str, value: object) -> str:
    if isinstance(value, Signed):
        return money(value.amount, lang, signed=True)
    if isinstance(value, Decimal):
        return money(value, lang)
    return str(value)


def _escape(lang: str, value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    return isolate(lang, html.escape(_plain_value(lang, value), quote=False))


def _translations(lang: str) -> gettext.GNUTranslations:
    return _TRANSLATIONS.get(lang) or _TRANSLATIONS[DEFAULT_LANG]


def _template(lang: str, key: str) -> str:
    template = CATALOGUE.get(lang, EN).get(key)
    if template is None:
        template = EN[key]  # KeyError for a missing key: a programming error
    return template


# An isolated value that is a tag's whole content goes outside the tag, so the
# entity's text (a tap-to-copy <code> number or code) holds no invisible marks.
_ISOLATED_TAG = re.compile(f"<(code|b|i)>{_FSI}([^<{_FSI}{_PDI}]*){_PDI}</\\1>")


def _render(lang: str, template: str, values: Mapping[str, object]) -> Raw:
    text = template.format(**{n: _escape(lang, v) for n, v in values.items()})
    if lang in RTL_LANGUAGES:
        text = _ISOLATED_TAG.sub(f"{_FSI}<\\1>\\2</\\1>{_PDI}", text)
    return Raw(text)


def t(lang: str, key: str, /, **values: object) -> Raw:
    """Render text ``key`` in ``lang`` (English fallback), HTML-escaping every value."""
    return _render(lang, _template(lang, key), values)


def nt(lang: str, key: str, plural_key: str, n: int, /, **values: object) -> Raw:
    """Render plural text ``key`` for count ``n`` (the language's plural rule);
    ``n`` is also available to the template as ``{n}``."""
    if key not in PLURALS.get(lang, {}) and key not in PLURALS[DEFAULT_LANG]:
        raise KeyError(key)
    tr = _translations(lang) if key in PLURALS.get(lang, {}) else _TRANSLATIONS[DEFAULT_LANG]
    template = tr.ngettext(key, plural_key, n)
    return _render(lang, template, {"n": n, **values})


def label(lang: str, key: str, /, **values: object) -> str:
    """Render a button label or plain (non-HTML) text: values are not escaped."""
    return _template(lang, key).format(
        **{n: isolate(lang, _plain_value(lang, v)) for n, v in values.items()}
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
