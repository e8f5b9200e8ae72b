"""A strict, in-process fake of the Telegram Bot API (HTTP, aiohttp).

The real bot talks to it exactly as it talks to ``api.telegram.org``::

    fake = FakeTelegram("123456:TEST")
    await fake.start()
    bot = telegram.Bot(fake.token, base_url=fake.api_base)

Requests arrive as ``POST /bot<TOKEN>/<method>`` (form fields, multipart, JSON body, or a
GET query string).  Replies are ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "..."}`` with the same HTTP status.

The server is deliberately *strict*: it rejects what Telegram rejects, with Telegram's own
descriptions where they are known (HTML / MarkdownV2 / Markdown entity parsing is a port of
the rules of Telegram's parser, callback_data is limited to 64 bytes, identical edits are
"not modified", a callback query can be answered once, ...), so that a bot that passes its
tests here does not fail in production on a formatting or keyboard mistake.

Tests drive users through :class:`FakeUser`::

    alice = fake.user(1001, "Alice")
    await alice.send("/start")
    menu = await alice.wait_for("Welcome")          # a bot message sent/edited after /start
    answer = await alice.press("🇺🇸 Buy")            # waits for answerCallbackQuery
    assert answer.text is None or "…" in answer.text
    edited = await alice.wait_for(lambda m: m.edited and m.message_id == menu.message_id)
    assert fake.calls_to("deleteMessage") == []

Everything the bot did is in :attr:`FakeTelegram.requests` (``(method, params)``) and
:attr:`FakeTelegram.calls` (with status and reply); every change of
a chat is in a per-chat event log with a global, monotonically increasing sequence number
(:meth:`FakeTelegram.events_since`), which the browser chat page streams over a websocket.
Waiting is event-driven (an :class:`asyncio.Event` is fired on every request and every
change); timeouts are safety nets only.

Webhooks: ``setWebhook`` stores the URL and ``secret_token`` (``getUpdates`` then answers
409, as Telegram does). When the webhook's host is this machine (127.0.0.1, localhost,
::1) the fake *delivers* updates to it like Telegram: one at a time, in order, as a JSON
POST with the ``X-Telegram-Bot-Api-Secret-Token`` header; an update stays pending until
the webhook answers 2xx and failures are retried (``getWebhookInfo`` shows the last
error; :attr:`FakeTelegram.webhook_deliveries` lists every attempt). So the same
:class:`FakeUser` API drives a bot in webhook mode. Other hosts are never contacted:
their updates just stay pending. The one deviation from Telegram: plain ``http://``
is accepted for those loopback hosts (tests have no TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.clock import Clock, SystemClock

JSON = dict[str, Any]
T = TypeVar("T")

__all__ = [
    "Button",
    "CallbackAnswer",
    "ChatEvent",
    "ChatMessage",
    "EntityParseError",
    "FakeTelegram",
    "FakeUser",
    "InjectedError",
    "RecordedCall",
    "RecordedRequest",
    "TelegramApiError",
    "WebhookDelivery",
    "check_url",
    "find_auto_entities",
    "format_transcript",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "render_html",
    "utf16_len",
]

# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)
WEBHOOK_HTTPS_REQUIRED = "bad webhook: An HTTPS URL must be provided for webhook"
WEBHOOK_BAD_PORT = "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
SECRET_TOKEN_TOO_LONG = "secret token is too long"
SECRET_TOKEN_BAD_CHARS = "secret token contains unallowed characters"


class TelegramApiError(Exception):
    """An error reply of the Bot API (``ok: false``)."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: {description}")


class EntityParseError(ValueError):
    """Text could not be parsed with the given parse_mode (message without the prefix)."""


# --------------------------------------------------------------------------------------
# UTF-16 helpers
# --------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (Telegram's unit for entity offsets)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _u16(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _u16_to_index_map(text: str) -> list[int]:
    """``m[u]`` = Python index of the character starting at UTF-16 offset ``u``."""
    mapping: list[int] = []
    for i, ch in enumerate(text):
        mapping.append(i)
        if _u16(ch) == 2:
            mapping.append(i)
    mapping.append(len(text))
    return mapping


def _slice_u16(text: str, offset: int, length: int) -> str:
    m = _u16_to_index_map(text)
    start = m[min(max(offset, 0), len(m) - 1)]
    end = m[min(max(offset + length, 0), len(m) - 1)]
    return text[start:end]


# --------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_HOST_LABEL_RE = re.compile(
    r"^[A-Za-z0-9\u00a1-\uffff]([A-Za-z0-9\-\u00a1-\uffff]*[A-Za-z0-9\u00a1-\uffff])?$"
)
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def check_url(url: str) -> str:
    """Validate a URL the way Telegram does (roughly); return it normalised.

    Raises :class:`ValueError` with Telegram's reason ("Wrong HTTP URL",
    "Unsupported URL protocol", "URL host is empty").
    """
    url = url.strip()
    if not url:
        raise ValueError("URL host is empty")
    m = _SCHEME_RE.match(url)
    if m:
        scheme = m.group(1).lower()
        rest = url[m.end() :]
        if scheme in ("tg", "ton"):
            if not rest:
                raise ValueError("Wrong URL")
            return url
        if scheme not in ("http", "https"):
            raise ValueError("Unsupported URL protocol")
        normalised = url
    else:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", url) and not re.match(r"^[^:]+:\d", url):
            raise ValueError("Unsupported URL protocol")
        rest = url
        normalised = "http://" + url
    hostport = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in hostport:
        hostport = hostport.rsplit("@", 1)[1]
    host = hostport
    if hostport.startswith("["):
        return normalised  # IPv6 literal
    if ":" in hostport:
        host, port = hostport.rsplit(":", 1)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("Wrong port number specified in the URL")
    if not host:
        raise ValueError("URL host is empty")
    if _IPV4_RE.match(host):
        return normalised
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 or not all(_HOST_LABEL_RE.match(lb) for lb in labels):
        raise ValueError("Wrong HTTP URL")
    if labels[-1].isdigit():
        raise ValueError("Wrong HTTP URL")
    return normalised


# --------------------------------------------------------------------------------------
# Entity parsing (ports of the rules of Telegram's parsers)
# --------------------------------------------------------------------------------------

_SPACES = " \t\r\n\0\v\f"


def _is_space(ch: str) -> bool:
    return ch in _SPACES


def _entity(etype: str, offset: int, length: int, **extra: Any) -> JSON:
    ent: JSON = {"type": etype, "offset": offset, "length": length}
    ent.update({k: v for k, v in extra.items() if v is not None})
    return ent


def _link_entity(url: str, offset: int, length: int) -> JSON | None:
    try:
        normalised = check_url(url)
    except ValueError:
        return None  # Telegram silently drops links with invalid URLs
    return _entity("text_link", offset, length, url=normalised)


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


def parse_html(text: str) -> tuple[str, list[JSON]]:
    """Parse Telegram-flavoured HTML; return (plain text, entities).

    Raises :class:`EntityParseError` with Telegram's message on malformed input.
    """
    n = len(text)

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    def bo(k: int) -> int:
        return _byte_offset(text, k)

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
                u16 += _u16(dec[0])
                i = dec[1]
                continue
        if c != "<":
            out.append(c)
            u16 += _u16(c)
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
                elif tag == "blockquote" and attr_name == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {bo(begin)}'
                )
            nested.append(_OpenTag(tag, argument, u16, len(out), bo(begin)))
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
        if u16 > top.u16:
            off, length = top.u16, u16 - top.u16
            tag = top.tag
            if tag in ("i", "em"):
                entities.append(_entity("italic", off, length))
            elif tag in ("b", "strong"):
                entities.append(_entity("bold", off, length))
            elif tag in ("s", "strike", "del"):
                entities.append(_entity("strikethrough", off, length))
            elif tag in ("u", "ins"):
                entities.append(_entity("underline", off, length))
            elif tag in ("tg-spoiler", "span"):
                entities.append(_entity("spoiler", off, length))
            elif tag == "tg-emoji":
                if not top.argument.isdigit() or int(top.argument) >= 2**63:
                    raise EntityParseError("Invalid custom emoji identifier specified")
                entities.append(_entity("custom_emoji", off, length, custom_emoji_id=top.argument))
            elif tag == "a":
                url = top.argument or "".join(out[top.out_index :])
                link = _link_entity(url, off, length)
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
                    entities.append(_entity("pre", off, length))
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
                    entities.append(_entity("code", off, length, language=top.argument or None))
            elif tag == "blockquote":
                etype = "expandable_blockquote" if top.argument else "blockquote"
                entities.append(_entity(etype, off, length))
        nested.pop()
        i += 1
    if nested:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{nested[-1].tag}"')
    for ent in entities:
        if ent["type"] == "code":
            ent.pop("language", None)  # a lone <code class="language-x"> is plain code
    return "".join(out), entities


_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_TYPE = {
    "Bold": "bold",
    "Italic": "italic",
    "Underline": "underline",
    "Strikethrough": "strikethrough",
    "Spoiler": "spoiler",
    "Code": "code",
    "Pre": "pre",
    "PreCode": "pre",
}


def _read_md_url(text: str, i: int) -> tuple[str, int]:
    """Read ``(url)`` starting at the '(' at ``i``; return (url, index of ')')."""
    n = len(text)
    i += 1
    begin = i
    chars: list[str] = []
    while i < n and text[i] != ")":
        if text[i] == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            chars.append(text[i + 1])
            i += 2
            continue
        chars.append(text[i])
        i += 1
    if i >= n:
        raise EntityParseError(
            f"Can't find end of a URL at byte offset {_byte_offset(text, begin)}"
        )
    return "".join(chars), i


