"""The catalogue check (issue 12): every shipped language is complete and safe.

For every language: every message of en.po is translated (non-empty, not fuzzy),
with exactly the English placeholders; the HTML tags balance (html.parser) in the
template and after rendering with sample values; and the keys the code names
(extracted with Babel's own extractor, the ``pybabel extract`` of the README) are
exactly the catalogue's keys — so no key is built at run time out of sight.
"""

from __future__ import annotations

import os
import shutil
import string
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.telegram.catalogues import EXTRACT_KEYWORDS, LANGUAGES, LOCALE_DIR
from bot.telegram.texts import CATALOGUE, EN, PLURALS, nt, t

ROOT = Path(__file__).resolve().parents[2]
_VOID = {"br"}


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def balanced(html_text: str) -> list[str]:
    parser = _Balance()
    parser.feed(html_text)
    parser.close()
    return parser.errors + [f"<{tag}> never closed" for tag in parser.stack]


def fields(template: str) -> list[tuple[str, str | None, str | None]]:
    return sorted(
        (name, spec, conv)
        for _, name, spec, conv in string.Formatter().parse(template)
        if name is not None
    )


def _catalog(lang: str) -> Any:  # babel.messages.catalog.Catalog (loosely typed)
    with (LOCALE_DIR / f"{lang}.po").open("rb") as f:
        return read_po(f, locale=lang)


SAMPLE = "<b>x & \"y\"</b>"


def test_the_shipped_languages_are_the_catalogue_files() -> None:
    assert set(LANGUAGES) == {p.stem for p in LOCALE_DIR.glob("*.po")}
    assert set(LANGUAGES) == {"en", "ru", "es", "pt_BR", "fa"}
    assert set(CATALOGUE) == set(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated_with_the_english_placeholders(lang: str) -> None:
    english = {m.id: m for m in _catalog("en") if m.id}
    catalog = {m.id: m for m in _catalog(lang) if m.id}
    assert set(catalog) == set(english), set(catalog) ^ set(english)
    for msgid, message in catalog.items():
        assert not message.fuzzy, (lang, msgid)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        en_forms = english[msgid].string
        en_forms = en_forms if isinstance(en_forms, tuple) else (en_forms,)
        assert forms and all(forms), (lang, msgid, "untranslated")
        for form in forms:
            assert fields(form) == fields(en_forms[-1]), (lang, msgid, form)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_html_balances_in_every_template_and_after_rendering(lang: str) -> None:
    for key, template in CATALOGUE[lang].items():
        assert not balanced(template), (lang, key, balanced(template))
        values = {name: SAMPLE for name in {f[0] for f in fields(template)}}
        rendered = t(lang, key, **values)
        assert not balanced(rendered), (lang, key, rendered)
        assert SAMPLE not in rendered, (lang, key)  # values are escaped
    for key in PLURALS[lang]:
        for n in (0, 1, 2, 5, 21, 1000):
            assert not balanced(nt(lang, key, f"{key}_plural", n)), (lang, key, n)


def test_the_balance_check_catches_a_broken_tag() -> None:
    assert balanced("<b>x</i>") and balanced("<b>x") and not balanced("<b>x</b><br>")


def test_every_key_the_code_names_is_extracted_and_in_the_catalogue_both_ways() -> None:
    extracted: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT / "bot" / "telegram"),
        method_map=[("**.py", "python")],
        keywords=EXTRACT_KEYWORDS,
    ):
        extracted.add(message[0] if isinstance(message, tuple) else message)
    keys = set(EN) | set(PLURALS["en"])
    assert extracted - keys == set(), "keys used in the code but missing from en.po"
    assert keys - extracted == set(), "catalogue keys extraction cannot see in the code"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_forms_follow_the_language(lang: str) -> None:
    forms = {
        n: str(nt(lang, "history_count", "history_count_plural", n)).replace(str(n), "#")
        for n in (1, 2, 5)
    }
    assert all(forms.values())
    if lang == "ru":
        assert len(set(forms.values())) == 3  # заказ / заказа / заказов
    elif lang != "fa":  # Persian nouns do not change after a number: one form twice
        assert forms[2] == forms[5] != forms[1]


def test_the_language_picker_offers_exactly_the_shipped_languages() -> None:
    from bot.telegram.menu.callbacks import LANG_CODES
    from bot.telegram.texts import LANGUAGE_NAMES

    assert tuple(LANG_CODES) == LANGUAGES == tuple(LANGUAGE_NAMES)


BUTTON_REFERENCES = [
    ("help", "btn_buy"),
    ("help", "btn_cancel_refund"),
    ("active_empty", "btn_buy"),
    ("buy_list_empty", "btn_all_services"),
    ("buy_pools_title", "btn_cheapest"),
]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_text_that_names_a_button_uses_its_label(lang: str) -> None:
    """"Tap Buy" next to a "🛒 Buy a number" button confuses: the words must match."""
    import html
    import re

    for text_key, button_key in BUTTON_REFERENCES:
        words = CATALOGUE[lang][button_key].split(" · ")[0]
        words = re.sub(r"^[^\w]+", "", words, flags=re.UNICODE).strip()
        assert words in html.unescape(CATALOGUE[lang][text_key]), (lang, text_key, words)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_gnu_msgfmt_check_would_pass(lang: str) -> None:
    """Translators' tools (Poedit, msgfmt -c) refuse an entry whose msgstr begins or
    ends with a newline its msgid lacks. The msgid is a key, so no msgstr may begin
    or end with one: the views put the line breaks between fragments themselves."""
    with open(LOCALE_DIR / f"{lang}.po", "rb") as fh:
        catalog = read_po(fh)
    bad = []
    for message in catalog:
        if not message.id:
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        first = str(ids[0])
        for form in (str(f) for f in forms):
            for edge in (str.startswith, str.endswith):
                if edge(form, "\n") != edge(first, "\n"):
                    bad.append(first)
    assert bad == []
    msgfmt = shutil.which("msgfmt")
    if msgfmt is not None:  # GNU gettext, when installed: the real check too
        done = subprocess.run([msgfmt, "-c", "-o", os.devnull, str(LOCALE_DIR / f"{lang}.po")],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
