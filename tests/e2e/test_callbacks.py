"""Unit tests of bot/telegram/callbacks.py: building, parsing, the 64-byte limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.telegram import callbacks as cb


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("menu:home", cb.MenuCb("home")),
        ("menu:buy", cb.MenuCb("buy")),
        ("buy:list:3", cb.BuyList(3)),
        ("buy:svc:sb_wa", cb.BuyService("sb_wa")),
        ("buy:svc:whatsapp-(us)5", cb.BuyService("whatsapp-(us)5")),
        ("buy:pool:sb_wa:3109", cb.BuyPool("sb_wa", "3109")),
        ("buy:pool:sb_wa:-", cb.BuyPool("sb_wa", None)),
        ("buy:ok:Signal:-:ab12z", cb.BuyConfirm("Signal", None, "ab12z")),
        ("buy:again:sb_wa:2266", cb.BuyAgain("sb_wa", "2266")),
        ("act:cancel:17", cb.ActCb("cancel", 17)),
        ("act:open:1", cb.ActCb("open", 1)),
        ("act:ref:99", cb.ActCb("ref", 99)),
        ("hist:completed:2", cb.HistCb("completed", 2)),
        ("key:rmyes", cb.KeyCb("rmyes")),
        ("noop", cb.Noop()),
    ],
)
def test_parse_valid(data: str, expected: cb.Callback) -> None:
    assert cb.parse(data) == expected


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
        "act:nuke:1",
        "hist:everything:1",
        "hist:all:0",
        "key:steal",
        "noop:1",
        "x" * 65,
        "buy:svc:" + "é" * 30,  # > 64 bytes though < 64 characters
    ],
)
def test_parse_rejects(data: str | None) -> None:
    with pytest.raises(cb.CallbackError):
        cb.parse(data)


def test_round_trips() -> None:
    nonce = cb.new_nonce()
    assert cb.parse(cb.buy_confirm("sb_wa", "3109", nonce)) == cb.BuyConfirm("sb_wa", "3109",
                                                                             nonce)
    assert cb.parse(cb.buy_pool("sb_wa", None)) == cb.BuyPool("sb_wa", None)
    assert cb.parse(cb.act("cancel", 123456789)) == cb.ActCb("cancel", 123456789)
    assert cb.parse(cb.hist("waiting", 7)) == cb.HistCb("waiting", 7)
    assert cb.new_nonce() != cb.new_nonce() or cb.new_nonce() != cb.new_nonce()


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
        "-",
        "Ünïcödé-😀-service",
        "x" * 500,
    ],
)
def test_long_or_odd_codes_stay_within_64_bytes(code: str) -> None:
    nonce = cb.new_nonce()
    for data in (
        cb.buy_service(code),
        cb.buy_pool(code, "3109"),
        cb.buy_pool(code, code),
        cb.buy_confirm(code, code, nonce),
        cb.buy_again(code, None),
    ):
        assert len(data.encode()) <= cb.MAX_BYTES
        parsed = cb.parse(data)
        assert isinstance(parsed, cb.BuyService | cb.BuyPool | cb.BuyConfirm | cb.BuyAgain)
        assert cb.matches(parsed.app, code)
        assert not cb.matches(parsed.app, code + "x")
        if isinstance(parsed, cb.BuyPool | cb.BuyConfirm) and parsed.pool is not None:
            assert cb.matches(parsed.pool, code) or cb.matches(parsed.pool, "3109")


def test_a_real_pool_named_dash_is_not_the_cheapest_marker() -> None:
    parsed = cb.parse(cb.buy_pool("sb_wa", "-"))
    assert isinstance(parsed, cb.BuyPool) and parsed.pool is not None
    assert cb.matches(parsed.pool, "-")


@given(st.text(max_size=200))
def test_parse_never_crashes(data: str) -> None:
    try:
        parsed = cb.parse(data)
    except cb.CallbackError:
        return
    assert len(data.encode()) <= cb.MAX_BYTES
    assert parsed is not None


@given(st.text(min_size=1, max_size=120), st.text(min_size=1, max_size=60))
def test_any_code_and_pool_encode_within_limit(code: str, pool: str) -> None:
    data = cb.buy_confirm(code, pool, "abcde")
    assert len(data.encode()) <= cb.MAX_BYTES
    parsed = cb.parse(data)
    assert isinstance(parsed, cb.BuyConfirm)
    assert cb.matches(parsed.app, code) and parsed.pool is not None
    assert cb.matches(parsed.pool, pool)