def parse_markdown_v2(text: str) -> tuple[str, list[JSON]]:
    """Parse MarkdownV2; strict about unescaped reserved characters (like Telegram)."""
    n = len(text)

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    def reserved_error(ch: str) -> EntityParseError:
        return EntityParseError(
            f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
        )

    out: list[str] = []
    u16 = 0
    entities: list[JSON] = []
    nested: list[_OpenTag] = []  # tag = tdlib type name
    quote_start: int | None = None
    quote_expandable = False

    def close_quote(end: int) -> None:
        nonlocal quote_start
        if quote_start is not None and end > quote_start:
            etype = "expandable_blockquote" if quote_expandable else "blockquote"
            entities.append(_entity(etype, quote_start, end - quote_start))
        quote_start = None

    i = 0
    while i < n:
        c = text[i]
        in_code = bool(nested) and nested[-1].tag in ("Code", "Pre", "PreCode")
        if not in_code and (i == 0 or text[i - 1] == "\n"):
            if c == ">":
                if quote_start is None:
                    quote_start, quote_expandable = u16, False
                i += 1
                continue
            if text.startswith("**>", i):
                if quote_start is None:
                    quote_start, quote_expandable = u16, True
                i += 3
                continue
            if quote_start is not None:
                close_quote(u16 - 1 if out and out[-1] == "\n" else u16)
        if (
            quote_start is not None
            and quote_expandable
            and not in_code
            and text.startswith("||", i)
            and at(i + 2) in ("\n", "\0")
            and not (nested and nested[-1].tag == "Spoiler")
        ):
            close_quote(u16)
            i += 2
            continue
        if c == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        reserved = "`" if in_code else _MDV2_RESERVED
        if c not in reserved:
            out.append(c)
            u16 += _u16(c)
            i += 1
            continue
        top = nested[-1].tag if nested else None
        is_end = False
        if top == "Bold":
            is_end = c == "*"
        elif top == "Italic":
            is_end = c == "_" and at(i + 1) != "_"
        elif top == "Code":
            is_end = c == "`"
        elif top in ("Pre", "PreCode"):
            is_end = c == "`" and at(i + 1) == "`" and at(i + 2) == "`"
        elif top in ("TextUrl", "CustomEmoji"):
            is_end = c == "]"
        elif top == "Underline":
            is_end = c == "_" and at(i + 1) == "_"
        elif top == "Strikethrough":
            is_end = c == "~"
        elif top == "Spoiler":
            is_end = c == "|" and at(i + 1) == "|"
        if not is_end:
            begin = i
            argument = ""
            if c == "_":
                if at(i + 1) == "_":
                    etype = "Underline"
                    i += 1
                else:
                    etype = "Italic"
            elif c == "*":
                etype = "Bold"
            elif c == "~":
                etype = "Strikethrough"
            elif c == "|":
                if at(i + 1) != "|":
                    raise reserved_error(c)
                i += 1
                etype = "Spoiler"
            elif c == "[":
                etype = "TextUrl"
            elif c == "`":
                if at(i + 1) == "`" and at(i + 2) == "`":
                    i += 3
                    etype = "Pre"
                    lang_end = i
                    while not _is_space(at(lang_end)) and at(lang_end) != "`":
                        lang_end += 1
                    if i != lang_end and lang_end < n and at(lang_end) != "`":
                        etype = "PreCode"
                        argument = text[i:lang_end]
                        i = lang_end
                    if at(i) in ("\n", "\r"):
                        if at(i + 1) in ("\n", "\r") and at(i) != at(i + 1):
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    etype = "Code"
            elif c == "!" and at(i + 1) == "[":
                i += 1
                etype = "CustomEmoji"
            else:
                raise reserved_error(c)
            nested.append(_OpenTag(etype, argument, u16, len(out), _byte_offset(text, begin)))
            i += 1
            continue
        # end of an entity
        top_open = nested[-1]
        etype = top_open.tag
        skip = u16 == top_open.u16
        extra: JSON = {}
        if etype in ("Underline", "Spoiler"):
            i += 1
        elif etype in ("Pre", "PreCode"):
            i += 2
            if etype == "PreCode":
                extra["language"] = top_open.argument
        elif etype == "TextUrl":
            if at(i + 1) != "(":
                url = "".join(out[top_open.out_index :])
            else:
                url, i = _read_md_url(text, i + 1)
            if not skip:
                link = _link_entity(url, top_open.u16, u16 - top_open.u16)
                if link is not None:
                    entities.append(link)
            skip = True
        elif etype == "CustomEmoji":
            if at(i + 1) != "(":
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            url, i = _read_md_url(text, i + 1)
            m = re.fullmatch(r"tg://emoji\?id=(\d{1,19})", url)
            if not m:
                raise EntityParseError("Custom emoji URL must have an emoji identifier")
            extra["custom_emoji_id"] = m.group(1)
        if not skip:
            api_type = _MDV2_TYPE.get(etype, "custom_emoji")
            entities.append(_entity(api_type, top_open.u16, u16 - top_open.u16, **extra))
        nested.pop()
        i += 1
    if nested:
        top_open = nested[-1]
        raise EntityParseError(
            f"Can't find end of {top_open.tag} entity at byte offset {top_open.byte_pos}"
        )
    if quote_start is not None:
        close_quote(u16)
    return "".join(out), entities


def parse_markdown(text: str) -> tuple[str, list[JSON]]:
    """Parse legacy Markdown (parse_mode="Markdown")."""
    n = len(text)

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    out: list[str] = []
    u16 = 0
    entities: list[JSON] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and at(i + 1) in ("_", "*", "`", "["):
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if c not in ("_", "*", "`", "["):
            out.append(c)
            u16 += _u16(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        i += 1
        language = ""
        if c == "`" and at(i) == "`" and at(i + 1) == "`":
            i += 2
            is_pre = True
            lang_end = i
            while not _is_space(at(lang_end)) and at(lang_end) != "`":
                lang_end += 1
            if i != lang_end and lang_end < n and at(lang_end) != "`":
                language = text[i:lang_end]
                i = lang_end
            if at(i) in ("\n", "\r"):
                if at(i + 1) in ("\n", "\r") and at(i) != at(i + 1):
                    i += 2
                else:
                    i += 1
        start_u16 = u16
        start_out = len(out)
        while i < n and (
            text[i] != end_char or (is_pre and not (at(i + 1) == "`" and at(i + 2) == "`"))
        ):
            out.append(text[i])
            u16 += _u16(text[i])
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        if start_u16 != u16:
            length = u16 - start_u16
            if c == "_":
                entities.append(_entity("italic", start_u16, length))
            elif c == "*":
                entities.append(_entity("bold", start_u16, length))
            elif c == "[":
                if at(i + 1) != "(":
                    url = "".join(out[start_out:])
                else:
                    i += 2
                    chars: list[str] = []
                    while i < n and text[i] != ")":
                        chars.append(text[i])
                        i += 1
                    url = "".join(chars)
                link = _link_entity(url, start_u16, length)
                if link is not None:
                    entities.append(link)
            elif is_pre:
                entities.append(_entity("pre", start_u16, length, language=language or None))
            else:
                entities.append(_entity("code", start_u16, length))
        if is_pre:
            i += 2
        i += 1
    return "".join(out), entities


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
_NO_AUTO_INSIDE = frozenset({"code", "pre", "text_link", "url", "email", "mention", "bot_command"})


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
        pref.append(pref[-1] + _u16(ch))
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
            found.append(_entity(etype, o, e - o))
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
            "bold",
            "italic",
            "underline",
            "strikethrough",
            "spoiler",
            "custom_emoji",
        ]
    )
}


def _sort_entities(entities: list[JSON]) -> list[JSON]:
    return sorted(
        entities, key=lambda e: (e["offset"], -e["length"], _ENTITY_ORDER.get(e["type"], 99))
    )


_TRIM = " \t\n\r\v\f"


