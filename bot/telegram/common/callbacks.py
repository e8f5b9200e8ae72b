"""Callback data, declared once: each type's grammar is its builder, its parser and
the source of its CallbackQueryHandler pattern.

A callback type is a frozen dataclass deriving from :class:`CallbackData` with a
``GRAMMAR``: a prefix (``"buy:ok"``) and one :class:`Field` per dataclass field,
in order. ``value.data`` builds the string, ``Type.parse(data)`` parses it
strictly, and ``Type.pattern()`` is the regular expression PTB routes with —
compiled from the same fields, so it matches exactly the strings the parser
accepts (tests/e2e/test_callbacks.py checks that on random and mutated data).
``LEGACY`` grammars are parsed (buttons already in users' chats keep working)
but never built.

Callback data is short (≤ 64 bytes, Telegram's limit), ASCII, and trusted for
nothing: prices are never carried and ownership is re-checked on every press.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar, Final, Self, TypeVar

__all__ = [
    "MAX_BYTES",
    "CallbackData",
    "CallbackError",
    "Choice",
    "Field",
    "Grammar",
    "Number",
    "Text",
    "parse_any",
    "pattern_of",
]

MAX_BYTES: Final = 64


class CallbackError(ValueError):
    """Callback data that is malformed, unknown or too long."""


class Field:
    """One ``:``-separated part: a regex (no capturing groups, no ``:``) that is the
    whole acceptance test, and the conversions from and to text."""

    @property
    def regex(self) -> str:
        raise NotImplementedError

    def decode(self, text: str) -> Any:
        return text

    def encode(self, value: Any) -> str:
        return str(value)


@dataclass(frozen=True, slots=True)
class Choice(Field):
    """One of a fixed set of words."""

    values: tuple[str, ...]

    @property
    def regex(self) -> str:
        return "(?:" + "|".join(re.escape(v) for v in self.values) + ")"

    def encode(self, value: Any) -> str:
        if value not in self.values:
            raise CallbackError(f"not one of {self.values}: {value!r}")
        return str(value)


@dataclass(frozen=True, slots=True)
class Number(Field):
    """A whole number from 1 to ``10**digits - 1``, written with at most
    ``max_len`` digits (leading zeros allowed, as the parser always allowed)."""

    digits: int
    max_len: int = 12

    @property
    def regex(self) -> str:
        return rf"(?=[0-9]{{1,{self.max_len}}}(?![0-9]))0*[1-9][0-9]{{0,{self.digits - 1}}}"

    def decode(self, text: str) -> int:
        return int(text)

    def encode(self, value: Any) -> str:
        if not isinstance(value, int) or not 1 <= value < 10**self.digits:
            raise CallbackError(f"out of range: {value!r}")
        return str(value)


@dataclass(frozen=True, slots=True)
class Text(Field):
    """A string made of a restricted alphabet (``pattern``, ASCII, no ``:``)."""

    pattern: str

    @property
    def regex(self) -> str:
        return f"(?:{self.pattern})"

    def encode(self, value: Any) -> str:
        text = str(value)
        if not self.matches(text):
            raise CallbackError(f"bad value: {text!r}")
        return text

    def matches(self, text: str) -> bool:
        return re.fullmatch(self.regex, text) is not None


@dataclass(frozen=True)
class Grammar:
    """``prefix`` followed by ``:field`` for each field."""

    prefix: str
    fields: tuple[Field, ...] = ()

    def regex(self, fixed: Sequence[str | None] = (), *, named: bool = True) -> str:
        """The anchored regex; ``fixed[i]`` (encoded text) pins field ``i``;
        ``named``: field ``i`` is the group ``f<i>`` (for parsing)."""
        parts = [re.escape(self.prefix)]
        for i, field in enumerate(self.fields):
            pin = fixed[i] if i < len(fixed) else None
            body = re.escape(pin) if pin is not None else field.regex
            group = f"?P<f{i}>" if named else "?:"
            parts.append(f":({group}{body})")
        # Every field is ASCII, so characters are bytes: the 64-byte limit.
        return rf"^(?=[\x00-\x7f]{{1,{MAX_BYTES}}}\Z)" + "".join(parts) + r"\Z"

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.regex())

    def build(self, values: Iterable[Any]) -> str:
        texts = [self.prefix, *(f.encode(v) for f, v in zip(self.fields, values, strict=True))]
        return ":".join(texts)


T = TypeVar("T", bound="CallbackData")


class CallbackData:
    """Base of the callback types (frozen dataclasses): see the module doc."""

    __slots__ = ()
    GRAMMAR: ClassVar[Grammar]
    LEGACY: ClassVar[tuple[Grammar, ...]] = ()

    @classmethod
    def grammars(cls) -> tuple[Grammar, ...]:
        return (cls.GRAMMAR, *cls.LEGACY)

    @property
    def data(self) -> str:
        """The callback_data string of this value (raises beyond 64 bytes)."""
        names = [f.name for f in fields(self)]  # type: ignore[arg-type]
        data = self.GRAMMAR.build(getattr(self, name) for name in names)
        if len(data.encode("utf-8")) > MAX_BYTES:
            raise CallbackError("longer than 64 bytes")
        return data

    @classmethod
    def parse(cls, data: object) -> Self:
        """Parse ``data`` strictly as this type; :class:`CallbackError` otherwise."""
        if isinstance(data, str):
            for grammar in cls.grammars():
                found = grammar.compiled.match(data)
                if found is not None:
                    values = [f.decode(found[f"f{i}"]) for i, f in enumerate(grammar.fields)]
                    return cls(*values)
        raise CallbackError("not " + cls.__name__)

    @classmethod
    def pattern(cls, **fixed: Any) -> str:
        """The routing regex: every string :meth:`parse` accepts (``fixed``: only
        those whose named fields have these values)."""
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = set(fixed) - set(names)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {sorted(unknown)}")
        alternatives = []
        for grammar in cls.grammars():
            pins = [
                grammar.fields[i].encode(fixed[name]) if name in fixed else None
                for i, name in enumerate(names)
            ]
            alternatives.append(grammar.regex(pins, named=False))
        return "|".join(f"(?:{a})" for a in alternatives)


def pattern_of(*patterns: str) -> str:
    """One routing regex matching any of ``patterns`` (from :meth:`CallbackData.pattern`)."""
    return "|".join(f"(?:{p})" for p in patterns)


def parse_any(data: object, kinds: Iterable[type[T]]) -> T:
    """``data`` parsed as the first of ``kinds`` that accepts it."""
    for kind in kinds:
        try:
            return kind.parse(data)
        except CallbackError:
            continue
    raise CallbackError("unknown callback data")
