"""The bot's own texts, rendered for tests: find buttons and messages by KEY.

Tests must not spell English copy (a copy edit or a translation would break them);
they name the catalogue key instead and let this module render it exactly as the
user sees it in the fake Telegram client:

* :func:`text` — a message text (HTML stripped, entities decoded, surrounding
  whitespace trimmed as Telegram does), e.g. ``alice.wait_for(text("menu_title"))``;
* :func:`button` — a button label, e.g. ``alice.press(button("btn_buy"))``;
* :func:`pattern` — a compiled regex for a text or label whose placeholders are
  only partly known: given values are matched exactly, the others match anything
  (as named groups), e.g. ``alice.press(pattern("btn_confirm"))`` (a label pattern
  matches the whole label; a text pattern is found anywhere in a message);
* :func:`part` — a piece of a text that the bot composes into another one;
* :func:`lead` — the fixed start of a text, for a prefix check;
* :func:`service_button` — a service of the buy list, plain or "recently bought".

Every function takes ``lang=`` (a keyword, default English: the languages issue
adds catalogues, and the same test can then run per language). The catalogue is imported only
through :mod:`bot.telegram.texts`, the bot's public text entry point. An unknown
key raises :class:`KeyError` (a typo must not silently match nothing).
"""

from __future__ import annotations

import re
import string
from decimal import Decimal

from bot.telegram.texts import (
    CATALOGUE,
    DEFAULT_LANG,
    PLURALS,
    Raw,
    Signed,
    isolate,
    label,
    money,
    nt,
    strip_html,
    t,
)

__all__ = [
    "button",
    "button_keys",
    "lead",
    "part",
    "pattern",
    "plural",
    "service_button",
    "service_label",
    "template",
    "text",
]

_TRIM = " \t\n\r\v\f"  # what Telegram trims around a message text


def template(key: str, /, *, lang: str = DEFAULT_LANG) -> str:
    """The raw catalogue template of ``key`` in ``lang`` (English fallback, as the bot)."""
    table = CATALOGUE.get(lang, CATALOGUE[DEFAULT_LANG])
    if key in table:
        return table[key]
    if key in CATALOGUE[DEFAULT_LANG]:
        return CATALOGUE[DEFAULT_LANG][key]
    raise KeyError(f"unknown text key {key!r}")


def text(key: str, /, *, lang: str = DEFAULT_LANG, **values: object) -> str:
    """``key`` rendered with ``values`` as the user reads it: plain text, trimmed."""
    template(key, lang=lang)  # a clear KeyError for an unknown key
    return strip_html(t(lang, key, **values)).strip(_TRIM)


def part(key: str, /, *, lang: str = DEFAULT_LANG, **values: object) -> str:
    """Like :func:`text`, but not trimmed: a piece the bot puts into another text
    (``" [cheapest]"``, ``" · 1 waiting"``), to pass as a value of :func:`text`."""
    template(key, lang=lang)
    return strip_html(t(lang, key, **values))


def button(key: str, /, *, lang: str = DEFAULT_LANG, **values: object) -> str:
    """The exact label of button ``key`` rendered with ``values``."""
    template(key, lang=lang)
    return label(lang, key, **values)


def plural(key: str, n: int, /, *, lang: str = DEFAULT_LANG, **values: object) -> str:
    """Plural text ``key`` for count ``n`` in ``lang`` (``history_count``), as shown."""
    if key not in PLURALS[DEFAULT_LANG]:
        raise KeyError(f"unknown plural text key {key!r}")
    return strip_html(nt(lang, key, f"{key}_plural", n, **values)).strip(_TRIM)


def _plain_value(value: object, *, is_label: bool, lang: str = DEFAULT_LANG) -> str:
    """A value as the bot shows it in ``lang`` (money per locale, isolated if RTL)."""
    if isinstance(value, Raw) and not is_label:
        return strip_html(value)
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Signed):
        return isolate(lang, money(value.amount, lang, signed=True))
    if isinstance(value, Decimal):
        return isolate(lang, money(value, lang))
    return isolate(lang, str(value))


