"""The Buy flow's callback data::

    buy:list:<page>
    buy:svc:<app>
    buy:pool:<app>:<pool|->              (- = cheapest available / single provider)
    buy:q:<quote id>                     (Confirm: the engine's stored quote)
    buy:ok:<app>:<pool|->:<nonce>         (legacy Confirm of older versions: shows the
                                          current price to be confirmed again)
    buy:again:<app>:<pool|->

``<app>`` and ``<pool>`` are the DaisySim code / provider id when they are made
of safe characters and short enough, else ``~`` + a 10-character hash of the
code (resolved against the current catalogue by the handler). Prices are never
carried: the handler and the engine re-check everything on each press.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final

from bot.telegram.common.callbacks import CallbackData, CallbackError, Grammar, Number, Text

__all__ = [
    "BUY_TYPES",
    "CHEAPEST",
    "BuyAgain",
    "BuyConfirm",
    "BuyList",
    "BuyPool",
    "BuyQuote",
    "BuyService",
    "buy_again",
    "buy_confirm",
    "buy_list",
    "buy_pool",
    "buy_quote",
    "buy_service",
    "matches",
    "new_nonce",
    "token_for",
]

MAX_PAGE_DIGITS: Final = 4  # pages 1..9999
NONCE_LEN: Final = 5
CHEAPEST: Final = "-"

# Codes like "WhatsApp", "whatsapp-(us)5", "sb_wa"; pools like "3109".
_SAFE: Final = r"[A-Za-z0-9_.()+\-]{1,40}"
_HASHED: Final = r"~[a-z2-7]{10}"
_NONCE_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"

SAFE_TOKEN: Final = Text(_SAFE)
PAGE: Final = Number(MAX_PAGE_DIGITS)
APP: Final = Text(f"{_SAFE}|{_HASHED}")
NONCE: Final = Text(f"[0-9a-z]{{{NONCE_LEN}}}")
QUOTE_ID: Final = Number(12)


class _Pool(Text):
    """A pool token, or ``-`` (None): the cheapest pool with numbers."""

    __slots__ = ()

    def decode(self, text: str) -> str | None:
        return None if text == CHEAPEST else text

    def encode(self, value: object) -> str:
        return CHEAPEST if value is None else Text.encode(self, value)


POOL: Final = _Pool(f"{_SAFE}|{_HASHED}")


@dataclass(frozen=True, slots=True)
class BuyList(CallbackData):
    GRAMMAR: ClassVar = Grammar("buy:list", (PAGE,))
    page: int


@dataclass(frozen=True, slots=True)
class BuyService(CallbackData):
    GRAMMAR: ClassVar = Grammar("buy:svc", (APP,))
    app: str  # token: a code or "~hash"


@dataclass(frozen=True, slots=True)
class BuyPool(CallbackData):
    GRAMMAR: ClassVar = Grammar("buy:pool", (APP, POOL))
    app: str
    pool: str | None  # token; None = cheapest available / single provider


@dataclass(frozen=True, slots=True)
class BuyQuote(CallbackData):
    """Confirm: buy what the engine's stored quote priced. The id is all it carries;
    the engine checks the owner, the quote's lifetime and that it was not bought
    yet (one purchase per quote), so a double tap buys once and a Confirm pressed
    after a restart still works while the quote lives."""

    GRAMMAR: ClassVar = Grammar("buy:q", (QUOTE_ID,))
    quote_id: int


@dataclass(frozen=True, slots=True)
class BuyConfirm(CallbackData):
    """The Confirm of versions before quotes were stored (still in users' chats):
    it never buys; the handler shows the current price to be confirmed again."""

    GRAMMAR: ClassVar = Grammar("buy:ok", (APP, POOL, NONCE))
    app: str
    pool: str | None
    nonce: str


@dataclass(frozen=True, slots=True)
class BuyAgain(CallbackData):
    GRAMMAR: ClassVar = Grammar("buy:again", (APP, POOL))
    app: str
    pool: str | None


BUY_TYPES: Final = (BuyList, BuyService, BuyPool, BuyQuote, BuyConfirm, BuyAgain)

# --------------------------------------------------------------------- tokens


def _hash(value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8")).digest()
    return "~" + base64.b32encode(digest).decode("ascii").lower()[:10]


def token_for(value: str, *, force_hash: bool = False) -> str:
    """The callback token of a service code or pool id."""
    if not force_hash and value != CHEAPEST and SAFE_TOKEN.matches(value):
        return value
    return _hash(value)


def matches(token: str, value: str) -> bool:
    """Does ``token`` (from callback data) designate ``value``?"""
    return token == value if not token.startswith("~") else token == _hash(value)


# --------------------------------------------------------------------- building


def _fit(make: Callable[[str, str | None], CallbackData], app: str, pool: str | None) -> str:
    """The data of ``make(app token, pool token)`` within 64 bytes, hashing the app
    code, then the pool id too, when they are long."""
    for hash_app, hash_pool in ((False, False), (True, False), (True, True)):
        pool_token = None if pool is None else token_for(pool, force_hash=hash_pool)
        try:
            return make(token_for(app, force_hash=hash_app), pool_token).data
        except CallbackError:
            continue
    raise CallbackError("cannot encode within 64 bytes")  # unreachable: hashes are short


def buy_list(page: int = 1) -> str:
    return BuyList(page).data


def buy_service(app: str) -> str:
    return _fit(lambda a, _p: BuyService(a), app, None)


def buy_pool(app: str, pool: str | None) -> str:
    return _fit(BuyPool, app, pool)


def buy_quote(quote_id: int) -> str:
    return BuyQuote(quote_id).data


def new_nonce() -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(NONCE_LEN))


def buy_confirm(app: str, pool: str | None, nonce: str) -> str:
    if not NONCE.matches(nonce):
        raise CallbackError("bad nonce")
    return _fit(lambda a, p: BuyConfirm(a, p, nonce), app, pool)


def buy_again(app: str, pool: str | None) -> str:
    return _fit(BuyAgain, app, pool)
