"""Message text and entities: automatic entities, explicit ``entities`` checks, the
final trimming Telegram applies, and rendering entities back to HTML."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from bot.sandbox.fake_telegram.errors import JSON, EntityParseError, bad
from bot.sandbox.fake_telegram.html import (
    make_entity,
    parse_html,
    valid_date_time_format,
    valid_unix_time,
)
from bot.sandbox.fake_telegram.urls import check_url, u16_width, utf16_len

MARKDOWN_REFUSED = (
    'parse_mode "{mode}" is not supported by this fake Bot API: it parses HTML only '
    "(the bot sends parse_mode=HTML; the real Telegram would accept {mode})"
)

# Automatic entities (Telegram detects these in every message).
_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("url", re.compile(r"(?i)(?<![\w@/])(?:https?://|www\.)[^\s<>\"]+")),
    (
        "email",
        re.compile(
            r"(?<![\w.+\-@])[A-Za-z0-9._+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?![\w@])"
        ),
    ),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}(?![\w@])")),
    (
        "bot_command",
        re.compile(r"(?<![\w/\\<>@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z][A-Za-z0-9_]{2,31})?(?![\w/@])"),
    ),
    ("hashtag", re.compile(r"(?<![\w#&])#(?=\w*[^\W\d])\w{1,256}")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{3,8}(?![\w$])")),
]
_NO_AUTO_INSIDE = frozenset(
    {"code", "pre", "text_link", "url", "email", "mention", "bot_command", "date_time"}
)


def find_auto_entities(text: str, existing: Sequence[JSON] = ()) -> list[JSON]:
    """URLs, e-mails, @mentions, /commands, #hashtags and $CASHTAGS found in ``text``."""
    blocked: list[tuple[int, int]] = [
        (e["offset"], e["offset"] + e["length"]) for e in existing if e["type"] in _NO_AUTO_INSIDE
    ]
    found: list[JSON] = []
    if not text:
        return found
    # prefix sums: python index -> utf16 offset
    pref = [0]
    for ch in text:
        pref.append(pref[-1] + u16_width(ch))
    for etype, pattern in _AUTO_PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.start(), m.end()
            if etype == "url":
                while end > start and text[end - 1] in ".,;:!?'\")]}":
                    if text[end - 1] == ")" and text[start:end].count("(") >= text[start:end].count(
                        ")"
                    ):
                        break
                    end -= 1
                try:
                    check_url(text[start:end])
                except ValueError:
                    continue
            o, e = pref[start], pref[end]
            if e <= o or any(o < be and bs < e for bs, be in blocked):
                continue
            found.append(make_entity(etype, o, e - o))
            blocked.append((o, e))
    return found


_ENTITY_ORDER = {
    t: k
    for k, t in enumerate(
        [
            "blockquote",
            "expandable_blockquote",
            "pre",
            "code",
            "text_link",
            "url",
            "email",
            "mention",
            "text_mention",
            "bot_command",
            "hashtag",
            "cashtag",
            "phone_number",
            "date_time",
            "bold",
            "italic",
            "underline",
            "strikethrough",
            "spoiler",
            "custom_emoji",
        ]
    )
}


def sort_entities(entities: list[JSON]) -> list[JSON]:
    return sorted(
        entities, key=lambda e: (e["offset"], -e["length"], _ENTITY_ORDER.get(e["type"], 99))
    )


_TRIM = " \t\n\r\v\f"


