"""Callback data: short prefixed strings (≤ 64 bytes) that survive restarts.

Every inline button's ``callback_data`` is built and parsed here and nowhere
else. Grammar (``|`` = alternatives)::

    menu:home|buy|act|wal|hist|key|help
    buy:list:<page>
    buy:svc:<app>
    buy:pool:<app>:<pool|->              (- = cheapest available / single provider)
    buy:ok:<app>:<pool|->:<nonce>         (nonce: random per rendered confirmation screen)
    buy:again:<app>:<pool|->
    act:open|ref|cancel:<activation id>
    hist:all|completed|waiting|cancelled:<page>
    key:set|rm|rmyes|rmno
    noop

``<app>`` and ``<pool>`` are the DaisySim code / provider id when they are made
of safe characters and short enough, else ``~`` + a 10-character hash of the
code (resolved against the current catalogue by the handler). Nothing in the
data is trusted: prices are never carried, ownership is re-checked by the
engine on every press, and anything that does not parse raises
:class:`CallbackError` (answered politely by the handler).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = [
    "MAX_BYTES",
    "ActCb",
    "BuyAgain",
    "BuyConfirm",
    "BuyList",
    "BuyPool",
    "BuyService",
    "Callback",
    "CallbackError",
    "HistCb",
    "KeyCb",
    "MenuCb",
    "Noop",
    "act",
    "buy_again",
    "buy_confirm",
    "buy_list",
    "buy_pool",
    "buy_service",
    "hist",
    "key",
    "matches",
    "menu",
    "new_nonce",
    "noop",
    "parse",
    "token_for",
]

MAX_BYTES: Final = 64
MAX_PAGE: Final = 9999
NONCE_LEN: Final = 5
CHEAPEST: Final = "-"

MenuName = Literal["home", "buy", "act", "wal", "hist", "key", "help"]
ActAction = Literal["open", "ref", "cancel"]
HistName = Literal["all", "completed", "waiting", "cancelled"]
KeyAction = Literal["set", "rm", "rmyes", "rmno"]

_MENU_NAMES: Final = frozenset(get_args(MenuName))
_ACT_ACTIONS: Final = frozenset(get_args(ActAction))
_HIST_NAMES: Final = frozenset(get_args(HistName))
_KEY_ACTIONS: Final = frozenset(get_args(KeyAction))

# Codes like "WhatsApp", "whatsapp-(us)5", "sb_wa"; pools like "3109".
_SAFE_TOKEN: Final = re.compile(r"[A-Za-z0-9_.()+\-]{1,40}")
_HASH_TOKEN: Final = re.compile(r"~[a-z2-7]{10}")
_INT: Final = re.compile(r"[0-9]{1,12}")
_NONCE: Final = re.compile(rf"[0-9a-z]{{{NONCE_LEN}}}")
_NONCE_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


class CallbackError(ValueError):
    """Callback data that is malformed, unknown or too long."""


# --------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class MenuCb:
    name: MenuName


@dataclass(frozen=True, slots=True)
class BuyList:
    page: int


@dataclass(frozen=True, slots=True)
class BuyService:
    app: str  # token: a code or "~hash"


@dataclass(frozen=True, slots=True)
class BuyPool:
    app: str
    pool: str | None  # token; None = cheapest available / single provider


@dataclass(frozen=True, slots=True)
class BuyConfirm:
    app: str
    pool: str | None
    # Random per rendered confirmation screen: the purchase request id is
    # chat:message:nonce, so a double tap buys once while a re-confirmation on
    # the same message (after a price change or an error) is a new request.
    nonce: str


@dataclass(frozen=True, slots=True)
class BuyAgain:
    app: str
    pool: str | None


@dataclass(frozen=True, slots=True)
class ActCb:
    action: ActAction
    activation_id: int


@dataclass(frozen=True, slots=True)
class HistCb:
    filter: HistName
    page: int


@dataclass(frozen=True, slots=True)
class KeyCb:
    action: KeyAction


@dataclass(frozen=True, slots=True)
class Noop:
    pass


Callback = (
    MenuCb | BuyList | BuyService | BuyPool | BuyConfirm | BuyAgain | ActCb | HistCb | KeyCb | Noop
)

# --------------------------------------------------------------------- tokens


def _hash(value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8")).digest()
    return "~" + base64.b32encode(digest).decode("ascii").lower()[:10]


def token_for(value: str, *, force_hash: bool = False) -> str:
    """The callback token of a service code or pool id."""
    if not force_hash and value != CHEAPEST and _SAFE_TOKEN.fullmatch(value):
        return value
    return _hash(value)


def matches(token: str, value: str) -> bool:
    """Does ``token`` (from callback data) designate ``value``?"""
    return token == value if not token.startswith("~") else token == _hash(value)


def _check_token(token: str) -> str:
    if _SAFE_TOKEN.fullmatch(token) or _HASH_TOKEN.fullmatch(token):
        return token
    raise CallbackError("bad token")


def _check_pool(token: str) -> str | None:
    return None if token == CHEAPEST else _check_token(token)


def _int(text: str, low: int, high: int) -> int:
    if not _INT.fullmatch(text):
        raise CallbackError("not a number")
    value = int(text)
    if not low <= value <= high:
        raise CallbackError("out of range")
    return value


# --------------------------------------------------------------------- building


_NO_POOL: Final = object()


def _fit(prefix: str, app: str, pool: object = _NO_POOL, suffix: str = "") -> str:
    """``prefix:app[:pool][suffix]`` within 64 bytes, hashing long parts.

    ``pool`` is a provider id, ``None`` (cheapest available) or absent."""
    for hash_app, hash_pool in ((False, False), (True, False), (True, True)):
        parts = [prefix, token_for(app, force_hash=hash_app)]
        if pool is None:
            parts.append(CHEAPEST)
        elif isinstance(pool, str):
            parts.append(token_for(pool, force_hash=hash_pool))
        data = ":".join(parts) + suffix
        if len(data.encode("utf-8")) <= MAX_BYTES:
            return data
    raise CallbackError("cannot encode within 64 bytes")  # unreachable: hashes are short


def menu(name: MenuName) -> str:
    return f"menu:{name}"


def buy_list(page: int = 1) -> str:
    return f"buy:list:{page}"


def buy_service(app: str) -> str:
    return _fit("buy:svc", app)


def buy_pool(app: str, pool: str | None) -> str:
    return _fit("buy:pool", app, pool)


def new_nonce() -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(NONCE_LEN))


def buy_confirm(app: str, pool: str | None, nonce: str) -> str:
    if not _NONCE.fullmatch(nonce):
        raise CallbackError("bad nonce")
    return _fit("buy:ok", app, pool, f":{nonce}")


def buy_again(app: str, pool: str | None) -> str:
    return _fit("buy:again", app, pool)


def act(action: ActAction, activation_id: int) -> str:
    return f"act:{action}:{activation_id}"


def hist(filter: HistName, page: int = 1) -> str:
    return f"hist:{filter}:{page}"


def key(action: KeyAction) -> str:
    return f"key:{action}"


def noop() -> str:
    return "noop"


# --------------------------------------------------------------------- parsing


def parse(data: str | None) -> Callback:
    """Parse callback data strictly; raise :class:`CallbackError` on anything else."""
    if not data or not isinstance(data, str):
        raise CallbackError("empty")
    if len(data.encode("utf-8")) > MAX_BYTES:
        raise CallbackError("too long")
    parts = data.split(":")
    head, args = parts[0], parts[1:]
    if head == "noop" and not args:
        return Noop()
    if head == "menu" and len(args) == 1 and args[0] in _MENU_NAMES:
        return MenuCb(args[0])  # type: ignore[arg-type]
    if head == "buy" and args:
        kind, rest = args[0], args[1:]
        if kind == "list" and len(rest) == 1:
            return BuyList(_int(rest[0], 1, MAX_PAGE))
        if kind == "svc" and len(rest) == 1:
            return BuyService(_check_token(rest[0]))
        if kind == "pool" and len(rest) == 2:
            return BuyPool(_check_token(rest[0]), _check_pool(rest[1]))
        if kind == "ok" and len(rest) == 3:
            if not _NONCE.fullmatch(rest[2]):
                raise CallbackError("bad nonce")
            return BuyConfirm(_check_token(rest[0]), _check_pool(rest[1]), rest[2])
        if kind == "again" and len(rest) == 2:
            return BuyAgain(_check_token(rest[0]), _check_pool(rest[1]))
    if head == "act" and len(args) == 2 and args[0] in _ACT_ACTIONS:
        return ActCb(args[0], _int(args[1], 1, 10**12 - 1))  # type: ignore[arg-type]
    if head == "hist" and len(args) == 2 and args[0] in _HIST_NAMES:
        return HistCb(args[0], _int(args[1], 1, MAX_PAGE))  # type: ignore[arg-type]
    if head == "key" and len(args) == 1 and args[0] in _KEY_ACTIONS:
        return KeyCb(args[0])  # type: ignore[arg-type]
    raise CallbackError("unknown callback data")
