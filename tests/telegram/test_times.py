"""Issue 12: times in messages are Telegram date_time entities with a UTC fallback."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bot.services.api import ActivationState
from bot.telegram.orders import views as orders_views
from bot.telegram.texts import clock_entity, strip_html, time_entity, use_date_time_entities
from tests.e2e.test_texts import _activation

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
TG_TIME = re.compile(r'<tg-time unix="(\d+)" format="([^"]*)">([^<]*)</tg-time>')
FORMAT = re.compile(r"r|w?[dD]?[tT]?")


@pytest.fixture
def entities() -> Iterator[None]:
    use_date_time_entities(True)
    yield
    use_date_time_entities(True)  # the default (bot.config DATE_TIME_ENTITIES)


def test_time_entity_has_unix_a_valid_format_and_the_utc_fallback(entities: None) -> None:
    html = time_entity(NOW + 180.2, round_up=True)
    unix, fmt, fallback = TG_TIME.fullmatch(html).groups()  # type: ignore[union-attr]
    assert int(unix) == NOW + 181 and FORMAT.fullmatch(fmt) and fmt == "T"
    assert fallback == "00:03:01 UTC"
    unix, fmt, fallback = TG_TIME.fullmatch(time_entity(NOW + 180)).groups()  # type: ignore[union-attr]
    assert (int(unix), fmt, fallback) == (NOW + 180, "t", "00:03 UTC")
    unix, fmt, fallback = TG_TIME.fullmatch(clock_entity(NOW + 221)).groups()  # type: ignore[union-attr]
    assert (int(unix), fmt, fallback) == (NOW + 221, "dT", "2026-01-01 00:03:41 UTC")


def test_off_the_text_is_the_plain_utc_time() -> None:
    use_date_time_entities(False)
    try:
        assert time_entity(NOW + 180) == "00:03 UTC"
    finally:
        use_date_time_entities(True)


def test_the_order_message_states_its_times_as_entities_and_buttons_do_not(
    entities: None,
) -> None:
    a = _activation(ActivationState.WAITING)  # bought at NOW, lock 180 s, window 1200 s
    screen = orders_views.order("en", a, NOW)
    found = TG_TIME.findall(screen.text)
    assert {int(u) for u, _, _ in found} == {int(NOW + 1200), int(NOW + 180)}
    assert all(FORMAT.fullmatch(f) for _, f, _ in found)
    # each moment twice: relative and live ("in 3 minutes"), and the time of day
    assert sorted((int(u), f) for u, f, _ in found) == [
        (int(NOW + 180), "r"), (int(NOW + 180), "t"), (int(NOW + 1200), "r"), (int(NOW + 1200), "t")
    ]
    assert "00:20 UTC" in strip_html(screen.text)  # the fallback is the UTC time
    assert screen.markup is not None
    for row in screen.markup.inline_keyboard:
        for button in row:
            assert "<tg-time" not in button.text


def test_a_relative_entity_falls_back_to_the_exact_wait_in_the_readers_language(
    entities: None,
) -> None:
    a = _activation(ActivationState.WAITING)
    for lang, word in (("en", "in"), ("ru", "через"), ("es", "dentro de"), ("pt_BR", "em")):
        found = TG_TIME.findall(orders_views.order(lang, a, NOW + 19.4).text)
        relative = [(int(u), fallback) for u, f, fallback in found if f == "r"]
        # the lock opens at 00:03:00, 2:41 after 00:00:19 (the second now is in)
        assert (int(NOW + 180), f"{word} 2:41") in relative, (lang, found)
    fa = TG_TIME.findall(orders_views.order("fa", a, NOW + 19.4).text)
    assert (str(int(NOW + 180)), "r", "\u20682:41\u2069 دیگر") in fa  # the number isolated


def test_without_entities_the_wait_is_stated_exactly_in_utc() -> None:
    use_date_time_entities(False)
    try:
        a = _activation(ActivationState.WAITING)
        screen = orders_views.order("en", a, NOW + 19.4)
        assert "<tg-time" not in screen.text
        assert all(part in screen.text for part in ("00:03 UTC", "2:41", "00:00:19 UTC"))
    finally:
        use_date_time_entities(True)