def _finalize_text(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
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
    return new_text, _sort_entities(fixed)


_ENTITY_TYPES = frozenset(_ENTITY_ORDER)


def _validate_entities(text: str, raw: Any) -> list[JSON]:
    """Validate an explicit ``entities`` parameter."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise _bad("can't parse entities JSON object") from exc
    if not isinstance(raw, list):
        raise _bad('field "entities" must be of type Array')
    total = utf16_len(text)
    result: list[JSON] = []
    for ent in raw:
        if not isinstance(ent, dict):
            raise _bad("can't parse MessageEntity: Object expected")
        etype = ent.get("type")
        if not isinstance(etype, str):
            raise _bad("can't parse MessageEntity: Can't find field \"type\"")
        if etype not in _ENTITY_TYPES:
            raise _bad("can't parse MessageEntity: Unsupported type specified")
        offset, length = ent.get("offset"), ent.get("length")
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise _bad('can\'t parse MessageEntity: Field "offset" must be a valid Number')
        if not isinstance(length, int) or isinstance(length, bool):
            raise _bad('can\'t parse MessageEntity: Field "length" must be a valid Number')
        if offset < 0:
            raise _bad(f"receive an entity with incorrect offset {offset}")
        if length < 0:
            raise _bad(f"receive an entity with incorrect length {length}")
        if offset > total:
            raise _bad(f"entity begins after the end of the text at UTF-16 offset {offset}")
        if offset + length > total:
            raise _bad(
                f"entity beginning at UTF-16 offset {offset} ends after the end of the text at "
                f"UTF-16 offset {offset + length}"
            )
        clean = _entity(etype, offset, length)
        if etype == "text_link":
            url = ent.get("url")
            if url is None:
                raise _bad("can't parse MessageEntity: Can't find field \"url\"")
            try:
                clean["url"] = check_url(str(url))
            except ValueError as exc:
                raise _bad(f"entity URL '{url}' is invalid: {exc}") from exc
        elif etype == "pre" and ent.get("language"):
            clean["language"] = str(ent["language"])
        elif etype == "custom_emoji":
            ce = ent.get("custom_emoji_id")
            if ce is None:
                raise _bad("can't parse MessageEntity: Can't find field \"custom_emoji_id\"")
            clean["custom_emoji_id"] = str(ce)
        elif etype == "text_mention":
            user = ent.get("user")
            if not isinstance(user, dict):
                raise _bad("can't parse MessageEntity: Can't find field \"user\"")
            clean["user"] = user
        if length > 0:
            result.append(clean)
    return result


def _format_text(text: Any, parse_mode: Any, entities: Any) -> tuple[str, list[JSON]]:
    """Validate and parse the text of a message; returns the final (text, entities)."""
    if text is None or text == "":
        raise _bad("message text is empty")
    if not isinstance(text, str):
        text = str(text)
    mode = (parse_mode or "").strip() if isinstance(parse_mode, str) else ""
    if mode and mode.lower() != "none":
        parser = {
            "html": parse_html,
            "markdownv2": parse_markdown_v2,
            "markdown": parse_markdown,
        }.get(mode.lower())
        if parser is None:
            raise _bad("unsupported parse_mode")
        try:
            plain, ents = parser(text)
        except EntityParseError as exc:
            raise _bad(f"can't parse entities: {exc}") from exc
    else:
        plain = text
        ents = _validate_entities(text, entities) if entities not in (None, "") else []
    final_text, final_entities = _finalize_text(plain, ents)
    if not final_text:
        raise _bad("text must be non-empty")
    if len(final_text) > 4096:
        raise _bad("message is too long")
    return final_text, final_entities


# --------------------------------------------------------------------------------------
# Keyboards
# --------------------------------------------------------------------------------------

_INLINE_ACTIONS = (
    "callback_data",
    "url",
    "copy_text",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
    "pay",
)


def _require_bool(obj: JSON, name: str, prefix: str = "") -> None:
    if name in obj and not isinstance(obj[name], bool):
        raise _bad(f'{prefix}field "{name}" must be of type Boolean')


def _validate_inline_button(button: Any) -> JSON:
    prefix = "can't parse inline keyboard button: "
    if not isinstance(button, dict):
        raise _bad(prefix + "InlineKeyboardButton must be an Object")
    if "text" not in button:
        raise _bad(prefix + 'Can\'t find field "text"')
    text = button["text"]
    if not isinstance(text, str):
        raise _bad(prefix + 'Field "text" must be of type String')
    present = [
        k
        for k in _INLINE_ACTIONS
        if k in button and button[k] is not None and not (k == "callback_data" and button[k] == "")
    ]
    if not present:
        raise _bad(prefix + "Text buttons are unallowed in the inline keyboard")
    if len(present) > 1:
        raise _bad(
            prefix
            + "exactly one of the optional fields must be used (got "
            + ", ".join(present)
            + ")"
        )
    action = present[0]
    value = button[action]
    clean: JSON = {"text": text}
    if action == "callback_data":
        if not isinstance(value, str):
            raise _bad(prefix + 'Field "callback_data" must be of type String')
        if len(value.encode("utf-8")) > 64:
            raise _bad("BUTTON_DATA_INVALID")
    elif action == "url":
        if not isinstance(value, str):
            raise _bad(prefix + 'Field "url" must be of type String')
        try:
            value = check_url(value)
        except ValueError as exc:
            raise _bad(f"inline keyboard button URL '{button[action]}' is invalid: {exc}") from exc
    elif action == "copy_text":
        if not isinstance(value, dict):
            raise _bad(prefix + 'Field "copy_text" must be of type Object')
        ct = value.get("text")
        if not isinstance(ct, str) or not 1 <= len(ct) <= 256:
            raise _bad("BUTTON_COPY_TEXT_INVALID")
        value = {"text": ct}
    elif action == "web_app":
        url = value.get("url") if isinstance(value, dict) else None
        if not isinstance(url, str) or not url.lower().startswith("https://"):
            raise _bad(
                f"inline keyboard button Web App URL '{url}' is invalid: "
                "Only HTTPS links are allowed"
            )
    elif action in ("callback_game", "pay"):
        raise _bad("BUTTON_TYPE_INVALID")
    elif action == "login_url":
        if not isinstance(value, dict) or not isinstance(value.get("url"), str):
            raise _bad(prefix + 'Field "login_url" must be of type Object')
        _require_bool(value, "request_write_access", prefix)
    elif action == "switch_inline_query_chosen_chat":
        if not isinstance(value, dict):
            raise _bad(prefix + 'Field "switch_inline_query_chosen_chat" must be of type Object')
        for flag in (
            "allow_user_chats",
            "allow_bot_chats",
            "allow_group_chats",
            "allow_channel_chats",
        ):
            _require_bool(value, flag, prefix)
    elif not isinstance(value, str):
        raise _bad(prefix + f'Field "{action}" must be of type String')
    clean[action] = value
    return clean


def _validate_keyboard_button(button: Any) -> JSON:
    prefix = "can't parse keyboard button: "
    if isinstance(button, str):
        return {"text": button}
    if not isinstance(button, dict):
        raise _bad(prefix + "KeyboardButton must be a String or an Object")
    if not isinstance(button.get("text"), str):
        raise _bad(prefix + 'Can\'t find field "text"')
    for flag in ("request_contact", "request_location"):
        _require_bool(button, flag, prefix)
    for req in ("request_chat", "request_users"):
        if req in button:
            sub = button[req]
            if not isinstance(sub, dict) or "request_id" not in sub:
                raise _bad(prefix + 'Can\'t find field "request_id"')
            for k, v in sub.items():
                if (
                    k.startswith(("chat_is_", "user_is_", "bot_is_", "request_"))
                    and k != "request_id"
                ):
                    if not isinstance(v, bool):
                        raise _bad(prefix + f'Field "{k}" must be of type Boolean')
    if "web_app" in button:
        url = button["web_app"].get("url") if isinstance(button["web_app"], dict) else None
        if not isinstance(url, str) or not url.lower().startswith("https://"):
            raise _bad(
                f"keyboard button Web App URL '{url}' is invalid: Only HTTPS links are allowed"
            )
    return dict(button)


def _validate_reply_markup(raw: Any, *, inline_only: bool = False) -> tuple[str, JSON] | None:
    """Validate ``reply_markup``; returns (kind, normalised markup) or None if absent.

    kind is one of "inline", "keyboard", "remove", "force_reply".
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise _bad("can't parse reply keyboard markup JSON object") from exc
    if not isinstance(raw, dict):
        raise _bad("Object expected as reply markup")
    if "inline_keyboard" in raw:
        rows = raw["inline_keyboard"]
        if not isinstance(rows, list):
            raise _bad('field "inline_keyboard" must be of type Array')
        clean_rows: list[list[JSON]] = []
        total = 0
        for row in rows:
            if not isinstance(row, list):
                raise _bad('field "inline_keyboard" must be an Array of Arrays')
            clean_rows.append([_validate_inline_button(b) for b in row])
            total += len(row)
        if total > 100:
            raise _bad("REPLY_MARKUP_TOO_LONG")
        return "inline", {"inline_keyboard": [r for r in clean_rows if r]}
    if inline_only:
        raise _bad("inline keyboard expected")
    if "keyboard" in raw:
        rows = raw["keyboard"]
        if not isinstance(rows, list):
            raise _bad('field "keyboard" must be of type Array')
        for flag in ("resize_keyboard", "one_time_keyboard", "selective", "is_persistent"):
            _require_bool(raw, flag)
        clean: JSON = {k: v for k, v in raw.items() if k != "keyboard"}
        kb_rows: list[list[JSON]] = []
        for row in rows:
            if not isinstance(row, list):
                raise _bad('field "keyboard" must be an Array of Arrays')
            kb_rows.append([_validate_keyboard_button(b) for b in row])
        clean["keyboard"] = kb_rows
        return "keyboard", clean
    if "remove_keyboard" in raw:
        _require_bool(raw, "remove_keyboard")
        _require_bool(raw, "selective")
        return "remove", dict(raw)
    if "force_reply" in raw:
        _require_bool(raw, "force_reply")
        _require_bool(raw, "selective")
        return "force_reply", dict(raw)
    raise _bad("can't parse reply keyboard markup JSON object")


# --------------------------------------------------------------------------------------
# Rendering helpers (tests, transcripts)
# --------------------------------------------------------------------------------------


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
        for e in _sort_entities(list(entities))
        if e["type"] in _HTML_OPEN or e["type"] in ("pre", "text_link")
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
            else:
                o, c = _HTML_OPEN[e["type"]]
                parts.append(f"{o}{body}{c}")
            pos = t
            k = j
        if pos < end:
            parts.append(_esc(piece(pos, end)))
        return "".join(parts)

    return render(0, len(units) // 2, ents)


# --------------------------------------------------------------------------------------
# Public snapshot types
# --------------------------------------------------------------------------------------


@dataclass
class Button:
    """One button of an inline keyboard (a snapshot)."""

    text: str
    callback_data: str | None = None
    url: str | None = None
    copy_text: str | None = None
    kind: str = "callback"  # callback | url | copy_text | web_app | other
    raw: JSON = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, b: JSON) -> Button:
        if "callback_data" in b:
            kind = "callback"
        elif "url" in b:
            kind = "url"
        elif "copy_text" in b:
            kind = "copy_text"
        elif "web_app" in b:
            kind = "web_app"
        else:
            kind = "other"
        ct = b.get("copy_text")
        return cls(
            text=b["text"],
            callback_data=b.get("callback_data"),
            url=b.get("url"),
            copy_text=ct.get("text") if isinstance(ct, dict) else None,
            kind=kind,
            raw=dict(b),
        )

    def to_json(self) -> JSON:
        return {
            "text": self.text,
            "kind": self.kind,
            "callback_data": self.callback_data,
            "url": self.url,
            "copy_text": self.copy_text,
        }


def _label_matches(label: str | re.Pattern[str], text: str) -> bool:
    if isinstance(label, re.Pattern):
        return label.search(text) is not None
    return text == label


@dataclass
class ChatMessage:
    """A message of a chat as it is *now* (snapshot)."""

    message_id: int
    chat_id: int
    from_bot: bool
    text: str
    entities: list[JSON]
    buttons: list[list[Button]]
    edited: bool
    deleted: bool
    date: int
    edit_date: int | None = None
    raw: JSON = field(default_factory=dict, repr=False)

    @property
    def button_labels(self) -> list[str]:
        return [b.text for row in self.buttons for b in row]

    def find_button(self, label: str | re.Pattern[str]) -> Button | None:
        for row in self.buttons:
            for b in row:
                if _label_matches(label, b.text):
                    return b
        return None

    def has_button(self, label: str | re.Pattern[str]) -> bool:
        return self.find_button(label) is not None

    def button(self, label: str | re.Pattern[str]) -> Button:
        b = self.find_button(label)
        if b is None:
            raise AssertionError(
                f"message #{self.message_id} has no button {label!r}; buttons: {self.button_labels}"
            )
        return b

    def entity_texts(self, etype: str) -> list[str]:
        """Texts covered by entities of ``etype`` (e.g. "bold", "code")."""
        return [
            _slice_u16(self.text, e["offset"], e["length"])
            for e in self.entities
            if e["type"] == etype
        ]

    @property
    def html(self) -> str:
        return render_html(self.text, self.entities)

    def to_json(self) -> JSON:
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "from_bot": self.from_bot,
            "text": self.text,
            "entities": self.entities,
            "buttons": [[b.to_json() for b in row] for row in self.buttons],
            "edited": self.edited,
            "deleted": self.deleted,
            "date": self.date,
            "edit_date": self.edit_date,
        }

    def describe(self) -> str:
        who = "bot " if self.from_bot else "user"
        flags = (" (edited)" if self.edited else "") + (" (DELETED)" if self.deleted else "")
        lines = [f"#{self.message_id} {who}{flags}: {self.text}"]
        for row in self.buttons:
            lines.append("      [" + "] [".join(_describe_button(b) for b in row) + "]")
        return "\n".join(lines)


