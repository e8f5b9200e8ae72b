"""Telegram-flavoured HTML into (text, entities): a port of the rules of Telegram's parser.

HTML is the one parse mode the bot uses, so it is the one this stand-in parses; it is
strict like Telegram (unknown tags, unclosed tags and bad nesting are rejected with
Telegram's own messages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.fake_telegram.errors import JSON, EntityParseError
from bot.sandbox.fake_telegram.urls import byte_offset, check_url, u16_width

_SPACES = " \t\r\n\0\v\f"


def _is_space(ch: str) -> bool:
    return ch in _SPACES


def make_entity(etype: str, offset: int, length: int, **extra: Any) -> JSON:
    ent: JSON = {"type": etype, "offset": offset, "length": length}
    ent.update({k: v for k, v in extra.items() if v is not None})
    return ent


def link_entity(url: str, offset: int, length: int) -> JSON | None:
    try:
        normalised = check_url(url)
    except ValueError:
        return None  # Telegram silently drops links with invalid URLs
    return make_entity("text_link", offset, length, url=normalised)


_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)


def _decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    n = len(text)

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    end = pos + 1
    code = 0
    if at(pos + 1) == "#":
        end += 1
        if at(pos + 2) == "x":
            end += 1
            while at(end) in "0123456789abcdefABCDEF" and at(end) != "\0":
                code = code * 16 + int(at(end), 16)
                end += 1
        else:
            while at(end).isdigit() and at(end).isascii():
                code = code * 10 + int(at(end))
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return None
        if 0xD800 <= code <= 0xDFFF:
            return None
        decoded = chr(code)
    else:
        while at(end).isascii() and at(end).isalpha():
            end += 1
        name = text[pos + 1 : end]
        table = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
        if name not in table:
            return None
        decoded = table[name]
    if at(end) == ";":
        end += 1
    return decoded, end


@dataclass
class _OpenTag:
    tag: str
    argument: str
    u16: int
    out_index: int  # index into the output list where the entity's text begins
    byte_pos: int = 0
    attrs: dict[str, str] = field(default_factory=dict)  # tg-time: unix, format


# Bot API "date-time entity formatting": "r" (relative) alone, or any of w (day of the
# week), d/D (short/long date), t/T (short/long time) in this order; "" = the text as is.
DATE_TIME_FORMAT_RE = re.compile(r"r|w?[dD]?[tT]?")
_INT32_MAX = 2**31 - 1  # messageEntityFormattedDate.date is a TL int

# Entities that are not formatting: "All other entities can't contain each other" (Bot
# API, Formatting options); bold/italic/underline/strikethrough/spoiler may nest with any
# of them (except inside pre and code), blockquotes may hold anything.
_ATOMIC_TAGS = frozenset({"a", "code", "pre", "tg-emoji", "tg-time"})


def valid_unix_time(raw: Any) -> int | None:
    """The Unix time of a date_time entity, or None if it is not a valid one."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
        value = int(raw)
    else:
        return None
    return value if 0 <= value <= _INT32_MAX else None


def valid_date_time_format(raw: Any) -> bool:
    return isinstance(raw, str) and DATE_TIME_FORMAT_RE.fullmatch(raw) is not None


def _date_time_entity(top: _OpenTag, off: int, length: int) -> JSON:
    fmt = top.attrs.get("format")
    return make_entity(
        "date_time",
        off,
        length,
        unix_time=int(top.attrs["unix"]),
        date_time_format=fmt or None,
    )


def _dropped_by_nesting(tag: str, nested: list[_OpenTag]) -> bool:
    """A date_time inside (or holding) a link, code, pre or custom emoji is dropped, as
    Telegram drops an entity that may not be part of the one around it."""
    if tag not in _ATOMIC_TAGS:
        return False
    outer = [t.tag for t in nested[:-1] if t.tag in _ATOMIC_TAGS]
    if not outer:
        return False
    return tag == "tg-time" or "tg-time" in outer


