"""Formatting shared by every screen: money, durations, UTC times, :class:`Raw`.

Re-exported by :mod:`bot.telegram.texts` (the public entry point).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from babel.dates import format_timedelta
from babel.numbers import format_currency

__all__ = [
    "Raw",
    "Signed",
    "clock_entity",
    "date_time_entities",
    "fmt_clock",
    "fmt_duration",
    "fmt_lock",
    "fmt_time",
    "fmt_wait",
    "money",
    "relative_entity",
    "seconds_until",
    "time_entity",
    "use_date_time_entities",
]


class Raw(str):
    """A string that is already safe HTML (not escaped again by :func:`t`)."""

    __slots__ = ()


_FOUR = Decimal("0.0001")


@dataclass(frozen=True)
class Signed:
    """A money value shown with its sign (``+$5.00`` / ``-$1.08``): wallet movements."""

    amount: Decimal


def money(amount: Decimal | None, lang: str = "en", *, signed: bool = False) -> str:
    """USD for ``lang`` (Babel/CLDR): ``Decimal("1.0830")`` → ``"$1.083"`` (en),
    ``"1,083 US$"`` (es). The ONE rule, on every screen: the amount's own decimals,
    at least 2 and at most 4 (a price is charged exactly, so it is shown exactly)."""
    if amount is None:
        return "—"
    value = amount.quantize(_FOUR, rounding=ROUND_HALF_UP).normalize()
    text = format_currency(
        value, "USD", locale=lang, currency_digits=False, decimal_quantization=False
    )
    return f"+{text}" if signed and value > 0 else text


def fmt_duration(seconds: float) -> str:
    """A wait, exact to the second (rounded up: never shorter than the truth):
    ``161`` → ``"2:41"``, ``1200`` → ``"20:00"``, ``3725`` → ``"1:02:05"``."""
    secs = max(0, math.ceil(seconds - 1e-9))
    hours, rest = divmod(secs, 3600)
    if hours:
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{rest // 60}:{rest % 60:02d}"


def fmt_lock(seconds: float, lang: str = "en") -> str:
    """The cancel lock in words (Babel): ``180`` → ``"3 minutes"``, ``30`` →
    ``"30 seconds"``, ``90`` → ``"90 seconds"`` (minutes only when exact)."""
    secs = max(0, round(seconds))
    # a threshold no unit reaches: Babel formats in the granularity, unrounded
    if secs and secs % 60 == 0:
        return format_timedelta(timedelta(minutes=secs // 60), granularity="minute",
                                threshold=1e12, locale=lang)
    return format_timedelta(timedelta(seconds=secs), granularity="second",
                            threshold=1e12, locale=lang)


# Times are exact to the precision they show: a whole second is rounded in the
# direction that keeps the sentence true (an "available from" time up — never early;
# "now", "expires" and past events down), and the minute-only form is used only
# when the time is exactly on the minute. (Issue 9: "available at 08:03" for a
# button that opened at 08:02:11 was false.)


def _whole_second(timestamp: float, round_up: bool) -> int:
    # 1e-6: a float sum like 1000.0 + 180.0000000001 must not jump a second
    return math.ceil(timestamp - 1e-6) if round_up else math.floor(timestamp + 1e-6)


def _exact(seconds: int, minute_form: str, second_form: str) -> str:
    when = datetime.fromtimestamp(seconds, tz=UTC)
    return when.strftime(minute_form if when.second == 0 else second_form)


def fmt_clock(timestamp: float) -> str:
    """A past event's UTC date and time: ``2026-01-01 00:03`` on the whole minute,
    else ``2026-01-01 00:03:41`` (screens say once that times are UTC)."""
    return _exact(_whole_second(timestamp, False), "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def fmt_time(timestamp: float, *, round_up: bool = False) -> str:
    """A UTC time of day: ``"17:42 UTC"`` on the whole minute, else
    ``"17:42:05 UTC"``. ``round_up``: for "from" times (the whole second at or
    after ``timestamp``: never early); otherwise the second it falls in."""
    return _exact(_whole_second(timestamp, round_up), "%H:%M UTC", "%H:%M:%S UTC")


def fmt_wait(until: float, now: float) -> tuple[str, str, str]:
    """``(at, left, as_of)`` for "available from {at} (in {left} as of {as_of})":
    ``at`` rounded up, ``as_of`` down, and ``left`` exactly their difference as
    shown, so the three always agree (and none promises a moment too early)."""
    at = _whole_second(until, True)
    as_of = _whole_second(now, False)
    return fmt_time(at), fmt_duration(max(0, at - as_of)), fmt_time(as_of)


def seconds_until(until: float, now: float) -> int:
    """Whole seconds from the second ``now`` is in to the first whole second at or
    after ``until`` (what :func:`fmt_wait` shows as ``left``); at least 1."""
    return max(1, _whole_second(until, True) - _whole_second(now, False))


# Times in MESSAGES as Telegram date_time entities (Bot API: HTML
# ``<tg-time unix="…" format="…">fallback</tg-time>``): the reader's app shows
# them in their own time zone and language; the fallback text is the exact UTC
# time. Button labels and toasts cannot hold entities: they keep the UTC clock
# (fmt_time). DATE_TIME_ENTITIES (bot.config, default on) is applied at startup;
# off: the UTC text only (for a Bot API server that predates date_time entities).
_ENTITIES = {"on": True}


def use_date_time_entities(on: bool) -> None:
    _ENTITIES["on"] = on


def date_time_entities() -> bool:
    """Are times in messages sent as date_time entities (each reader's own zone)?"""
    return _ENTITIES["on"]


def _tg_time(seconds: int, fallback: str, fmt: str) -> Raw:
    if not _ENTITIES["on"]:
        return Raw(html.escape(fallback))
    return Raw(f'<tg-time unix="{seconds}" format="{fmt}">{html.escape(fallback)}</tg-time>')


def time_entity(timestamp: float, *, round_up: bool = False) -> Raw:
    """A time of day (as :func:`fmt_time`, the fallback): format ``t`` on the whole
    minute, else ``T`` (with seconds)."""
    secs = _whole_second(timestamp, round_up)
    return _tg_time(secs, fmt_time(secs), "t" if secs % 60 == 0 else "T")


def relative_entity(timestamp: float, fallback: str, *, round_up: bool = False) -> Raw:
    """A moment shown relative to the reader's now, and kept live by their app
    (format ``r``: "in 3 minutes", then "in 2 minutes"…). ``fallback`` is the plain
    text shown where entities are not rendered (the sender words it exactly as of
    sending: ``"in 2:41"``); pair it with an absolute :func:`time_entity`."""
    return _tg_time(_whole_second(timestamp, round_up), fallback, "r")


def clock_entity(timestamp: float) -> Raw:
    """A past event's date and time (as :func:`fmt_clock`, plus " UTC" so the
    fallback says its zone): ``dt`` / ``dT``."""
    secs = _whole_second(timestamp, False)
    return _tg_time(secs, f"{fmt_clock(secs)} UTC", "dt" if secs % 60 == 0 else "dT")
