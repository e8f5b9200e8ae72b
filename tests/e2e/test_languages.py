"""Issue 12: the bot speaks the user's language, end to end.

The whole flow (buy → code → cancel → wallet → history → admin) runs in every
shipped language through the real PTB application, the fake Bot API and the
simulator; every text and button is found by its catalogue KEY rendered in that
language (tests/texts.py with ``lang=``), so no English literal appears here.
Also: /language switching, the choice surviving a restart (a push after the
restart arrives in the chosen language), the choice winning over a later
language_code, and setMyCommands once per language.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.sandbox.fake_telegram import FakeUser
from bot.telegram.catalogues import LANGUAGES
from bot.telegram.texts import LANGUAGE_NAMES
from tests.e2e.conftest import ADMIN, ALICE, WAIT, Harness, HarnessFactory
from tests.texts import button, pattern, plural, service_button, text

# What a Telegram client sends as language_code for each catalogue language.
TELEGRAM_CODE = {"en": "en", "ru": "ru", "es": "es", "pt_BR": "pt-br", "fa": "fa"}


async def buy_in(h: Harness, user: FakeUser, lang: str, service: object) -> object:
    """/buy → service → Confirm in ``lang``; the order message."""
    await user.send("/buy")
    await user.wait_for(text("buy_list_title", lang=lang), WAIT)
    await user.press(service)  # type: ignore[arg-type]
    confirm = await user.wait_for(pattern("buy_confirm", lang=lang), WAIT)
    await user.press(pattern("btn_confirm", lang=lang), message_id=confirm.message_id)
    number = pattern("order_number", lang=lang)
    return await user.wait_for(
        lambda m: m.message_id == confirm.message_id and number.search(m.text) is not None,
        WAIT,
    )


def test_every_shipped_language_has_a_telegram_code() -> None:
    assert set(TELEGRAM_CODE) == set(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_whole_flow_in_every_language(h: Harness, lang: str) -> None:
    alice = h.fake.user(ALICE, first_name="Alice", language_code=TELEGRAM_CODE[lang])
    await alice.send("/start")
    menu = await alice.wait_for(text("menu_title", lang=lang), WAIT)
    assert text("welcome", lang=lang, name="Alice") in menu.text
    assert button("btn_buy", lang=lang) in menu.button_labels

    # buy → code
    signal = service_button("Signal", Decimal("0.60"), lang=lang)
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title", lang=lang), WAIT)
    await alice.press(signal)
    confirm = await alice.wait_for(pattern("buy_confirm", lang=lang), WAIT)
    assert pattern("buy_confirm", lang=lang, price=Decimal("0.60")).search(confirm.text)
    await alice.press(pattern("btn_confirm", lang=lang), message_id=confirm.message_id)
    await alice.wait_for(pattern("order_number", lang=lang), WAIT)
    [first] = await h.activations()
    assert first.remote_id is not None
    h.sim.deliver_sms(first.remote_id, "384512")
    await h.advance(15)
    otp = await alice.wait_for(pattern("otp_message", lang=lang, code="384512"), WAIT)
    assert "384512" in otp.entity_texts("code")

    # buy → cancel & refund after the lock
    await h.advance(15)
    telegram = service_button("Telegram", Decimal("1.40"), lang=lang)
    order2: Any = await buy_in(h, alice, lang, telegram)
    await h.advance(180)
    toast = await alice.press(button("btn_cancel_refund", lang=lang),
                              message_id=order2.message_id)
    assert toast.text == text("cb_refunded", lang=lang, amount=Decimal("1.40"))

    # wallet
    await alice.send("/wallet")
    wallet = await alice.wait_for(text("wallet_title", lang=lang), WAIT)
    assert text("wallet_operator", lang=lang, balance=Decimal("9.40"), user_id=ALICE) \
        in wallet.text

    # history
    await alice.send("/history")
    history = await alice.wait_for(pattern("history_title", lang=lang), WAIT)
    assert pattern("history_title", lang=lang, total=plural("history_count", 2, lang=lang)) \
        .search(history.text)

    # admin
    admin = h.fake.user(ADMIN, first_name="Root", language_code=TELEGRAM_CODE[lang])
    await admin.send("/admin")
    await admin.wait_for(pattern("admin_stats", lang=lang), WAIT)
    await admin.send(f"/credit {ALICE} 2.5")
    await admin.wait_for(pattern("admin_credited", lang=lang, amount=Decimal("2.5")), WAIT)
    await alice.wait_for(pattern("admin_credit_notice", lang=lang, amount=Decimal("2.5")), WAIT)


async def test_language_choice_is_stored_wins_and_survives_a_restart(h: Harness) -> None:
    alice = h.fake.user(ALICE, first_name="Alice", language_code="en")
    await alice.send("/start")
    await alice.wait_for(text("menu_title"), WAIT)
    await alice.press(button("btn_language"))
    picker = await alice.wait_for(text("language_title"), WAIT)
    assert set(LANGUAGE_NAMES.values()) <= {lbl.removeprefix("✅ ")
                                            for lbl in picker.button_labels}
    await alice.press(LANGUAGE_NAMES["ru"])
    await alice.wait_for(text("language_set", lang="ru", language=LANGUAGE_NAMES["ru"]), WAIT)

    # an order waiting for its SMS across a restart
    await buy_in(h, alice, "ru", service_button("Signal", Decimal("0.60"), lang="ru"))
    [act] = await h.activations()
    assert act.remote_id is not None
    await h.restart_bot()
    h.sim.deliver_sms(act.remote_id, "902211")
    await h.advance(15)
    await alice.wait_for(pattern("otp_message", lang="ru", code="902211"), WAIT)

    # Telegram still says "en": the explicit choice wins (stored in the DB)
    await alice.send("/wallet")
    await alice.wait_for(text("wallet_title", lang="ru"), WAIT)
    await h.restart_bot()
    await alice.send("/language")
    await alice.wait_for(text("language_title", lang="ru"), WAIT)
    await alice.press(LANGUAGE_NAMES["es"])
    await alice.wait_for(text("language_set", lang="es", language=LANGUAGE_NAMES["es"]), WAIT)
    assert await h.engine.user_locale(ALICE) == "es"


async def test_first_contact_takes_language_code_then_default_locale(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(default_locale="es")
    pt = h.fake.user(11, first_name="Ana", language_code="pt-br")
    await pt.send("/start")
    await pt.wait_for(text("menu_title", lang="pt_BR"), WAIT)
    unknown = h.fake.user(12, first_name="Kim", language_code="ko")
    await unknown.send("/start")
    await unknown.wait_for(text("menu_title", lang="es"), WAIT)
    assert await h.engine.user_locale(11) == "pt-br"


async def test_set_my_commands_once_per_language(h: Harness) -> None:
    commands = h.fake.state.commands
    assert ("default", "") in commands
    for lang in LANGUAGES:
        code = lang.split("_")[0].lower()
        described = {c["command"]: c["description"] for c in commands[("default", code)]}
        assert described["buy"] == button("cmd_buy", lang=lang)
        assert described["language"] == button("cmd_language", lang=lang)
    ru = h.fake.user(5, first_name="Dmitri", language_code="ru")
    assert ru is not None
    assert {c["description"] for c in h.fake.commands_for(5)} >= {button("cmd_buy", lang="ru")}
