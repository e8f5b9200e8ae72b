"""Callback data: building, parsing, the 64-byte limit, compatibility with the
strings older versions put in users' chats, and routing patterns derived from the
same grammars as the parsers (they match exactly what the parsers accept)."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.telegram.admin.callbacks import BroadcastAction, BroadcastCb
from bot.telegram.buy import callbacks as buy
from bot.telegram.buy.callbacks import (
    BuyAgain,
    BuyConfirm,
    BuyList,
    BuyPool,
    BuyQuote,
    BuyService,
)
from bot.telegram.buy.handlers import BUY_PATTERN
from bot.telegram.common.callbacks import MAX_BYTES, CallbackData, CallbackError, parse_any
from bot.telegram.history.callbacks import HistCb, hist
from bot.telegram.keys.callbacks import KeyAction, KeyCb, key
from bot.telegram.keys.handlers import KEY_ENTRY_PATTERN
from bot.telegram.menu.callbacks import LANG_CODES, LangCb, MenuCb, MenuName, Noop, menu, noop
from bot.telegram.orders.callbacks import OrderCb, order
from bot.telegram.routes import CALLBACK_TYPES
from bot.telegram.topup.callbacks import TopListCb, TopPackCb, topup_pack


def parse(data: object) -> CallbackData:
    return parse_any(data, CALLBACK_TYPES)


VALID: list[tuple[str, CallbackData]] = [
    ("menu:home", MenuCb("home")),
    ("menu:buy", MenuCb("buy")),
    ("menu:act", MenuCb("act")),
    ("buy:list:3", BuyList(3)),
    ("buy:svc:sb_wa", BuyService("sb_wa")),
    ("buy:svc:whatsapp-(us)5", BuyService("whatsapp-(us)5")),
    ("buy:pool:sb_wa:3109", BuyPool("sb_wa", "3109")),
    ("buy:pool:sb_wa:-", BuyPool("sb_wa", None)),
    ("buy:ok:Signal:-:ab12z", BuyConfirm("Signal", None, "ab12z")),
    ("buy:q:42", BuyQuote(42)),
    ("buy:again:sb_wa:2266", BuyAgain("sb_wa", "2266")),
    ("act:cancel:17", OrderCb("cancel", 17)),  # buttons of older versions
    ("act:open:1", OrderCb("open", 1)),
    ("top", TopListCb()),  # Wallet → Top up (issue 13)
    ("top:p:3", TopPackCb(3)),
    ("act:ref:99", OrderCb("ref", 99)),
    ("act:open:000000000042", OrderCb("open", 42)),
    ("order:cancel:17", OrderCb("cancel", 17)),
    ("order:ref:999999999999", OrderCb("ref", 999_999_999_999)),
    ("hist:completed:2", HistCb("completed", 2)),
    ("key:rmyes", KeyCb("rmyes")),
    ("noop", Noop()),
]


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_parse_valid(data: str, expected: CallbackData) -> None:
    assert parse(data) == expected
    assert type(expected).parse(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "garbage",
        "menu",
        "menu:nope",
        "menu:home:1",
        "buy",
        "buy:list:0",
        "buy:list:-1",
        "buy:list:abc",
        "buy:list:99999",
        "buy:svc:",
        "buy:svc:a b",
        "buy:svc:a:b",
        "buy:svc:<b>",
        "buy:svc:~short",
        "buy:pool:sb_wa",
        "buy:ok:Signal:-",
        "buy:ok:Signal:-:ABCDE",  # nonce is lowercase base36
        "buy:ok:Signal:-:abc",
        "act:cancel:",
        "act:cancel:0",
        "act:cancel:1.5",
        "act:cancel:-3",
        "act:cancel:1e3",
        "act:cancel:1000000000000",
        "act:nuke:1",
        "order:nuke:1",
        "order:open:0",
        "hist:everything:1",
        "hist:all:0",
        "key:steal",
        "noop:1",
        "noop\n",
        "menu:home\n",  # "$" would let a trailing newline through: "\Z" does not
        "x" * 65,
        "buy:svc:" + "é" * 30,  # > 64 bytes though < 64 characters
        "buy:svc:" + "a" * 40 + ":",
        "buy:ok:" + "a" * 40 + ":" + "b" * 40 + ":abcde",  # > 64 bytes of valid parts
    ],
)
def test_parse_rejects(data: str | None) -> None:
    with pytest.raises(CallbackError):
        parse(data)
    if isinstance(data, str):
        for kind in CALLBACK_TYPES:
            assert re.match(kind.pattern(), data) is None, (kind, data)


# --------------------------------------------------------------- round trips

tokens = st.from_regex(r"[A-Za-z0-9_.()+\-]{1,12}|~[a-z2-7]{10}", fullmatch=True)
pools = st.none() | tokens.filter(lambda t: t != "-")  # "-" is the cheapest (None)
nonces = st.from_regex(r"[0-9a-z]{5}", fullmatch=True)
pages = st.integers(1, 9999)
ids = st.integers(1, 10**12 - 1)


def _values(kind: type[CallbackData]) -> st.SearchStrategy[Any]:
    return {
        MenuCb: st.builds(MenuCb, st.sampled_from(get_args(MenuName))),
        Noop: st.just(Noop()),
        LangCb: st.builds(LangCb, st.sampled_from(LANG_CODES)),
        BuyList: pages.map(BuyList),
        BuyService: tokens.map(BuyService),
        BuyPool: st.builds(BuyPool, tokens, pools),
        BuyQuote: st.integers(1, 10**12 - 1).map(BuyQuote),
        BuyConfirm: st.builds(BuyConfirm, tokens, pools, nonces),
        BuyAgain: st.builds(BuyAgain, tokens, pools),
        OrderCb: st.builds(OrderCb, st.sampled_from(["open", "ref", "cancel"]), ids),
        HistCb: st.builds(HistCb, st.sampled_from(["all", "completed", "waiting", "cancelled"]),
                          pages),
        KeyCb: st.builds(KeyCb, st.sampled_from(get_args(KeyAction))),
        BroadcastCb: st.builds(BroadcastCb, st.sampled_from(get_args(BroadcastAction)), ids),
        TopListCb: st.just(TopListCb()),
        TopPackCb: st.integers(1, 9).map(TopPackCb),
    }[kind]


any_value = st.one_of([_values(kind) for kind in CALLBACK_TYPES])


def test_every_callback_type_has_a_value_strategy() -> None:
    # BuyQuote (stored quotes), LangCb (issue 12), TopListCb/TopPackCb and
    # BroadcastCb (issue 13)
    assert len(CALLBACK_TYPES) == 15
    for kind in CALLBACK_TYPES:
        _values(kind)


@given(any_value)
def test_every_callback_type_round_trips(value: CallbackData) -> None:
    data = value.data
    assert len(data.encode()) <= MAX_BYTES
    assert type(value).parse(data) == value
    assert parse(data) == value
    assert re.match(type(value).pattern(), data)


def test_builders() -> None:
    nonce = buy.new_nonce()
    assert buy.buy_confirm("sb_wa", "3109", nonce) == f"buy:ok:sb_wa:3109:{nonce}"
    assert buy.buy_pool("sb_wa", None) == "buy:pool:sb_wa:-"
    assert buy.buy_list() == "buy:list:1"
    assert buy.buy_again("Signal", None) == "buy:again:Signal:-"
    assert menu("wal") == "menu:wal" and noop() == "noop"
    assert hist("waiting", 7) == "hist:waiting:7"
    assert key("rmno") == "key:rmno"
    assert topup_pack(0) == "top:p:1"  # an index into TOPUP_PACKS_USD, never an amount
    # New order buttons say "order:" ("act" stays the Active list's menu name).
    assert order("cancel", 123456789) == "order:cancel:123456789"
    assert parse(order("cancel", 123456789)) == OrderCb("cancel", 123456789)
    assert buy.new_nonce() != buy.new_nonce() or buy.new_nonce() != buy.new_nonce()
    for bad in (lambda: order("cancel", 0), lambda: hist("all", 10_000),
                lambda: buy.buy_confirm("x", None, "ABCDE"), lambda: menu("nope")):  # type: ignore[arg-type]
        with pytest.raises(CallbackError):
            bad()


@pytest.mark.parametrize(
    "code",
    [
        "WhatsApp",
        "whatsapp-(us)5",
        "a" * 40,
        "a" * 41,  # too long for a plain token
        "service with spaces",
        "colon:inside",
        "~tilde",
        "~abcdefghij",  # looks like a hash token: hashed too, never taken as one
        "-",
        "Ünïcödé-😀-service",
        "x" * 500,
    ],
)
def test_long_or_odd_codes_stay_within_64_bytes(code: str) -> None:
    nonce = buy.new_nonce()
    for data in (
        buy.buy_service(code),
        buy.buy_pool(code, "3109"),
        buy.buy_pool(code, code),
        buy.buy_confirm(code, code, nonce),
        buy.buy_again(code, None),
    ):
        assert len(data.encode()) <= MAX_BYTES
        parsed = parse(data)
        assert isinstance(parsed, BuyService | BuyPool | BuyConfirm | BuyAgain)
        assert buy.matches(parsed.app, code)
        assert not buy.matches(parsed.app, code + "x")
        if isinstance(parsed, BuyPool | BuyConfirm) and parsed.pool is not None:
            assert buy.matches(parsed.pool, code) or buy.matches(parsed.pool, "3109")


def test_a_real_pool_named_dash_is_not_the_cheapest_marker() -> None:
    parsed = parse(buy.buy_pool("sb_wa", "-"))
    assert isinstance(parsed, BuyPool) and parsed.pool is not None
    assert buy.matches(parsed.pool, "-")


@given(st.text(min_size=1, max_size=120), st.text(min_size=1, max_size=60))
def test_any_code_and_pool_encode_within_limit(code: str, pool: str) -> None:
    data = buy.buy_confirm(code, pool, "abcde")
    assert len(data.encode()) <= MAX_BYTES
    parsed = parse(data)
    assert isinstance(parsed, BuyConfirm)
    assert buy.matches(parsed.app, code) and parsed.pool is not None
    assert buy.matches(parsed.pool, pool)


# ------------------------------------------- the parser of the previous version
# Kept verbatim (modulo names) as the compatibility oracle: every string it
# accepted is still accepted, as the same value; nothing else is.

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.()+\-]{1,40}")
_HASH_TOKEN = re.compile(r"~[a-z2-7]{10}")
_INT = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[0-9a-z]{5}")


def _legacy_token(token: str) -> str:
    if _SAFE_TOKEN.fullmatch(token) or _HASH_TOKEN.fullmatch(token):
        return token
    raise CallbackError("bad token")


def _legacy_pool(token: str) -> str | None:
    return None if token == "-" else _legacy_token(token)


def _legacy_int(text: str, low: int, high: int) -> int:
    if not _INT.fullmatch(text):
        raise CallbackError("not a number")
    value = int(text)
    if not low <= value <= high:
        raise CallbackError("out of range")
    return value


def legacy_parse(data: str | None) -> CallbackData:
    if not data or not isinstance(data, str):
        raise CallbackError("empty")
    if len(data.encode("utf-8")) > 64:
        raise CallbackError("too long")
    parts = data.split(":")
    head, args = parts[0], parts[1:]
    if head == "noop" and not args:
        return Noop()
    if head == "menu" and len(args) == 1 and args[0] in {"home", "buy", "act", "wal", "hist",
                                                         "key", "help"}:
        return MenuCb(args[0])  # type: ignore[arg-type]
    if head == "buy" and args:
        kind, rest = args[0], args[1:]
        if kind == "list" and len(rest) == 1:
            return BuyList(_legacy_int(rest[0], 1, 9999))
        if kind == "svc" and len(rest) == 1:
            return BuyService(_legacy_token(rest[0]))
        if kind == "pool" and len(rest) == 2:
            return BuyPool(_legacy_token(rest[0]), _legacy_pool(rest[1]))
        if kind == "ok" and len(rest) == 3:
            if not _NONCE.fullmatch(rest[2]):
                raise CallbackError("bad nonce")
            return BuyConfirm(_legacy_token(rest[0]), _legacy_pool(rest[1]), rest[2])
        if kind == "again" and len(rest) == 2:
            return BuyAgain(_legacy_token(rest[0]), _legacy_pool(rest[1]))
    if head == "act" and len(args) == 2 and args[0] in {"open", "ref", "cancel"}:
        return OrderCb(args[0], _legacy_int(args[1], 1, 10**12 - 1))  # type: ignore[arg-type]
    if head == "hist" and len(args) == 2 and args[0] in {"all", "completed", "waiting",
                                                         "cancelled"}:
        return HistCb(args[0], _legacy_int(args[1], 1, 9999))  # type: ignore[arg-type]
    if head == "key" and len(args) == 1 and args[0] in {"set", "rm", "rmyes", "rmno"}:
        return KeyCb(args[0])  # type: ignore[arg-type]
    raise CallbackError("unknown callback data")


def _outcome(fn: Any, data: str) -> CallbackData | None:
    try:
        value: CallbackData = fn(data)
    except CallbackError:
        return None
    return value


SEEDS = [data for data, _ in VALID] + ["buy:ok:" + "a" * 40 + ":-:abcde", "order:open:5"]
# Near-misses of valid data: cut, extended, one character changed, digits and colons.
mutated = st.one_of(
    st.sampled_from(SEEDS).flatmap(lambda d: st.integers(0, len(d)).map(lambda k: d[:k])),
    st.tuples(st.sampled_from(SEEDS), st.text(max_size=12)).map(lambda p: p[0] + p[1]),
    st.tuples(st.sampled_from(SEEDS), st.integers(0, 60), st.characters()).map(
        lambda p: p[0][: p[1]] + p[2] + p[0][p[1] + 1 :]),
    st.tuples(st.sampled_from(SEEDS), st.from_regex(r"[0-9:\-~a-z]{0,14}", fullmatch=True)).map(
        lambda p: p[0].rsplit(":", 1)[0] + ":" + p[1]),
)
callback_strings = st.one_of(st.text(max_size=80), mutated, any_value.map(lambda v: v.data))


@given(callback_strings)
def test_every_string_the_previous_version_accepted_parses_the_same(data: str) -> None:
    old, new = _outcome(legacy_parse, data), _outcome(parse, data)
    if old is not None:
        assert new == old, data
    else:  # new: the "order:" spelling of an activation's buttons, stored quotes
        # ("buy:q:<id>"), the language picker ("menu:lang", "lang:<code>") and top-ups
        # ("top", "top:p:<n>")
        assert new is None or (isinstance(new, OrderCb) and data.startswith("order:")) or (
            isinstance(new, BuyQuote) and data.startswith("buy:q:")
        ) or (
            new == MenuCb("lang") or isinstance(new, LangCb)
        ) or (
            isinstance(new, BroadcastCb) and data.startswith("bc:")  # issue 13
        ) or isinstance(new, TopListCb | TopPackCb), data  # top-ups (issue 13)


@given(callback_strings)
def test_each_routing_pattern_matches_exactly_what_its_parser_accepts(data: str) -> None:
    for kind in CALLBACK_TYPES:
        assert (re.match(kind.pattern(), data) is not None) == (
            _outcome(kind.parse, data) is not None
        ), (kind.__name__, data)


@given(callback_strings)
def test_the_flows_entry_patterns_match_exactly_their_buttons(data: str) -> None:
    parsed = _outcome(parse, data)
    buys = (BuyList, BuyService, BuyPool, BuyQuote, BuyConfirm, BuyAgain)
    assert (re.match(BUY_PATTERN, data) is not None) == (
        isinstance(parsed, buys) or parsed == MenuCb("buy")
    ), data
    assert (re.match(KEY_ENTRY_PATTERN, data) is not None) == (
        parsed in (MenuCb("key"), KeyCb("set"))
    ), data


def test_at_most_one_type_accepts_any_string() -> None:
    for data, expected in VALID:
        accepting = [k for k in CALLBACK_TYPES if re.match(k.pattern(), data)]
        assert accepting == [type(expected)], data


def test_a_pattern_can_pin_a_field_and_refuses_unknown_ones() -> None:
    assert re.match(MenuCb.pattern(name="buy"), "menu:buy")
    assert not re.match(MenuCb.pattern(name="buy"), "menu:home")
    assert re.match(OrderCb.pattern(action="cancel"), "act:cancel:5")
    assert re.match(OrderCb.pattern(action="cancel"), "order:cancel:5")
    assert not re.match(OrderCb.pattern(action="cancel"), "order:open:5")
    with pytest.raises(TypeError):
        MenuCb.pattern(colour="red")
    with pytest.raises(CallbackError):
        MenuCb.pattern(name="nope")