def finalize_text(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Trim surrounding whitespace (as Telegram does), clip entities, add automatic ones."""
    stripped_left = text.lstrip(_TRIM)
    lead = utf16_len(text[: len(text) - len(stripped_left)])
    new_text = stripped_left.rstrip(_TRIM)
    new_len = utf16_len(new_text)
    fixed: list[JSON] = []
    for ent in entities:
        start = max(ent["offset"] - lead, 0)
        end = min(ent["offset"] + ent["length"] - lead, new_len)
        if end <= start:
            continue
        copy = dict(ent)
        copy["offset"], copy["length"] = start, end - start
        fixed.append(copy)
    fixed.extend(find_auto_entities(new_text, fixed))
    return new_text, sort_entities(fixed)


_ENTITY_TYPES = frozenset(_ENTITY_ORDER)


def _validate_entities(text: str, raw: Any) -> list[JSON]:
    """Validate an explicit ``entities`` parameter."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise bad("can't parse entities JSON object") from exc
    if not isinstance(raw, list):
        raise bad('field "entities" must be of type Array')
    total = utf16_len(text)
    result: list[JSON] = []
    for ent in raw:
        if not isinstance(ent, dict):
            raise bad("can't parse MessageEntity: Object expected")
        etype = ent.get("type")
        if not isinstance(etype, str):
            raise bad("can't parse MessageEntity: Can't find field \"type\"")
        if etype not in _ENTITY_TYPES:
            raise bad("can't parse MessageEntity: Unsupported type specified")
        offset, length = ent.get("offset"), ent.get("length")
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise bad('can\'t parse MessageEntity: Field "offset" must be a valid Number')
        if not isinstance(length, int) or isinstance(length, bool):
            raise bad('can\'t parse MessageEntity: Field "length" must be a valid Number')
        if offset < 0:
            raise bad(f"receive an entity with incorrect offset {offset}")
        if length < 0:
            raise bad(f"receive an entity with incorrect length {length}")
        if offset > total:
            raise bad(f"entity begins after the end of the text at UTF-16 offset {offset}")
        if offset + length > total:
            raise bad(
                f"entity beginning at UTF-16 offset {offset} ends after the end of the text at "
                f"UTF-16 offset {offset + length}"
            )
        clean = make_entity(etype, offset, length)
        if etype == "text_link":
            url = ent.get("url")
            if url is None:
                raise bad("can't parse MessageEntity: Can't find field \"url\"")
            try:
                clean["url"] = check_url(str(url))
            except ValueError as exc:
                raise bad(f"entity URL '{url}' is invalid: {exc}") from exc
        elif etype == "pre" and ent.get("language"):
            clean["language"] = str(ent["language"])
        elif etype == "custom_emoji":
            ce = ent.get("custom_emoji_id")
            if ce is None:
                raise bad("can't parse MessageEntity: Can't find field \"custom_emoji_id\"")
            clean["custom_emoji_id"] = str(ce)
        elif etype == "date_time":
            unix_time = valid_unix_time(ent.get("unix_time"))
            if unix_time is None:
                raise bad(
                    "can't parse MessageEntity: Field \"unix_time\" must be a valid Unix time"
                )
            clean["unix_time"] = unix_time
            fmt = ent.get("date_time_format")
            if fmt is not None and not valid_date_time_format(fmt):
                raise bad(f"can't parse MessageEntity: invalid date-time format \"{fmt}\"")
            if fmt:
                clean["date_time_format"] = fmt
        elif etype == "text_mention":
            user = ent.get("user")
            if not isinstance(user, dict):
                raise bad("can't parse MessageEntity: Can't find field \"user\"")
            clean["user"] = user
        if length > 0:
            result.append(clean)
    return result


def format_text(text: Any, parse_mode: Any, entities: Any) -> tuple[str, list[JSON]]:
    """Validate and parse the text of a message; returns the final (text, entities).

    parse_mode: HTML, or none (then explicit ``entities`` are validated). The real
    Telegram also accepts "MarkdownV2" and "Markdown"; this stand-in *refuses* them with
    a clear 400 (:data:`MARKDOWN_REFUSED`) rather than pretending to parse them: the bot
    sends HTML only, so a Markdown request is a bug a test should see.
    """
    if text is None or text == "":
        raise bad("message text is empty")
    if not isinstance(text, str):
        text = str(text)
    mode = (parse_mode or "").strip() if isinstance(parse_mode, str) else ""
    if mode and mode.lower() != "none":
        if mode.lower() in ("markdownv2", "markdown"):
            raise bad(MARKDOWN_REFUSED.format(mode=mode))
        if mode.lower() != "html":
            raise bad("unsupported parse_mode")
        try:
            plain, ents = parse_html(text)
        except EntityParseError as exc:
            raise bad(f"can't parse entities: {exc}") from exc
    else:
        plain = text
        ents = _validate_entities(text, entities) if entities not in (None, "") else []
    final_text, final_entities = finalize_text(plain, ents)
    if not final_text:
        raise bad("text must be non-empty")
    if len(final_text) > 4096:
        raise bad("message is too long")
    return final_text, final_entities


# -- rendering back to HTML (tests, transcripts) ----------------------------------


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


_HTML_OPEN: dict[str, tuple[str, str]] = {
    "bold": ("<b>", "</b>"),
    "italic": ("<i>", "</i>"),
    "underline": ("<u>", "</u>"),
    "strikethrough": ("<s>", "</s>"),
    "spoiler": ("<tg-spoiler>", "</tg-spoiler>"),
    "code": ("<code>", "</code>"),
    "blockquote": ("<blockquote>", "</blockquote>"),
    "expandable_blockquote": ("<blockquote expandable>", "</blockquote>"),
}


def render_html(text: str, entities: Sequence[JSON]) -> str:
    """Render (text, entities) back to Telegram HTML (formatting entities only)."""
    units = text.encode("utf-16-le", "surrogatepass")

    def piece(a: int, b: int) -> str:
        return units[2 * a : 2 * b].decode("utf-16-le", "surrogatepass")

    ents = [
        e
        for e in sort_entities(list(entities))
        if e["type"] in _HTML_OPEN or e["type"] in ("pre", "text_link", "date_time")
    ]

    def render(start: int, end: int, items: list[JSON]) -> str:
        parts: list[str] = []
        pos = start
        k = 0
        while k < len(items):
            e = items[k]
            s, t = max(e["offset"], start), min(e["offset"] + e["length"], end)
            if s < pos or t <= s:
                k += 1
                continue
            if s > pos:
                parts.append(_esc(piece(pos, s)))
            inner: list[JSON] = []
            j = k + 1
            while j < len(items) and items[j]["offset"] < t:
                inner.append(items[j])
                j += 1
            body = render(s, t, inner)
            if e["type"] == "pre":
                lang = e.get("language")
                if lang:
                    parts.append(f'<pre><code class="language-{_esc(lang)}">{body}</code></pre>')
                else:
                    parts.append(f"<pre>{body}</pre>")
            elif e["type"] == "text_link":
                parts.append(f'<a href="{_esc(e.get("url", ""))}">{body}</a>')
            elif e["type"] == "date_time":
                fmt = e.get("date_time_format")
                attr = f' format="{_esc(fmt)}"' if fmt else ""
                parts.append(f'<tg-time unix="{e["unix_time"]}"{attr}>{body}</tg-time>')
            else:
                o, c = _HTML_OPEN[e["type"]]
                parts.append(f"{o}{body}{c}")
            pos = t
            k = j
        if pos < end:
            parts.append(_esc(piece(pos, end)))
        return "".join(parts)

    return render(0, len(units) // 2, ents)