def pattern(
    key: str,
    /,
    *,
    lang: str = DEFAULT_LANG,
    full: bool | None = None,
    named: bool = True,
    **known: object,
) -> re.Pattern[str]:
    """A regex matching ``key`` as rendered (message text or, for ``btn_*`` keys, the
    label), the placeholders in ``known`` exactly (a ``re.Pattern`` value: by that
    regex) and every other one by anything (a named group; a repeated placeholder
    must repeat the same value).

    The literal parts are escaped. ``full`` anchors the pattern to the whole string
    (the default for a ``btn_*`` label, which is always a whole string; pass it for a
    message made of this one text); otherwise it is meant for ``re.search`` (which
    ``FakeUser.wait_for`` / ``press`` use) inside a longer message. ``named=False``
    leaves out the group names (a JavaScript-compatible source, for Playwright)."""
    tpl = template(key, lang=lang)
    is_label = key.startswith("btn_")
    parts: list[str] = []
    seen: set[str] = set()
    pieces = list(string.Formatter().parse(tpl))
    for index, (literal, name, spec, conv) in enumerate(pieces):
        if literal:
            shown = literal if is_label else strip_html(literal)
            if index == 0 and not is_label:
                shown = shown.lstrip(_TRIM)
            if index == len(pieces) - 1 and name is None and not is_label:
                shown = shown.rstrip(_TRIM)
            parts.append(re.escape(shown))
        if name is None:
            continue
        if spec or conv:
            raise ValueError(f"{key!r}: format specs are not supported ({name!r})")
        value = known.get(name)
        if isinstance(value, re.Pattern):
            parts.append(f"(?:{value.pattern})")
        elif name in known:
            parts.append(re.escape(_plain_value(value, is_label=is_label, lang=lang)))
        elif not named:
            parts.append(r"[\s\S]*?")
        elif name in seen:
            parts.append(f"(?P={name})")
        else:
            parts.append(f"(?P<{name}>.*?)")
        seen.add(name)
    unknown = set(known) - seen
    if unknown:
        raise KeyError(f"text {key!r} has no placeholder(s) {sorted(unknown)}")
    body = "".join(parts)
    if full is None:
        full = is_label
    if full:
        body = rf"\A{body}\Z"
    return re.compile(body, re.DOTALL)


def lead(key: str, /, *, lang: str = DEFAULT_LANG) -> str:
    """The fixed start of text ``key`` as shown: its plain text up to the first
    placeholder or line break ("Confirm your purchase", "🔑 Code for")."""
    tpl = template(key, lang=lang)
    first = next(iter(string.Formatter().parse(tpl)), ("", None, None, None))[0] or ""
    shown = first if key.startswith("btn_") else strip_html(first).lstrip(_TRIM)
    return shown.split("\n", 1)[0].rstrip(_TRIM)


def button_keys(*, lang: str = DEFAULT_LANG) -> list[str]:
    """Every button key of the catalogue (``btn_*``)."""
    return sorted(k for k in CATALOGUE.get(lang, CATALOGUE[DEFAULT_LANG]) if k.startswith("btn_"))


def service_label(
    name: str, price: object, *, multi: bool = False, recent: bool = False,
    lang: str = DEFAULT_LANG,
) -> str:
    """The exact label of service ``name`` in the buy list (``recent``: the
    "recently bought" form; ``multi``: a service with pools, "from {price}")."""
    key = "btn_service" + ("_multi" if multi else "") + ("_recent" if recent else "")
    return button(key, lang=lang, name=name, price=price)


def service_button(
    name: str, price: object = None, *, multi: bool = False, lang: str = DEFAULT_LANG
) -> re.Pattern[str]:
    """The whole label of service ``name`` in the buy list, in its plain or its
    "recently bought" form; ``multi`` for a service with pools ("from {price}");
    ``price`` None: at any price."""
    keys = (
        ("btn_service_multi", "btn_service_multi_recent")
        if multi
        else ("btn_service", "btn_service_recent")
    )
    if price is None:
        either = "|".join(pattern(k, lang=lang, named=False, name=name).pattern for k in keys)
        return re.compile(f"(?:{either})", re.DOTALL)
    either = "|".join(re.escape(button(k, lang=lang, name=name, price=price)) for k in keys)
    return re.compile(rf"\A(?:{either})\Z")