def _describe_button(b: Button) -> str:
    if b.kind == "callback":
        return f"{b.text} -> {b.callback_data}"
    if b.kind == "url":
        return f"{b.text} -> url {b.url}"
    if b.kind == "copy_text":
        return f"{b.text} -> copy {b.copy_text!r}"
    return f"{b.text} ({b.kind})"


def format_transcript(messages: Iterable[ChatMessage]) -> str:
    lines = [m.describe() for m in messages]
    return "\n".join(lines) if lines else "(empty chat)"


@dataclass
class CallbackAnswer:
    """What the bot answered to a callback query (answerCallbackQuery)."""

    query_id: str
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int = 0


@dataclass
class ChatEvent:
    """One change of a chat. ``chat_id`` is None for global events (e.g. commands)."""

    seq: int
    chat_id: int | None
    # message | edited | deleted | callback_query | callback_answer | chat_action |
    # reply_keyboard | commands
    kind: str
    message_id: int | None
    data: JSON

    def to_json(self) -> JSON:
        return {
            "seq": self.seq,
            "chat_id": self.chat_id,
            "kind": self.kind,
            "message_id": self.message_id,
            **self.data,
        }


class RecordedRequest(NamedTuple):
    method: str
    params: JSON


@dataclass
class RecordedCall:
    seq: int
    method: str
    params: JSON
    status: int
    response: JSON


class WebhookDelivery(NamedTuple):
    """One attempt to POST an update to the webhook: the HTTP status it got (None when
    the connection failed) and, unless 2xx, the error getWebhookInfo reports."""

    update_id: int
    status: int | None
    error: str | None


@dataclass
class InjectedError:
    method: str  # canonical method name, or "*"
    status: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None = None
    drop: bool = False  # the call takes effect, then the connection is cut (no answer)
    until: float | None = None  # a time window (fake's clock) instead of a count
    remaining_retry: bool = False  # 429 retry_after = seconds left in the window

    def reply(self, now: float | None = None) -> TelegramApiError:
        retry_after = self.retry_after
        description = self.description
        if self.remaining_retry and self.until is not None and now is not None:
            retry_after = max(1, math.ceil(self.until - now))
            description = f"Too Many Requests: retry after {retry_after}"
        params = {"retry_after": retry_after} if retry_after is not None else None
        return TelegramApiError(self.status, description, params)

    def active(self, now: float) -> bool:
        return now < self.until if self.until is not None else self.remaining > 0


# --------------------------------------------------------------------------------------
# Internal state
# --------------------------------------------------------------------------------------


@dataclass
class _Stored:
    data: JSON
    from_bot: bool
    deleted: bool = False
    edits: int = 0
    history: list[JSON] = field(default_factory=list)


@dataclass
class _Query:
    id: str
    chat_id: int
    message_id: int
    data: str
    created: float
    answer: CallbackAnswer | None = None


@dataclass
class _Chat:
    user: FakeUser
    messages: dict[int, _Stored] = field(default_factory=dict)
    next_message_id: int = 1
    started: bool = False
    blocked: bool = False
    reply_keyboard: JSON | None = None
    events: list[ChatEvent] = field(default_factory=list)
    send_times: deque[float] = field(default_factory=deque)


_STRING_PARAMS = frozenset(
    {
        "text",
        "parse_mode",
        "callback_query_id",
        "url",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "action",
        "language_code",
        "secret_token",
        "ip_address",
        "description",
        "short_description",
        "name",
        "caption",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]*")
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_\-]+$")
_EDIT_WINDOW = 48 * 3600.0
_METHOD_NAMES = (
    "getMe", "logOut", "close", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo",
    "sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage",
    "deleteMessages", "answerCallbackQuery", "sendChatAction", "setMyCommands",
    "getMyCommands", "deleteMyCommands", "getChat", "setMyDescription", "getMyDescription",
    "setMyShortDescription", "getMyShortDescription", "setMyName", "getMyName",
    "setChatMenuButton", "getChatMenuButton",
)  # fmt: skip


def _normalise_params(raw: dict[str, Any]) -> JSON:
    """Form values are strings; decode JSON for everything that is not a string parameter."""
    out: JSON = {}
    for key, value in raw.items():
        if isinstance(value, str) and key not in _STRING_PARAMS:
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out


def _as_int(params: JSON, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())
    raise _bad(f'field "{name}" must be of type Integer')


