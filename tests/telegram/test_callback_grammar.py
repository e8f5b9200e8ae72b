"""The callback grammar machinery (bot.telegram.common.callbacks) on its own."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import ClassVar

import pytest

from bot.telegram.common.callbacks import (
    CallbackData,
    CallbackError,
    Choice,
    Grammar,
    Number,
    Text,
    parse_any,
    pattern_of,
)


def test_number_regex_is_exactly_the_range_check() -> None:
    """Every string of up to 5 characters over digits and a sign: the regex accepts
    it iff it is 1..max_len digits whose value is in 1..10**digits - 1."""
    field = Number(2, max_len=4)
    regex = re.compile(f"(?:{field.regex})\\Z")
    for n in range(6):
        for chars in itertools.product("019-", repeat=n):
            text = "".join(chars)
            legit = (
                text.isdigit() and 1 <= len(text) <= 4 and 1 <= int(text) <= 99
            )
            assert (regex.match(text) is not None) == legit, text


@dataclass(frozen=True, slots=True)
class Sample(CallbackData):
    GRAMMAR: ClassVar = Grammar("s:x", (Choice(("a", "b")), Number(3), Text("[a-z]{1,60}")))
    LEGACY: ClassVar = (Grammar("old", (Choice(("a", "b")), Number(3), Text("[a-z]{1,60}"))),)
    kind: str
    n: int
    word: str


def test_build_parse_pattern_are_one_definition() -> None:
    value = Sample("a", 7, "hello")
    assert value.data == "s:x:a:7:hello"
    assert Sample.parse("s:x:a:7:hello") == value
    assert Sample.parse("old:a:007:hello") == value  # legacy spelling, same value
    assert re.match(Sample.pattern(), "old:a:007:hello")
    assert re.match(Sample.pattern(kind="b"), "s:x:b:1:z")
    assert not re.match(Sample.pattern(kind="b"), "s:x:a:1:z")
    for bad in ("s:x:c:7:hello", "s:x:a:0:hello", "s:x:a:1000:hello", "s:x:a:7:Hello",
                "s:x:a:7", "s:x:a:7:hello:", "s:x:a:7:hello\n", "S:x:a:7:hello"):
        with pytest.raises(CallbackError):
            Sample.parse(bad)
        assert not re.match(Sample.pattern(), bad), bad


def test_data_beyond_64_bytes_is_refused_both_ways() -> None:
    fits = Sample("a", 999, "z" * 54)
    assert len(fits.data) == 64
    assert Sample.parse(fits.data) == fits
    with pytest.raises(CallbackError):
        Sample("a", 999, "z" * 55).data  # noqa: B018 - 65 bytes
    too_long = "old:a:999:" + "z" * 55
    assert len(too_long) == 65
    with pytest.raises(CallbackError):
        Sample.parse(too_long)
    assert not re.match(Sample.pattern(), too_long)
    assert re.match(Sample.pattern(), too_long[:-1])


def test_building_out_of_range_values_raises() -> None:
    for bad in (Sample("c", 1, "a"), Sample("a", 0, "a"), Sample("a", 1000, "a"),
                Sample("a", 1, "A b")):
        with pytest.raises(CallbackError):
            bad.data  # noqa: B018


def test_parse_any_and_pattern_of() -> None:
    @dataclass(frozen=True, slots=True)
    class Other(CallbackData):
        GRAMMAR: ClassVar = Grammar("o")

    assert parse_any("o", (Sample, Other)) == Other()
    assert parse_any("s:x:b:2:q", (Sample, Other)) == Sample("b", 2, "q")
    with pytest.raises(CallbackError):
        parse_any("p", (Sample, Other))
    both = re.compile(pattern_of(Sample.pattern(), Other.pattern()))
    assert both.match("o") and both.match("s:x:b:2:q") and not both.match("o:")