def parse_html(text: str) -> tuple[str, list[JSON]]:
    """Parse Telegram-flavoured HTML; return (plain text, entities).

    Raises :class:`EntityParseError` with Telegram's message on malformed input.
    """
    n = len(text)

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    def bo(k: int) -> int:
        return byte_offset(text, k)

    out: list[str] = []
    u16 = 0
    entities: list[JSON] = []
    nested: list[_OpenTag] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            dec = _decode_html_entity(text, i)
            if dec is not None:
                out.append(dec[0])
                u16 += u16_width(dec[0])
                i = dec[1]
                continue
        if c != "<":
            out.append(c)
            u16 += u16_width(c)
            i += 1
            continue
        begin = i
        i += 1
        if at(i) != "/":
            while not _is_space(at(i)) and at(i) != ">":
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {bo(begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {bo(begin)}')
            argument = ""
            tag_attrs: dict[str, str] = {}
            while at(i) != ">":
                while i < n and _is_space(at(i)):
                    i += 1
                if at(i) == ">":
                    break
                attr_begin = i
                while not _is_space(at(i)) and at(i) != "=" and at(i) != ">":
                    i += 1
                attr_name = text[attr_begin:i]
                if not attr_name:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {bo(begin)}'
                    )
                while i < n and _is_space(at(i)):
                    i += 1
                if at(i) != "=":
                    if tag == "blockquote" and attr_name == "expandable":
                        argument = "1"
                        continue
                    raise EntityParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {bo(begin)}'
                    )
                i += 1
                while i < n and _is_space(at(i)):
                    i += 1
                if i >= n:
                    raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {bo(begin)}')
                if at(i) not in ("'", '"'):
                    token_begin = i
                    while (at(i).isascii() and at(i).isalnum()) or at(i) in ".-":
                        i += 1
                    value = text[token_begin:i].lower()
                    if not _is_space(at(i)) and at(i) != ">":
                        raise EntityParseError(
                            f"Unexpected end of name token at byte offset {bo(token_begin)}"
                        )
                else:
                    quote = at(i)
                    i += 1
                    chars: list[str] = []
                    while i < n and at(i) != quote:
                        if at(i) == "&":
                            dec = _decode_html_entity(text, i)
                            if dec is not None:
                                chars.append(dec[0])
                                i = dec[1]
                                continue
                        chars.append(at(i))
                        i += 1
                    if at(i) == quote:
                        i += 1
                    value = "".join(chars)
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {bo(begin)}")
                if tag == "a" and attr_name == "href":
                    argument = value
                elif tag == "code" and attr_name == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and attr_name == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and attr_name == "emoji-id":
                    argument = value
                elif tag == "tg-time" and attr_name in ("unix", "format"):
                    tag_attrs[attr_name] = value
                elif tag == "blockquote" and attr_name == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {bo(begin)}'
                )
            if tag == "tg-time":
                if valid_unix_time(tag_attrs.get("unix")) is None:
                    raise EntityParseError(
                        f'Tag "tg-time" must have attribute "unix" with a valid Unix time '
                        f"at byte offset {bo(begin)}"
                    )
                if not valid_date_time_format(tag_attrs.get("format", "")):
                    raise EntityParseError(
                        f'Invalid date-time format "{tag_attrs["format"]}" in the tag '
                        f'"tg-time" at byte offset {bo(begin)}'
                    )
            nested.append(_OpenTag(tag, argument, u16, len(out), bo(begin), tag_attrs))
            i += 1  # skip '>'
            continue
        # end tag
        if not nested:
            raise EntityParseError(f"Unexpected end tag at byte offset {bo(begin)}")
        while not _is_space(at(i)) and at(i) != ">":
            i += 1
        end_name = text[begin + 2 : i]
        while i < n and _is_space(at(i)):
            i += 1
        if at(i) != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {bo(begin)}")
        top = nested[-1]
        if end_name and end_name != top.tag:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {bo(begin)}, expected "</{top.tag}>", '
                f'found "</{end_name}>"'
            )
        if u16 > top.u16 and _dropped_by_nesting(top.tag, nested):
            pass
        elif u16 > top.u16:
            off, length = top.u16, u16 - top.u16
            tag = top.tag
            if tag == "tg-time":
                entities.append(_date_time_entity(top, off, length))
            elif tag in ("i", "em"):
                entities.append(make_entity("italic", off, length))
            elif tag in ("b", "strong"):
                entities.append(make_entity("bold", off, length))
            elif tag in ("s", "strike", "del"):
                entities.append(make_entity("strikethrough", off, length))
            elif tag in ("u", "ins"):
                entities.append(make_entity("underline", off, length))
            elif tag in ("tg-spoiler", "span"):
                entities.append(make_entity("spoiler", off, length))
            elif tag == "tg-emoji":
                if not top.argument.isdigit() or int(top.argument) >= 2**63:
                    raise EntityParseError("Invalid custom emoji identifier specified")
                entities.append(
                    make_entity("custom_emoji", off, length, custom_emoji_id=top.argument)
                )
            elif tag == "a":
                url = top.argument or "".join(out[top.out_index :])
                link = link_entity(url, off, length)
                if link is not None:
                    entities.append(link)
            elif tag == "pre":
                last = entities[-1] if entities else None
                if (
                    last is not None
                    and last["type"] == "code"
                    and last["offset"] == off
                    and last["length"] == length
                    and last.get("language")
                ):
                    last["type"] = "pre"
                else:
                    entities.append(make_entity("pre", off, length))
            elif tag == "code":
                last = entities[-1] if entities else None
                if (
                    last is not None
                    and last["type"] == "pre"
                    and last["offset"] == off
                    and last["length"] == length
                    and top.argument
                ):
                    last["language"] = top.argument
                else:
                    entities.append(make_entity("code", off, length, language=top.argument or None))
            elif tag == "blockquote":
                etype = "expandable_blockquote" if top.argument else "blockquote"
                entities.append(make_entity(etype, off, length))
        nested.pop()
        i += 1
    if nested:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{nested[-1].tag}"')
    for ent in entities:
        if ent["type"] == "code":
            ent.pop("language", None)  # a lone <code class="language-x"> is plain code
    return "".join(out), entities