def _as_bool(params: JSON, name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _as_json(params: JSON, name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _bad(f"can't parse {name} JSON object") from exc
    return value


# --------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------


class FakeUser:
    """A Telegram user chatting privately with the bot (chat id == user id)."""

    def __init__(
        self,
        fake: FakeTelegram,
        user_id: int,
        first_name: str,
        username: str | None,
        language_code: str | None,
        last_name: str | None = None,
    ) -> None:
        self.fake = fake
        self.id = user_id
        self.first_name = first_name
        self.username = username
        self.language_code = language_code
        self.last_name = last_name
        self._mark = 0  # event seq of this user's last action (send/press)

    # -- identity --------------------------------------------------------------------
    @property
    def chat_id(self) -> int:
        return self.id

    def to_user_json(self) -> JSON:
        data: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def to_chat_json(self) -> JSON:
        data: JSON = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    # -- actions ---------------------------------------------------------------------
    async def send(self, text: str) -> int:
        """The user sends a text message (``/cmd`` gets a bot_command entity); returns update id."""
        return self.fake._user_sends(self, text)

    async def press(
        self,
        label: str | re.Pattern[str],
        *,
        message_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> CallbackAnswer:
        """Press a callback button by its label (exact string or regex) on the newest bot
        message that has it (or on ``message_id``); wait for answerCallbackQuery."""
        msg, button = self._find_button(label, message_id)
        if button.kind != "callback" or button.callback_data is None:
            raise AssertionError(
                f"button {button.text!r} on message #{msg.message_id} is a {button.kind} button, "
                "not a callback button"
            )
        query_id = self.fake._user_presses(self, msg.message_id, button.callback_data)
        return await self.fake.wait_callback_answer(query_id, timeout=timeout)

    async def press_nowait(
        self, label: str | re.Pattern[str], *, message_id: int | None = None
    ) -> str:
        """Like :meth:`press` but returns the callback query id without waiting."""
        msg, button = self._find_button(label, message_id)
        if button.callback_data is None:
            raise AssertionError(f"button {button.text!r} is not a callback button")
        return self.fake._user_presses(self, msg.message_id, button.callback_data)

    async def press_data(
        self,
        data: str,
        message_id: int,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> CallbackAnswer:
        """Send a forged callback query with arbitrary ``data`` for ``message_id``."""
        query_id = self.fake._user_presses(self, message_id, data, forged=True)
        return await self.fake.wait_callback_answer(query_id, timeout=timeout)

    async def block(self) -> None:
        """The user blocks the bot (sends get 403; a my_chat_member update is queued)."""
        self.fake._set_blocked(self, True)

    async def unblock(self) -> None:
        self.fake._set_blocked(self, False)

    def _find_button(
        self, label: str | re.Pattern[str], message_id: int | None
    ) -> tuple[ChatMessage, Button]:
        messages = self.chat()
        if message_id is not None:
            candidates = [m for m in messages if m.message_id == message_id]
            if not candidates:
                raise AssertionError(
                    f"no message #{message_id} in chat {self.id}:\n{format_transcript(messages)}"
                )
        else:
            candidates = [m for m in reversed(messages) if m.from_bot]
        for m in candidates:
            b = m.find_button(label)
            if b is not None:
                return m, b
        raise AssertionError(
            f"no button {label!r} in chat {self.id}:\n{format_transcript(messages)}"
        )

    # -- inspection ------------------------------------------------------------------
    def chat(self, *, include_deleted: bool = False) -> list[ChatMessage]:
        """The transcript as it is now (edits applied; deleted messages left out)."""
        return self.fake.transcript(self.id, include_deleted=include_deleted)

    def bot_messages(self) -> list[ChatMessage]:
        return [m for m in self.chat() if m.from_bot]

    def last(self, *, from_bot: bool | None = True) -> ChatMessage:
        """The newest (not deleted) message; by default the newest *bot* message."""
        for m in reversed(self.chat()):
            if from_bot is None or m.from_bot == from_bot:
                return m
        raise AssertionError(f"no {'bot ' if from_bot else ''}message in chat {self.id}")

    def message(self, message_id: int) -> ChatMessage:
        snap = self.fake.message(self.id, message_id)
        if snap is None:
            raise AssertionError(f"no message #{message_id} in chat {self.id}")
        return snap

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """Labels of the custom reply keyboard currently shown, if any."""
        kb = self.fake._chat(self.id).reply_keyboard
        if kb is None:
            return None
        return [[b["text"] for b in row] for row in kb.get("keyboard", [])]

    def mark(self) -> int:
        """Make "now" the reference point of :meth:`wait_for` (returns the event seq)."""
        self._mark = self.fake.seq
        return self._mark

    async def wait_for(
        self,
        predicate: Callable[[ChatMessage], bool] | str | re.Pattern[str],
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        since: int | None = None,
    ) -> ChatMessage:
        """Wait until a bot message sent or edited after this user's last action (or after
        event ``since``) matches; returns it in its current state.

        ``predicate`` may be a substring, a regex or a callable.  Raises AssertionError with
        the transcript on timeout.
        """
        check: Callable[[ChatMessage], bool]
        if isinstance(predicate, str):
            needle = predicate
            check = lambda m: needle in m.text  # noqa: E731
        elif isinstance(predicate, re.Pattern):
            pattern = predicate
            check = lambda m: pattern.search(m.text) is not None  # noqa: E731
        else:
            check = predicate
        ref = self._mark if since is None else since

        def probe() -> ChatMessage | None:
            chat = self.fake._chat(self.id)
            seen: set[int] = set()
            for ev in chat.events:
                if ev.seq <= ref or ev.kind not in ("message", "edited") or ev.message_id is None:
                    continue
                if ev.message_id in seen:
                    continue
                seen.add(ev.message_id)
                snap = self.fake.message(self.id, ev.message_id)
                if snap is not None and snap.from_bot and not snap.deleted and check(snap):
                    return snap
            return None

        found = await self.fake._wait_until(probe, timeout)
        if found is None:
            raise AssertionError(
                f"timed out after {timeout}s waiting for a bot message matching {predicate!r} "
                f"in chat {self.id}; transcript:\n{format_transcript(self.chat())}"
            )
        return found

    async def wait_idle(self, quiet: float = 0.15, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.fake.wait_idle(quiet=quiet, timeout=timeout)


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


class FakeTelegram:
    """The fake Bot API server plus the test-side API (users, transcripts, injections)."""

    def __init__(
        self,
        token: str,
        *,
        bot_username: str = "daisysim_test_bot",
        bot_id: int | None = None,
        bot_first_name: str = "DaisySim Test Bot",
        clock: Clock | None = None,
        callback_query_ttl: float | None = None,
        chat_rate_limit: tuple[int, float] | None = None,
        first_update_id: int = 1000,
        webhook_retry_delay: float = 0.2,
    ) -> None:
        """``webhook_retry_delay``: first pause before a failed webhook delivery is
        retried (doubling up to 10x; Telegram waits longer, tests don't want to)."""
        if not _TOKEN_RE.match(token):
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.token = token
        self.bot_username = bot_username
        self.bot_id = bot_id if bot_id is not None else int(token.split(":", 1)[0])
        self.bot_first_name = bot_first_name
        self.clock: Clock = clock or SystemClock()
        self.callback_query_ttl = callback_query_ttl
        self.chat_rate_limit = chat_rate_limit

        self.requests: list[RecordedRequest] = []
        self.calls: list[RecordedCall] = []
        self._call_seq = itertools.count(1)
        self._users: dict[int, FakeUser] = {}
        self._chats: dict[int, _Chat] = {}
        self._updates: list[JSON] = []  # unconfirmed updates, ordered by update_id
        self._next_update_id = first_update_id
        self._allowed_updates: list[str] | None = None
        self._poller: object | None = None
        self._webhook_url = ""
        self._webhook_info: JSON = {}
        self._webhook_secret: str | None = None
        self._webhook_last_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._queries: dict[str, _Query] = {}
        self._query_counter = itertools.count(1)
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._bot_settings: dict[tuple[str, str], Any] = {}
        self._injected: list[InjectedError] = []
        self._global_events: list[ChatEvent] = []
        self._seq = 0
        self._changed = asyncio.Event()
        self._in_flight = 0
        self._last_activity = 0.0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

        self._methods: dict[str, Callable[[JSON], Any]] = {
            name.lower(): getattr(self, "_m_" + _snake(name)) for name in _METHOD_NAMES
        }
        self._canonical = {name.lower(): name for name in _METHOD_NAMES}

    # -- lifecycle -------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("already started")
        self._closing = False
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        actual_port = sockets[0].getsockname()[1] if sockets else port
        self._runner = runner
        self._url = f"http://{host}:{actual_port}"
        self._start_delivery()  # a webhook set before a restart

    async def close(self) -> None:
        self._closing = True
        self._notify()
        await self._stop_delivery()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._url

    @property
    def api_base(self) -> str:
        """Pass as ``base_url`` to ``telegram.Bot`` / ``ApplicationBuilder().base_url()``."""
        return self.url + "/bot"

    # -- users / chats ---------------------------------------------------------------
    def user(
        self,
        user_id: int,
        first_name: str = "Alice",
        username: str | None = None,
        language_code: str | None = "en",
        last_name: str | None = None,
    ) -> FakeUser:
        """Get or create a user (and the private chat with them)."""
        existing = self._users.get(user_id)
        if existing is not None:
            return existing
        if user_id <= 0:
            raise ValueError("user ids are positive")
        u = FakeUser(self, user_id, first_name, username, language_code, last_name)
        self._users[user_id] = u
        self._chats[user_id] = _Chat(user=u)
        return u

    @property
    def users(self) -> list[FakeUser]:
        return list(self._users.values())

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise KeyError(f"no chat {chat_id}; create the user with fake.user(...) first")
        return chat

    @property
    def bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # -- events ----------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """Sequence number of the newest event (0 before any)."""
        return self._seq

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _emit(
        self, chat_id: int | None, kind: str, message_id: int | None, data: JSON
    ) -> ChatEvent:
        self._seq += 1
        ev = ChatEvent(self._seq, chat_id, kind, message_id, data)
        if chat_id is None:
            self._global_events.append(ev)
        else:
            self._chat(chat_id).events.append(ev)
        self._notify()
        return ev

    def events_since(self, chat_id: int, since: int = 0) -> list[ChatEvent]:
        """Events of chat ``chat_id`` (and global ones) with seq > ``since``, in order."""
        chat_events = [e for e in self._chat(chat_id).events if e.seq > since]
        global_events = [e for e in self._global_events if e.seq > since]
        if not global_events:
            return chat_events
        return sorted(chat_events + global_events, key=lambda e: e.seq)

    async def wait_events(self, chat_id: int, since: int, timeout: float) -> list[ChatEvent]:  # noqa: ASYNC109
        """Wait (up to ``timeout``) for events newer than ``since``; [] on timeout."""
        found = await self._wait_until(lambda: self.events_since(chat_id, since) or None, timeout)
        return found or []

    async def _wait_until(self, probe: Callable[[], T | None], timeout: float) -> T | None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._changed
            result = probe()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_idle(self, quiet: float = 0.15, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every update has been fetched and confirmed, no request is in flight
        and nothing happened for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            busy = bool(self._updates) or self._in_flight > 0
            event = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"bot not idle after {timeout}s (pending updates: {len(self._updates)}, "
                    f"requests in flight: {self._in_flight})"
                )
            try:
                await asyncio.wait_for(event.wait(), min(quiet, remaining))
            except TimeoutError:
                if not busy and not (bool(self._updates) or self._in_flight > 0):
                    return

    # -- transcript --------------------------------------------------------------------
    def _snapshot(self, stored: _Stored) -> ChatMessage:
        d = stored.data
        markup = d.get("reply_markup") or {}
        buttons = [[Button.from_json(b) for b in row] for row in markup.get("inline_keyboard", [])]
        return ChatMessage(
            message_id=d["message_id"],
            chat_id=d["chat"]["id"],
            from_bot=stored.from_bot,
            text=d.get("text", ""),
            entities=[dict(e) for e in d.get("entities", [])],
            buttons=buttons,
            edited=stored.edits > 0,
            deleted=stored.deleted,
            date=d["date"],
            edit_date=d.get("edit_date"),
            raw=json.loads(json.dumps(d)),
        )

    def transcript(self, chat_id: int, *, include_deleted: bool = False) -> list[ChatMessage]:
        chat = self._chat(chat_id)
        return [
            self._snapshot(s) for s in chat.messages.values() if include_deleted or not s.deleted
        ]

    def message(self, chat_id: int, message_id: int) -> ChatMessage | None:
        stored = self._chat(chat_id).messages.get(message_id)
        return None if stored is None else self._snapshot(stored)

    def reply_keyboard(self, chat_id: int) -> JSON | None:
        return self._chat(chat_id).reply_keyboard

    def calls_to(self, method: str) -> list[JSON]:
        """Params of every request to ``method`` (e.g. "deleteMessage")."""
        return [r.params for r in self.requests if r.method.lower() == method.lower()]

    @property
    def pending_updates(self) -> list[JSON]:
        return [json.loads(json.dumps(u)) for u in self._updates]

    # -- persistence (the playground keeps its chats across restarts) ---------------
    STATE_VERSION = 1

    def export_state(self) -> JSON:
        """The chats (users, messages as they are now, message-id counters, started /
        blocked, reply keyboard), the unconfirmed updates and the update-id and event
        counters, as JSON. Deleted messages are left out entirely (their text may be a
        key the bot deleted); recorded requests, injections, callback queries and
        webhook settings are not state a restart keeps."""
        chats: list[JSON] = []
        for chat in self._chats.values():
            u = chat.user
            chats.append(
                {
                    "user": {
                        "id": u.id,
                        "first_name": u.first_name,
                        "username": u.username,
                        "language_code": u.language_code,
                        "last_name": u.last_name,
                    },
                    "messages": [
                        {"data": m.data, "from_bot": m.from_bot, "edits": m.edits}
                        for m in chat.messages.values()
                        if not m.deleted
                    ],
                    "next_message_id": chat.next_message_id,
                    "started": chat.started,
                    "blocked": chat.blocked,
                    "reply_keyboard": chat.reply_keyboard,
                }
            )
        return json.loads(json.dumps({
            "version": self.STATE_VERSION,
            "next_update_id": self._next_update_id,
            "seq": self._seq,
            "updates": self._updates,
            "chats": chats,
        }))

    def import_state(self, state: JSON) -> None:
        """Restore what :meth:`export_state` returned (before the bot polls): chats
        continue with their messages (so the bot can still edit them) and message
        ids, update ids continue, unconfirmed updates are delivered again. Users that
        exist already keep their identity; ``ValueError`` on a malformed state."""
        if not isinstance(state, dict) or state.get("version") != self.STATE_VERSION:
            raise ValueError("not a FakeTelegram state (or another version)")
        try:
            for raw in state["chats"]:
                info = raw["user"]
                user = self.user(
                    int(info["id"]),
                    first_name=str(info["first_name"]),
                    username=info.get("username"),
                    language_code=info.get("language_code"),
                    last_name=info.get("last_name"),
                )
                chat = self._chats[user.id]
                for m in raw["messages"]:
                    data = dict(m["data"])
                    chat.messages[int(data["message_id"])] = _Stored(
                        data=data, from_bot=bool(m["from_bot"]), edits=int(m.get("edits", 0))
                    )
                chat.messages = dict(sorted(chat.messages.items()))
                chat.next_message_id = max(
                    chat.next_message_id,
                    int(raw["next_message_id"]),
                    max(chat.messages, default=0) + 1,
                )
                chat.started = chat.started or bool(raw["started"])
                chat.blocked = bool(raw["blocked"])
                chat.reply_keyboard = raw.get("reply_keyboard")
            self._next_update_id = max(self._next_update_id, int(state["next_update_id"]))
            known = {u["update_id"] for u in self._updates}
            restored = [dict(u) for u in state["updates"] if u["update_id"] not in known]
            self._updates = sorted(self._updates + restored, key=lambda u: u["update_id"])
            self._seq = max(self._seq, int(state["seq"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed FakeTelegram state: {exc!r}") from None
        self._notify()

    @property
    def webhook_url(self) -> str:
        return self._webhook_url

    @property
    def webhook_secret(self) -> str | None:
        """The ``secret_token`` given to setWebhook (getWebhookInfo does not show it)."""
        return self._webhook_secret

    def commands_for(self, user_id: int) -> list[JSON]:
        """Commands the user's client would show (scope + language resolution)."""
        user = self._users.get(user_id)
        lang = (user.language_code or "") if user else ""
        scopes = [f"chat:{user_id}", "all_private_chats", "default"]
        for scope in scopes:
            for lc in ([lang] if lang else []) + [""]:
                cmds = self._commands.get((scope, lc))
                if cmds:
                    return [dict(c) for c in cmds]
        return []

    # -- failures --------------------------------------------------------------------
    def inject_error(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = None,
        count: int = 1,
        description: str | None = None,
        chat_id: int | None = None,
        for_seconds: float | None = None,
    ) -> InjectedError:
        """Make the next ``count`` calls of ``method`` ("*" = any except getUpdates) fail;
        ``chat_id``: only calls for that chat.

        429 defaults to ``retry_after=1`` and "Too Many Requests: retry after N" (with
        ``parameters.retry_after``, as Telegram answers).

        ``for_seconds``: a storm instead of a count — every matching call fails until
        that many seconds of the fake's clock have passed (``count`` is ignored); a
        429 without ``retry_after`` then tells the seconds left in the window.
        """
        canonical = "*" if method == "*" else self._canonical.get(method.lower(), method)
        remaining_retry = status == 429 and retry_after is None and for_seconds is not None
        if status == 429 and retry_after is None:
            retry_after = max(1, math.ceil(for_seconds)) if for_seconds is not None else 1
        if description is None:
            description = {
                400: "Bad Request: injected failure",
                401: "Unauthorized",
                403: "Forbidden: bot was blocked by the user",
                404: "Not Found",
                409: "Conflict: injected failure",
                429: f"Too Many Requests: retry after {retry_after}",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(status, f"Error {status}")
        inj = InjectedError(canonical, status, description, retry_after, count, chat_id)
        if for_seconds is not None:
            inj.until = self._now() + for_seconds
            inj.remaining_retry = remaining_retry
        self._injected.append(inj)
        return inj

    def drop_response(
        self, method: str, *, count: int = 1, chat_id: int | None = None
    ) -> InjectedError:
        """The next ``count`` calls of ``method`` take effect (a message is really
        sent), then the connection is cut before the answer: the bot sees a network
        error and cannot know whether the call went through."""
        canonical = "*" if method == "*" else self._canonical.get(method.lower(), method)
        inj = InjectedError(canonical, 0, "", None, count, chat_id, drop=True)
        self._injected.append(inj)
        return inj

    def clear_injected(self) -> None:
        self._injected.clear()

    def _take_injection(self, method: str, params: JSON) -> InjectedError | None:
        now = self._now()
        for inj in self._injected:
            if not inj.active(now):
                continue
            if inj.method == "*" and method == "getUpdates":
                continue
            if inj.method not in ("*", method):
                continue
            if inj.chat_id is not None and _as_int_safe(params.get("chat_id")) != inj.chat_id:
                continue
            if inj.until is None:
                inj.remaining -= 1
            return inj
        return None

    # -- HTTP ------------------------------------------------------------------------
    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _read_params(self, request: web.Request) -> JSON:
        raw: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise _bad("can't parse JSON encoded request") from exc
                if not isinstance(body, dict):
                    raise _bad("JSON object expected")
                return _normalise_params(raw) | body
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    raw[key] = value
                elif isinstance(value, bytes | bytearray):
                    raw[key] = value.decode("utf-8", "replace")
                # uploaded files are ignored (no media support)
        return _normalise_params(raw)

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method_raw = request.match_info["method"]
        if not _TOKEN_RE.match(token):
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        if token != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        handler = self._methods.get(method_raw.lower())
        method = self._canonical.get(method_raw.lower(), method_raw)
        counted = method != "getUpdates"  # a long poll is not "work in progress"
        if counted:
            self._in_flight += 1
        self._notify()
        params: JSON = {}
        try:
            if handler is None:
                raise TelegramApiError(404, "Not Found")
            params = await self._read_params(request)
            self.requests.append(RecordedRequest(method, params))
            inj = self._take_injection(method, params)
            if inj is not None and not inj.drop:
                raise inj.reply(self._now())
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
            body: JSON = {"ok": True, "result": result}
            status = 200
            if inj is not None and inj.drop:
                self.calls.append(RecordedCall(next(self._call_seq), method, params, 0, body))
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
        except TelegramApiError as err:
            body, status = err.to_json(), err.code
        finally:
            if counted:
                self._in_flight -= 1
        self.calls.append(RecordedCall(next(self._call_seq), method, params, status, body))
        self._notify()
        return web.json_response(body, status=status)

    # -- helpers for methods -----------------------------------------------------------
    def _now(self) -> float:
        return self.clock.now()

    def _resolve_chat(self, params: JSON) -> _Chat:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat_id = _as_int_safe(raw)
        if chat_id is None or chat_id not in self._chats:
            raise _bad("chat not found")
        return self._chats[chat_id]

    def _resolve_message_id(self, params: JSON, name: str = "message_id") -> int:
        mid = params.get(name)
        if mid is None or mid == "":
            raise _bad("message identifier is not specified")
        value = _as_int_safe(mid)
        if value is None:
            raise _bad("message identifier is not specified")
        return value

    def _check_can_send(self, chat: _Chat) -> None:
        if chat.blocked:
            raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
        if not chat.started:
            raise TelegramApiError(403, "Forbidden: bot can't initiate conversation with a user")
        if self.chat_rate_limit is not None:
            limit, window = self.chat_rate_limit
            now = self._now()
            while chat.send_times and chat.send_times[0] <= now - window:
                chat.send_times.popleft()
            if len(chat.send_times) >= limit:
                retry = max(1, math.ceil(chat.send_times[0] + window - now))
                raise TelegramApiError(
                    429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}
                )

    def _new_message_id(self, chat: _Chat) -> int:
        mid = chat.next_message_id
        chat.next_message_id += 1
        return mid

    def _push_update(self, payload: JSON) -> int:
        uid = self._next_update_id
        self._next_update_id += 1
        self._updates.append({"update_id": uid, **payload})
        self._notify()
        return uid

    # -- user-side actions -------------------------------------------------------------
    def _user_sends(self, user: FakeUser, text: str) -> int:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a user can't send an empty message")
        chat = self._chat(user.id)
        chat.started = True
        final_text, entities = _finalize_text(text, [])
        msg: JSON = {
            "message_id": self._new_message_id(chat),
            "from": user.to_user_json(),
            "chat": user.to_chat_json(),
            "date": int(self._now()),
            "text": final_text,
        }
        if entities:
            msg["entities"] = entities
        chat.messages[msg["message_id"]] = _Stored(data=msg, from_bot=False)
        kb = chat.reply_keyboard
        if kb is not None and kb.get("one_time_keyboard"):
            labels = {b["text"] for row in kb.get("keyboard", []) for b in row}
            if final_text in labels:
                chat.reply_keyboard = None
                self._emit(user.id, "reply_keyboard", None, {"keyboard": None})
        ev = self._emit(
            user.id,
            "message",
            msg["message_id"],
            {"message": self._snapshot(chat.messages[msg["message_id"]]).to_json()},
        )
        user._mark = ev.seq
        return self._push_update({"message": json.loads(json.dumps(msg))})

    def _user_presses(
        self, user: FakeUser, message_id: int, data: str, *, forged: bool = False
    ) -> str:
        chat = self._chat(user.id)
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted:
            raise AssertionError(f"message #{message_id} does not exist in chat {user.id}")
        if not stored.from_bot:
            raise AssertionError(f"message #{message_id} is not a bot message")
        if not forged:
            snap = self._snapshot(stored)
            if not any(b.callback_data == data for row in snap.buttons for b in row):
                raise AssertionError(f"message #{message_id} has no button with data {data!r}")
        qid = str(self.bot_id % 1000 * 10**15 + user.id % 10**6 * 10**6 + next(self._query_counter))
        self._queries[qid] = _Query(qid, user.id, message_id, data, self._now())
        ev = self._emit(user.id, "callback_query", message_id, {"query_id": qid, "data": data})
        user._mark = ev.seq
        query: JSON = {
            "id": qid,
            "from": user.to_user_json(),
            "message": json.loads(json.dumps(stored.data)),
            "chat_instance": str(abs(hash((self.bot_id, user.id))) % 10**18),
            "data": data,
        }
        self._push_update({"callback_query": query})
        return qid

    def press_callback(
        self, user_id: int, message_id: int, data: str, *, forged: bool = False
    ) -> str:
        """User ``user_id`` presses the callback button with ``data`` on ``message_id``
        (it must exist unless ``forged``); returns the callback query id."""
        return self._user_presses(self.user(user_id), message_id, data, forged=forged)

    def callback_answer(self, query_id: str) -> CallbackAnswer | None:
        q = self._queries.get(query_id)
        return None if q is None else q.answer

    async def wait_callback_answer(self, query_id: str, timeout: float = 10.0) -> CallbackAnswer:  # noqa: ASYNC109
        q = self._queries[query_id]
        answer = await self._wait_until(lambda: q.answer, timeout)
        if answer is None:
            raise AssertionError(
                f"the bot did not answer callback query {q.data!r} (message #{q.message_id}) "
                f"within {timeout}s; transcript:\n{format_transcript(self.transcript(q.chat_id))}"
            )
        return answer

    def push_raw_update(self, content: JSON) -> int:
        """Test hook: queue an update exactly as given, malformed or not (``content``
        without ``update_id``, one kind key: ``{"message": {...}}``). It is delivered
        by getUpdates or to the webhook like any other. Returns its update_id."""
        if not isinstance(content, dict) or len(content) != 1 or "update_id" in content:
            raise ValueError("give the update's content (one kind key), without update_id")
        return self._push_update(json.loads(json.dumps(content)))

    def _set_blocked(self, user: FakeUser, blocked: bool) -> None:
        chat = self._chat(user.id)
        if chat.blocked == blocked:
            return
        chat.blocked = blocked
        now = int(self._now())
        member = lambda status: {"user": self.bot_user, "status": status}  # noqa: E731
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        if new == "kicked":
            new_member = {**member("kicked"), "until_date": 0}
            old_member = member(old)
        else:
            new_member = member(new)
            old_member = {**member("kicked"), "until_date": 0}
        self._push_update(
            {
                "my_chat_member": {
                    "chat": user.to_chat_json(),
                    "from": user.to_user_json(),
                    "date": now,
                    "old_chat_member": old_member,
                    "new_chat_member": new_member,
                }
            }
        )

    # ==================================================================================
    # Bot API methods
    # ==================================================================================
    def _m_get_me(self, p: JSON) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_log_out(self, p: JSON) -> bool:
        return True

    def _m_close(self, p: JSON) -> bool:
        return True

    # -- updates -----------------------------------------------------------------------
    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _deliverable(self, limit: int) -> list[JSON]:
        allowed = self._allowed_updates
        keep: list[JSON] = []
        out: list[JSON] = []
        for upd in self._updates:
            kind = next(k for k in upd if k != "update_id")
            if allowed:
                ok = kind in allowed
            else:
                ok = kind not in _DEFAULT_EXCLUDED_UPDATES
            if not ok:
                continue  # dropped for good, like Telegram does
            keep.append(upd)
            if len(out) < limit:
                out.append(upd)
        self._updates = keep
        return [json.loads(json.dumps(u)) for u in out]

    async def _m_get_updates(self, p: JSON) -> list[JSON]:
        if self._webhook_url:
            raise TelegramApiError(409, CONFLICT_WEBHOOK)
        offset = _as_int(p, "offset", 0) or 0
        limit = _as_int(p, "limit", 100) or 100
        limit = min(max(limit, 1), 100)
        raw_timeout = p.get("timeout", 0)
        try:
            timeout = max(float(raw_timeout or 0), 0.0)
        except (TypeError, ValueError) as exc:
            raise _bad('field "timeout" must be of type Integer') from exc
        allowed = _as_json(p, "allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise _bad("can't parse allowed_updates JSON array")
            self._allowed_updates = list(allowed)
        self._confirm(offset)
        token = object()
        self._poller = token
        self._notify()  # a poll that is still waiting is now superseded
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._closing:
                return []
            if self._poller is not token:
                raise TelegramApiError(409, CONFLICT_OTHER_POLL)
            updates = self._deliverable(limit)
            remaining = deadline - loop.time()
            if updates or remaining <= 0:
                if self._poller is token:
                    self._poller = None
                return updates
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def _m_set_webhook(self, p: JSON) -> bool:
        url = p.get("url") or ""
        if not isinstance(url, str):
            raise _bad('field "url" must be of type String')
        secret = p.get("secret_token") or ""
        if not isinstance(secret, str):
            raise _bad('field "secret_token" must be of type String')
        if url:
            parts = urlsplit(url)
            try:
                port = parts.port
            except ValueError as exc:
                raise _bad("bad webhook: Wrong port number specified in the URL") from exc
            if parts.scheme.lower() != "https" and not _is_local_http(url):
                raise _bad(WEBHOOK_HTTPS_REQUIRED)
            if not parts.hostname:
                raise _bad("bad webhook: Failed to resolve host: Name or service not known")
            if port is not None and port not in _WEBHOOK_PORTS and not _is_local_http(url):
                raise _bad(WEBHOOK_BAD_PORT)
        if len(secret) > 256:
            raise _bad(SECRET_TOKEN_TOO_LONG)
        if not _SECRET_TOKEN_RE.fullmatch(secret):
            raise _bad(SECRET_TOKEN_BAD_CHARS)
        allowed = _as_json(p, "allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise _bad("can't parse allowed_updates JSON array")
            self._allowed_updates = list(allowed)  # shared with getUpdates, like Telegram
        max_connections = _as_int(p, "max_connections", 40) or 40
        if not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        await self._stop_delivery()
        changed = url != self._webhook_url
        self._webhook_url = url
        self._webhook_secret = secret or None
        self._webhook_info = {"max_connections": max_connections} if url else {}
        if url and self._allowed_updates is not None:
            self._webhook_info["allowed_updates"] = list(self._allowed_updates)
        if url and isinstance(p.get("ip_address"), str):
            self._webhook_info["ip_address"] = p["ip_address"]
        if changed:
            self._webhook_last_error = None
        if _as_bool(p, "drop_pending_updates"):
            self._updates.clear()
        self._start_delivery()
        self._notify()
        return True

    async def _m_delete_webhook(self, p: JSON) -> bool:
        await self._stop_delivery()
        self._webhook_url = ""
        self._webhook_info = {}
        self._webhook_secret = None
        self._webhook_last_error = None
        if _as_bool(p, "drop_pending_updates"):
            self._updates.clear()
        self._notify()
        return True

    def _m_get_webhook_info(self, p: JSON) -> JSON:
        info: JSON = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook_url:
            info.update(self._webhook_info)
            if self._webhook_last_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    # -- webhook delivery ----------------------------------------------------------------
    def _start_delivery(self) -> None:
        url = self._webhook_url
        if self._webhook_task is not None or self._runner is None or not url:
            return
        if (urlsplit(url).hostname or "").lower() not in _LOOPBACK_HOSTS:
            return  # never contact another host: its updates stay pending
        self._webhook_task = asyncio.get_running_loop().create_task(
            self._deliver(url, self._webhook_secret), name="fake-telegram-webhook"
        )

    async def _stop_delivery(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver(self, url: str, secret: str | None) -> None:
        """POST pending updates to the webhook one at a time, oldest first, until it is
        changed or deleted; an update is confirmed by a 2xx answer, else retried."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        delay = self.webhook_retry_delay
        timeout = aiohttp.ClientTimeout(total=10.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._closing:
                event = self._changed
                batch = self._deliverable(1)
                if not batch:
                    await event.wait()
                    continue
                update = batch[0]
                status: int | None = None
                try:
                    async with session.post(url, json=update, headers=headers) as response:
                        status = response.status
                        await response.read()
                        error = f"Wrong response from the webhook: {status} {response.reason}"
                except TimeoutError:
                    error = "Read timeout expired"
                except aiohttp.ClientConnectorError:
                    error = "Connection refused"
                except (aiohttp.ClientError, OSError) as exc:
                    error = f"Connection failed: {type(exc).__name__}"
                ok = status is not None and 200 <= status < 300
                uid = update["update_id"]
                self.webhook_deliveries.append(WebhookDelivery(uid, status, None if ok else error))
                if ok:
                    self._updates = [u for u in self._updates if u["update_id"] != uid]
                    delay = self.webhook_retry_delay
                    self._notify()
                    continue
                self._webhook_last_error = (int(self._now()), error)
                self._notify()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.webhook_retry_delay * 10)

    def _reply_markup_effect(self, chat: _Chat, markup: tuple[str, JSON] | None) -> JSON | None:
        """Apply a validated reply_markup; returns the inline markup to store, if any."""
        if markup is None:
            return None
        kind, data = markup
        if kind == "inline":
            return data if data["inline_keyboard"] else None
        if kind == "keyboard":
            chat.reply_keyboard = data
            self._emit(chat.user.id, "reply_keyboard", None, {"keyboard": data})
        elif kind == "remove":
            if chat.reply_keyboard is not None:
                chat.reply_keyboard = None
                self._emit(chat.user.id, "reply_keyboard", None, {"keyboard": None})
        return None

    def _link_preview(self, p: JSON) -> JSON | None:
        lpo = _as_json(p, "link_preview_options")
        if lpo is not None:
            if not isinstance(lpo, dict):
                raise _bad("can't parse link preview options JSON object")
            for flag in (
                "is_disabled",
                "prefer_small_media",
                "prefer_large_media",
                "show_above_text",
            ):
                _require_bool(lpo, flag)
            if "url" in lpo:
                try:
                    check_url(str(lpo["url"]))
                except ValueError as exc:
                    raise _bad("WEBPAGE_URL_INVALID") from exc
            return lpo or None
        if _as_bool(p, "disable_web_page_preview"):
            return {"is_disabled": True}
        return None

    def _m_send_message(self, p: JSON) -> JSON:
        text, entities = _format_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        markup = _validate_reply_markup(_as_json(p, "reply_markup"))
        lpo = self._link_preview(p)
        chat = self._resolve_chat(p)
        if p.get("message_thread_id") not in (None, "", 0):
            raise _bad("message thread not found")
        if p.get("business_connection_id"):
            raise _bad("business connection not found")
        reply_to: JSON | None = None
        rp = _as_json(p, "reply_parameters")
        reply_mid: int | None = None
        allow_without = _as_bool(p, "allow_sending_without_reply")
        if rp is not None:
            if not isinstance(rp, dict):
                raise _bad("can't parse reply parameters JSON object")
            if "message_id" not in rp:
                raise _bad('can\'t find field "message_id"')
            reply_mid = _as_int_safe(rp["message_id"])
            allow_without = bool(rp.get("allow_sending_without_reply", allow_without))
        elif p.get("reply_to_message_id") not in (None, ""):
            reply_mid = _as_int(p, "reply_to_message_id")
        if reply_mid is not None:
            target = chat.messages.get(reply_mid)
            if target is None or target.deleted:
                if not allow_without:
                    raise _bad("message to be replied not found")
            else:
                reply_to = json.loads(json.dumps(target.data))
                reply_to.pop("reply_to_message", None)
        self._check_can_send(chat)
        inline = self._reply_markup_effect(chat, markup)
        msg: JSON = {
            "message_id": self._new_message_id(chat),
            "from": self.bot_user,
            "chat": chat.user.to_chat_json(),
            "date": int(self._now()),
            "text": text,
        }
        if entities:
            msg["entities"] = entities
        if lpo:
            msg["link_preview_options"] = lpo
        if inline is not None:
            msg["reply_markup"] = inline
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        if self.chat_rate_limit is not None:
            chat.send_times.append(self._now())
        stored = _Stored(data=msg, from_bot=True)
        chat.messages[msg["message_id"]] = stored
        self._emit(
            chat.user.id,
            "message",
            msg["message_id"],
            {"message": self._snapshot(stored).to_json()},
        )
        return json.loads(json.dumps(msg))

    def _editable(self, p: JSON) -> tuple[_Chat, _Stored]:
        if p.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._resolve_chat(p)
        mid = self._resolve_message_id(p)
        stored = chat.messages.get(mid)
        if stored is None or stored.deleted:
            raise _bad("message to edit not found")
        if not stored.from_bot:
            raise _bad("message can't be edited")
        if self._now() - stored.data["date"] > _EDIT_WINDOW:
            raise _bad("message can't be edited")
        if chat.blocked:
            raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
        return chat, stored

    def _apply_edit(self, chat: _Chat, stored: _Stored, new: JSON) -> JSON:
        old = stored.data
        stored.history.append(json.loads(json.dumps(old)))
        new["edit_date"] = max(int(self._now()), old["date"])
        stored.data = new
        stored.edits += 1
        self._emit(
            chat.user.id, "edited", new["message_id"], {"message": self._snapshot(stored).to_json()}
        )
        return json.loads(json.dumps(new))

    def _m_edit_message_text(self, p: JSON) -> JSON:
        text, entities = _format_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        markup = _validate_reply_markup(_as_json(p, "reply_markup"), inline_only=True)
        lpo = self._link_preview(p)
        chat, stored = self._editable(p)
        old = stored.data
        if "text" not in old:
            raise _bad("there is no text in the message to edit")
        inline = markup[1] if markup and markup[1]["inline_keyboard"] else None
        if (
            old.get("text") == text
            and old.get("entities", []) == entities
            and old.get("reply_markup") == inline
        ):
            raise _bad(NOT_MODIFIED)
        new = {
            k: v
            for k, v in old.items()
            if k not in ("text", "entities", "reply_markup", "edit_date", "link_preview_options")
        }
        new["text"] = text
        if entities:
            new["entities"] = entities
        if lpo:
            new["link_preview_options"] = lpo
        if inline is not None:
            new["reply_markup"] = inline
        return self._apply_edit(chat, stored, new)

    def _m_edit_message_reply_markup(self, p: JSON) -> JSON:
        markup = _validate_reply_markup(_as_json(p, "reply_markup"), inline_only=True)
        chat, stored = self._editable(p)
        old = stored.data
        inline = markup[1] if markup and markup[1]["inline_keyboard"] else None
        if old.get("reply_markup") == inline:
            raise _bad(NOT_MODIFIED)
        new = {k: v for k, v in old.items() if k not in ("reply_markup", "edit_date")}
        if inline is not None:
            new["reply_markup"] = inline
        return self._apply_edit(chat, stored, new)

    def _delete(self, chat: _Chat, mid: int) -> bool:
        stored = chat.messages.get(mid)
        if stored is None or stored.deleted:
            return False
        stored.deleted = True
        self._emit(chat.user.id, "deleted", mid, {"message": self._snapshot(stored).to_json()})
        return True

    def _m_delete_message(self, p: JSON) -> bool:
        chat = self._resolve_chat(p)
        mid = self._resolve_message_id(p)
        stored = chat.messages.get(mid)
        if stored is None or stored.deleted:
            raise _bad("message to delete not found")
        if self._now() - stored.data["date"] > _EDIT_WINDOW:
            raise _bad("message can't be deleted for everyone")
        return self._delete(chat, mid)

    def _m_delete_messages(self, p: JSON) -> bool:
        chat = self._resolve_chat(p)
        ids = _as_json(p, "message_ids")
        if not isinstance(ids, list) or not ids:
            raise _bad("message identifiers are not specified")
        if len(ids) > 100:
            raise _bad("too many message identifiers specified")
        for raw in ids:
            mid = _as_int_safe(raw)
            if mid is None:
                raise _bad("message identifiers are not specified")
            stored = chat.messages.get(mid)
            if stored is not None and self._now() - stored.data["date"] <= _EDIT_WINDOW:
                self._delete(chat, mid)
        return True

    def _m_answer_callback_query(self, p: JSON) -> bool:
        qid = p.get("callback_query_id")
        q = self._queries.get(str(qid)) if qid not in (None, "") else None
        if q is None or q.answer is not None:
            raise _bad(QUERY_TOO_OLD)
        if (
            self.callback_query_ttl is not None
            and self._now() - q.created > self.callback_query_ttl
        ):
            raise _bad(QUERY_TOO_OLD)
        text = p.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        if text is not None and len(text) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        url = p.get("url") or None
        if url is not None:
            raise _bad("URL_INVALID")
        cache_time = _as_int(p, "cache_time", 0) or 0
        q.answer = CallbackAnswer(
            query_id=q.id,
            text=text or None,
            show_alert=_as_bool(p, "show_alert"),
            url=None,
            cache_time=cache_time,
        )
        self._emit(
            q.chat_id,
            "callback_answer",
            q.message_id,
            {"query_id": q.id, "text": q.answer.text, "show_alert": q.answer.show_alert},
        )
        return True

    def _m_send_chat_action(self, p: JSON) -> bool:
        chat = self._resolve_chat(p)
        action = p.get("action")
        if not action:
            raise _bad("action is empty")
        if action not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        if chat.blocked:
            raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
        self._emit(chat.user.id, "chat_action", None, {"action": action})
        return True

    def _m_get_chat(self, p: JSON) -> JSON:
        chat = self._resolve_chat(p)
        return {
            **chat.user.to_chat_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    # -- commands ----------------------------------------------------------------------
    def _command_key(self, p: JSON) -> tuple[str, str]:
        scope = _as_json(p, "scope")
        lang = p.get("language_code") or ""
        if not isinstance(lang, str) or (lang and not re.fullmatch(r"[a-z]{2}", lang)):
            raise _bad("invalid language code specified")
        if scope in (None, ""):
            return "default", lang
        if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
            raise _bad("can't parse BotCommandScope JSON object")
        stype = scope["type"]
        if stype in ("default", "all_private_chats", "all_group_chats", "all_chat_administrators"):
            return stype, lang
        if stype in ("chat", "chat_administrators", "chat_member"):
            cid = _as_int_safe(scope.get("chat_id"))
            if cid is None:
                raise _bad("chat not found")
            if stype == "chat_member":
                return f"chat_member:{cid}:{scope.get('user_id')}", lang
            return f"{stype}:{cid}", lang
        raise _bad("unsupported bot command scope type")

    def _m_set_my_commands(self, p: JSON) -> bool:
        commands = _as_json(p, "commands")
        if commands is None:
            raise _bad('parameter "commands" is required')
        if not isinstance(commands, list):
            raise _bad('field "commands" must be of type Array')
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        clean: list[JSON] = []
        for cmd in commands:
            if not isinstance(cmd, dict):
                raise _bad("can't parse BotCommand: Object expected")
            name, desc = cmd.get("command"), cmd.get("description")
            if not isinstance(name, str) or not isinstance(desc, str):
                raise _bad('can\'t parse BotCommand: Field "command" must be of type String')
            if name == "":
                raise _bad("command must be non-empty")
            if desc.strip() == "":
                raise _bad("command description must be non-empty")
            if not _COMMAND_RE.match(name):
                raise _bad("BOT_COMMAND_INVALID")
            if len(desc) > 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": name, "description": desc})
        key = self._command_key(p)
        if clean:
            self._commands[key] = clean
        else:
            self._commands.pop(key, None)
        self._emit(None, "commands", None, {"scope": key[0], "language_code": key[1]})
        return True

    def _m_get_my_commands(self, p: JSON) -> list[JSON]:
        return [dict(c) for c in self._commands.get(self._command_key(p), [])]

    def _m_delete_my_commands(self, p: JSON) -> bool:
        key = self._command_key(p)
        if self._commands.pop(key, None) is not None:
            self._emit(None, "commands", None, {"scope": key[0], "language_code": key[1]})
        return True

    # -- misc bot settings -------------------------------------------------------------
    def _setting(self, name: str, p: JSON, field_name: str, limit: int) -> bool:
        value = p.get(field_name) or ""
        if not isinstance(value, str):
            value = str(value)
        if len(value) > limit:
            raise _bad(f"{field_name} is too long")
        self._bot_settings[(name, p.get("language_code") or "")] = value
        return True

    def _m_set_my_description(self, p: JSON) -> bool:
        return self._setting("description", p, "description", 512)

    def _m_get_my_description(self, p: JSON) -> JSON:
        return {
            "description": self._bot_settings.get(("description", p.get("language_code") or ""), "")
        }

    def _m_set_my_short_description(self, p: JSON) -> bool:
        return self._setting("short_description", p, "short_description", 120)

    def _m_get_my_short_description(self, p: JSON) -> JSON:
        key = ("short_description", p.get("language_code") or "")
        return {"short_description": self._bot_settings.get(key, "")}

    def _m_set_my_name(self, p: JSON) -> bool:
        return self._setting("name", p, "name", 64)

    def _m_get_my_name(self, p: JSON) -> JSON:
        name = self._bot_settings.get(("name", p.get("language_code") or "")) or self.bot_first_name
        return {"name": name}

    def _m_set_chat_menu_button(self, p: JSON) -> bool:
        button = _as_json(p, "menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in (
            "default",
            "commands",
            "web_app",
        ):
            raise _bad("can't parse MenuButton JSON object")
        self._bot_settings[("menu_button", str(p.get("chat_id") or ""))] = button
        return True

    def _m_get_chat_menu_button(self, p: JSON) -> JSON:
        key = ("menu_button", str(p.get("chat_id") or ""))
        value = self._bot_settings.get(key) or {"type": "commands"}
        return dict(value)


def _is_local_http(url: str) -> bool:
    """``http://`` to this machine: accepted by the fake only (tests have no TLS)."""
    parts = urlsplit(url)
    return parts.scheme.lower() == "http" and (parts.hostname or "").lower() in _LOOPBACK_HOSTS


def _as_int_safe(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?\d+", s):
            return int(s)
    return None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
