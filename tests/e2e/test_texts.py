"""Unit tests of the text catalogue and the screens (valid HTML, escaping, buttons)."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path

import pytest
from telegram import InlineKeyboardMarkup

from bot.sandbox.fake_telegram import parse_html
from bot.services.api import (
    AccountUnavailable,
    Activation,
    ActivationNotFound,
    ActivationState,
    EngineError,
    InsufficientFunds,
    InvalidKey,
    KeyRequired,
    LedgerEntry,
    NotAllowed,
    OrderPage,
    Pool,
    PriceChanged,
    Quote,
    RefundReason,
    Service,
    ServiceStat,
    ServiceUnavailable,
    SoldOut,
    Stats,
    TooBusy,
    UpstreamUnavailable,
    WalletView,
)
from bot.telegram import texts
from bot.telegram.admin import views as admin_views
from bot.telegram.buy import callbacks as buy_cb
from bot.telegram.buy import views as buy_views
from bot.telegram.common import views as common_views
from bot.telegram.common.callbacks import parse_any
from bot.telegram.common.views import Screen
from bot.telegram.history import views as history_views
from bot.telegram.menu import views as menu_views
from bot.telegram.orders import views as orders_views
from bot.telegram.routes import CALLBACK_TYPES
from bot.telegram.texts import CATALOGUE, EN, Raw, money, placeholders, t
from bot.telegram.wallet import views as wallet_views

NOW = 1_767_225_600.0
EVIL = "<b>Evil & \"co\"</b>"


def test_every_language_has_every_english_key_and_placeholder() -> None:
    for lang, table in CATALOGUE.items():
        assert set(table) == set(EN), lang
        for key, template in table.items():
            assert placeholders(template) == placeholders(EN[key]), (lang, key)


TELEGRAM = Path(__file__).resolve().parents[2] / "bot" / "telegram"
FEATURES = ("common", "menu", "buy", "orders", "wallet", "history", "keys", "admin")


def _code_modules() -> list[Path]:
    """Every module of the Telegram layer (every feature package included) except
    the catalogues themselves."""
    paths = [p for p in sorted(TELEGRAM.rglob("*.py")) if p.name != "texts.py"]
    assert {p.parent.name for p in paths} >= set(FEATURES), "the scan covers every feature"
    return paths


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_every_text_key_used_in_the_code_exists() -> None:
    used: set[str] = set()
    for path in _code_modules():
        source = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"\b(?:t|label|plain|notice|with_home)\(\s*lang,\s*\"([a-z_0-9]+)\"",
                               source))
    assert used, "the scan found the text calls"
    missing = used - set(EN)
    assert not missing, missing


def test_every_text_key_is_used_in_the_code() -> None:
    """A key no module names is dead copy (and a translator would translate it for
    nothing). Keys are always written out whole in the code — tables like
    ``{ActivationState.EXPIRED: "status_expired"}``, never ``f"status_{state}"`` —
    so this scan sees every one."""
    constants: set[str] = set()
    for path in _code_modules():
        constants |= _string_constants(path)
    unused = set(EN) - constants
    assert not unused, sorted(unused)


def test_the_catalogues_are_the_only_source_of_texts() -> None:
    """Issue 12: the per-feature English dicts are gone; every text comes from the
    gettext catalogues (English included: en.po), so there is no second source."""
    for name in FEATURES:
        assert not (TELEGRAM / name / "texts.py").exists(), name
    assert not hasattr(texts, "FEATURE_TEXTS")
    assert (TELEGRAM / "locales" / "en.po").is_file()
    assert len(EN) > 150


def test_every_template_is_valid_html_with_values() -> None:
    for key, template in EN.items():
        values = {name: EVIL for name in placeholders(template)}
        rendered = t("en", key, **values)
        if key.startswith(("btn_", "cmd_", "hist_", "ledger_", "st_")):
            continue  # plain labels
        parse_html(rendered)  # raises on a bad entity, like Telegram


def test_t_escapes_values_but_not_raw() -> None:
    assert t("en", "order_title", name="<i>x</i> & y") == "📱 <b>&lt;i&gt;x&lt;/i&gt; &amp; y</b>"
    assert t("en", "order_title", name=Raw("<i>x</i>")) == "📱 <b><i>x</i></b>"
    assert t("xx", "cb_buying") == "Buying…"  # unknown language → English
    assert texts.pick_lang("en-US") == "en" and texts.pick_lang("zz") == "en"


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("1.0830"), "$1.083"),
        (Decimal("1.85"), "$1.85"),
        (Decimal("0.6"), "$0.60"),
        (Decimal("10"), "$10.00"),
        (Decimal("-2.5"), "-$2.50"),
        (Decimal("0.00005"), "$0.0001"),
        (None, "—"),
    ],
)
def test_money(amount: Decimal | None, text: str) -> None:
    assert money(amount) == text


@pytest.mark.parametrize(
    ("lang", "amount", "text"),
    [
        ("en", Decimal("1.083"), "$1.083"),
        ("en", Decimal("1.08"), "$1.08"),
        ("es", Decimal("1.08"), "1,08\xa0US$"),
        ("es", Decimal("1.083"), "1,083\xa0US$"),
        ("pt_BR", Decimal("1234.5"), "US$\xa01.234,50"),
        ("ru", Decimal("1.08"), "1,08\xa0$"),
        ("fa", Decimal("1.08"), "\u200e$\xa01.08"),
    ],
)
def test_money_per_locale_with_one_decimals_rule(lang: str, amount: Decimal, text: str) -> None:
    """Babel formats USD per locale; the decimals are the amount's own (2..4) on
    every screen, so $1.083 is never $1.08 elsewhere."""
    assert money(amount, lang) == text
    assert money(Decimal("5"), lang, signed=True).startswith("+")


def test_rtl_values_are_isolated_in_one_place() -> None:
    fsi, pdi = "\u2068", "\u2069"
    rendered = t("fa", "order_number", phone="+15551234567")
    # isolated, and the marks sit outside <code>: a tap-to-copy copies the bare number
    assert f"{fsi}<code>+15551234567</code>{pdi}" in rendered
    assert f"{fsi}{money(Decimal('1.5'), 'fa')}{pdi}" in t("fa", "order_price",
                                                           price=Decimal("1.5"))
    assert fsi not in t("en", "order_number", phone="+15551234567")
    assert fsi not in t("ru", "order_number", phone="+15551234567")
    assert texts.label("fa", "btn_confirm", price=Decimal("2")).count(fsi) == 1


def test_duration() -> None:
    assert texts.fmt_duration(180) == "3:00"
    assert texts.fmt_duration(0.2) == "0:01"
    assert texts.fmt_duration(1200) == "20:00"  # exact, never "20 min" for 19:01
    assert texts.fmt_duration(1141) == "19:01"
    assert texts.fmt_duration(3725) == "1:02:05"
    assert texts.fmt_duration(29.3) == "0:30"  # a wait rounds up: never shorter
    assert texts.fmt_duration(-5) == "0:00"


# ------------------------------------------------------------------ screens


def _activation(state: ActivationState, **kw: object) -> Activation:
    values: dict[str, object] = {
        "id": 7,
        "user_id": 1,
        "remote_id": "32886",
        "service_code": "whatsapp-(us)5",
        "service_name": EVIL,
        "provider_id": None,
        "phone": "+19401234567",
        "price": Decimal("0.74"),
        "state": state,
        "code": None,
        "purchased_at": NOW,
        "cancel_after": NOW + 180,
        "expires_at": NOW + 1200,
        "chat_id": 1,
        "message_id": 5,
    }
    values.update(kw)
    return Activation(**values)  # type: ignore[arg-type]


SERVICE = Service("sb_wa", EVIL, Decimal("1.083"), (Pool("3109", Decimal("1.083"), 4000),
                                                   Pool("2266", Decimal("1.092"), 0)))
SINGLE = Service("whatsapp-(us)5", "WhatsApp 2", Decimal("0.74"))
QUOTE = Quote(SERVICE, "3109", Decimal("1.083"), Decimal("10"), Decimal("8.917"), id=7)


def _check(screen: Screen) -> None:
    parse_html(screen.text)
    assert EVIL not in screen.text  # always escaped
    markup = screen.markup
    if markup is None:
        return
    assert isinstance(markup, InlineKeyboardMarkup)
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data is not None:
                data = str(button.callback_data)
                assert len(data.encode()) <= 64
                parse_any(data, CALLBACK_TYPES)  # every button we make parses


def _all_screens() -> list[Screen]:
    screens = [
        menu_views.main_menu("en", own_key=True, first_name=EVIL),
        menu_views.main_menu("en", own_key=False),
        menu_views.help_screen("en", own_key=True, give_up_minutes=20, cancel_lock_seconds=180),
        buy_views.service_list("en", [SERVICE, SINGLE] * 5, ["sb_wa"], 2),
        buy_views.service_list("en", [SERVICE, SINGLE], [], 1, query=EVIL),
        buy_views.service_list("en", [], [], 1),
        buy_views.pools("en", SERVICE),
        buy_views.confirm("en", QUOTE, cancel_lock_seconds=180),
        buy_views.confirm(
            "en",
            Quote(SINGLE, None, Decimal("0.74"), None, None, id=8),
            cancel_lock_seconds=30,
        ),
        buy_views.price_changed("en", QUOTE),
        orders_views.otp("en", _activation(ActivationState.COMPLETED, code="<1234>")),
        orders_views.active_list("en", [_activation(ActivationState.WAITING)], NOW),
        orders_views.active_list("en", [], NOW),
        history_views.history("en", OrderPage((_activation(ActivationState.COMPLETED, code="1"),),
                                        1, 3, 11, "completed")),
        history_views.history("en", OrderPage((), 1, 1, 0)),
        wallet_views.wallet("en", WalletView("own_key", Decimal("14.25"), EVIL, (), 2,
                                      Decimal("3.5")), has_key=True),
        wallet_views.wallet("en", WalletView("own_key", None, None), has_key=False),
        wallet_views.wallet(
            "en",
            WalletView("operator", Decimal("5"), None, (
                LedgerEntry(1, Decimal("10"), "credit", EVIL, None, NOW),
                LedgerEntry(2, Decimal("-1.083"), "charge", "", 7, NOW),
                LedgerEntry(3, Decimal("1"), "mystery", "", None, NOW),
            )),
            has_key=True,
        ),
        admin_views.stats("en", Stats(3, {"completed": 2, "refunded": 1}, Decimal("2.5"),
                                (ServiceStat(EVIL, "3109", 3, 2), ServiceStat("x", None, 0, 0)))),
        admin_views.stats("en", Stats(1, {}, Decimal("1"), (
            ServiceStat(EVIL, None, 2, 0, open=2, multi_pool=True),
            ServiceStat(EVIL, None, 3, 1, open=1, refunded=1),
        ))),
        menu_views.unknown_command("en", EVIL, own_key=True, is_admin=True),
        menu_views.unknown_command("en", "/x", own_key=False, is_admin=True),
        menu_views.help_screen("en", own_key=False, give_up_minutes=20, cancel_lock_seconds=180,
                          is_admin=True),
        orders_views.order_moved("en"),
        buy_views.insufficient("en", Decimal("0.6"), Decimal("0.5"), own_key=False, user_id=42,
                           service=SERVICE),
        buy_views.insufficient("en", Decimal("0.6"), None, own_key=True),
        buy_views.confirm("en", Quote(SINGLE, None, Decimal("0.74"), Decimal("0.5"),
                                  Decimal("-0.24"), id=8), cancel_lock_seconds=180,
                      user_id=42),
        history_views.history("en", OrderPage(tuple(
            _activation(state, refund_reason=reason, refund_amount=Decimal("0.74"))
            for state in ActivationState for reason in (None, *RefundReason)
        ), 1, 1, 28)),
        wallet_views.wallet(
            "en",
            WalletView("operator", Decimal("5"), None, tuple(
                LedgerEntry(i, Decimal("1"), kind, note, 7, NOW, service_name=EVIL,
                            refund_reason=reason)
                for i, (kind, note, reason) in enumerate([
                    ("charge", "purchase", None),
                    ("hold", "hold", None),
                    ("refund", "refund (user_cancel)", RefundReason.USER_CANCEL),
                    ("refund", "refund (expired)", RefundReason.EXPIRED),
                    ("refund", "not found", RefundReason.FAILED),
                    ("debit", EVIL, None),
                ])
            )),
            has_key=True,
            user_id=42,
        ),
    ]
    for state in ActivationState:
        for reason in (None, *RefundReason):
            a = _activation(state, code="847261" if state == ActivationState.COMPLETED else None,
                            refund_reason=reason,
                            refund_amount=Decimal("0.74") if reason else None)
            for now in (NOW + 10, NOW + 200, NOW + 5000):
                screens.append(orders_views.order("en", a, now))
    errors: list[EngineError] = [
        SoldOut("x", service=SERVICE),
        SoldOut("x", service=SINGLE),
        SoldOut("x", service=None),
        InsufficientFunds("x", balance=Decimal("0.5"), price=Decimal("1.4")),
        InsufficientFunds("x", balance=None, price=Decimal("1.4")),
        PriceChanged("x", quote=QUOTE),
        PriceChanged("x", quote=None),
        TooBusy("x", retry_after=42.2),
        KeyRequired("x"),
        InvalidKey("x"),
        AccountUnavailable("x", locked=True),
        AccountUnavailable("x", locked=False),
        UpstreamUnavailable("x"),
        ActivationNotFound("x"),
        ServiceUnavailable("x"),
        NotAllowed("x"),
    ]
    for exc in errors:
        for own_key in (True, False):
            screens.append(buy_views.purchase_error("en", exc, own_key=own_key,
                                              retry=buy_cb.buy_list(1), app="sb_wa", pool="3109"))
            assert len(common_views.error_alert("en", exc)) <= 200
    return screens


def test_every_screen_is_valid_html_with_parseable_buttons() -> None:
    screens = _all_screens()
    assert len(screens) > 60
    for screen in screens:
        _check(screen)


def test_cancel_button_only_after_the_lock() -> None:
    waiting = _activation(ActivationState.WAITING)
    before = orders_views.order("en", waiting, NOW + 179.9)
    after = orders_views.order("en", waiting, NOW + 180)

    def labels(screen: Screen) -> list[str]:
        assert screen.markup is not None
        return [b.text for row in screen.markup.inline_keyboard for b in row]

    assert "❌ Cancel & refund" not in labels(before)
    assert "Cancel & refund opens in 0:01, at 00:03 UTC." in texts.strip_html(before.text)
    assert "🔒 Cancel from 00:03 UTC" in labels(before)  # a different, "locked" label
    assert not any(label.startswith("🔒") for label in labels(after))
    assert "❌ Cancel & refund" in labels(after)
    assert "❌ Cancel & refund" not in labels(
        orders_views.order("en", _activation(ActivationState.CANCELLING), NOW + 500)
    )


def test_cancel_lock_is_said_as_configured() -> None:
    from bot.telegram.texts import fmt_lock

    assert fmt_lock(180) == "3 minutes"
    assert fmt_lock(60) == "1 minute"
    assert fmt_lock(30) == "30 seconds"
    assert fmt_lock(90) == "90 seconds"
    assert fmt_lock(180, "ru") == "3 минуты" and fmt_lock(60, "es") == "1 minuto"
    demo = buy_views.confirm("en", QUOTE, cancel_lock_seconds=30).text
    assert "you can cancel for a full refund 30 seconds after purchase" in demo
    assert "3 minutes" not in demo
    helped = menu_views.help_screen("en", own_key=False, give_up_minutes=3, cancel_lock_seconds=30)
    assert "30 seconds after purchase" in helped.text


def test_confirm_never_offers_a_negative_balance() -> None:
    poor = Quote(SINGLE, None, Decimal("0.60"), Decimal("0.50"), Decimal("-0.10"), id=8)
    screen = buy_views.confirm("en", poor, cancel_lock_seconds=180,
                               user_id=1002)
    assert "Not enough balance: you have $0.50, this costs $0.60" in texts.strip_html(
        screen.text
    )
    assert "-$0.10" not in screen.text and "your ID is <code>1002</code>" in screen.text
    assert screen.markup is not None
    labels = [b.text for row in screen.markup.inline_keyboard for b in row]
    assert not any("Confirm" in label for label in labels)
    assert "⬅️ Pick another service" in labels and "⬅️ Back" not in labels  # single provider
    own = buy_views.confirm("en", poor, cancel_lock_seconds=180, own_key=True)
    assert "Top up your DaisySim wallet" in own.text and "your ID" not in own.text
    exact = Quote(SINGLE, None, Decimal("0.60"), Decimal("0.60"), Decimal("0"), id=8)
    assert "Confirm your purchase" in buy_views.confirm(
        "en", exact, cancel_lock_seconds=180
    ).text


def test_ledger_labels_are_friendly() -> None:
    def entry(kind: str, note: str, reason: RefundReason | None = None,
              name: str | None = "WhatsApp 3") -> LedgerEntry:
        return LedgerEntry(1, Decimal("1"), kind, note, 7 if name else None, NOW,
                           service_name=name, refund_reason=reason)

    label = wallet_views.ledger_label
    assert label("en", entry("charge", "purchase")) == "WhatsApp 3 · purchase"
    assert label("en", entry("refund", "refund (user_cancel)", RefundReason.USER_CANCEL)) == (
        "WhatsApp 3 · refund · you cancelled"
    )
    assert label("en", entry("refund", "refund (expired)", RefundReason.EXPIRED)) == (
        "WhatsApp 3 · refund · no SMS in time"
    )
    assert label("en", entry("refund", "not found", RefundReason.FAILED)) == (
        "WhatsApp 3 · refund · order failed"
    )
    # Entries from before the engine filled in the reason: the note is mapped, not shown.
    assert label("en", entry("refund", "refund (expired)", name=None)) == (
        "refund · no SMS in time"
    )
    assert label("en", entry("refund", "not found", name=None)) == "refund · order failed"
    assert label("en", entry("credit", "bank transfer", name=None)) == "top-up · bank transfer"
    assert label("en", entry("credit", "", name=None)) == "top-up"
    assert label("en", entry("debit", "correction", name=None)) == "adjustment · correction"


def test_history_and_order_use_one_vocabulary() -> None:
    def status_of(a: Activation) -> tuple[str, str]:
        page = history_views.history("en", OrderPage((a,), 1, 1, 1))
        line = texts.strip_html(page.text).splitlines()[-1]
        order = texts.strip_html(orders_views.order("en", a, NOW + 10).text)
        return line.rsplit(" · $0.74 · ", 1)[1], order

    cancelled = _activation(ActivationState.REFUNDED, refund_reason=RefundReason.USER_CANCEL,
                            refund_amount=Decimal("0.74"))
    line, order = status_of(cancelled)
    assert line == "refunded · cancelled by you" and "refunded · cancelled by you" in order
    expired = _activation(ActivationState.REFUNDED, refund_reason=RefundReason.EXPIRED,
                          refund_amount=Decimal("0.74"))
    line, order = status_of(expired)
    assert line == "refunded · no SMS in time" and "refunded · no SMS in time" in order
    line, _ = status_of(_activation(ActivationState.COMPLETED, code="123456"))
    assert line == "code 123456"
    line, order = status_of(_activation(ActivationState.WAITING))
    assert line == "waiting" and "waiting for the SMS · expires in 19:50 (00:20 UTC)" in order
    failed = _activation(ActivationState.FAILED, refund_reason=RefundReason.FAILED,
                         refund_amount=Decimal("0.74"))
    line, order = status_of(failed)
    assert line == "refunded · order failed" and "refunded · order failed" in order


def test_absolute_times_in_utc() -> None:
    assert texts.fmt_time(NOW + 1200) == "00:20 UTC"
    assert texts.fmt_time(NOW + 1259) == "00:20:59 UTC"  # the minute form only when exact
    assert texts.fmt_time(NOW + 1259.7) == "00:20:59 UTC"  # "now"/"expires": the second it is in
    assert texts.fmt_time(NOW + 181, round_up=True) == "00:03:01 UTC"
    assert texts.fmt_time(NOW + 180.2, round_up=True) == "00:03:01 UTC"  # "from": never early
    assert texts.fmt_time(NOW + 180, round_up=True) == "00:03 UTC"
    assert texts.fmt_time(NOW + 180 + 1e-9, round_up=True) == "00:03 UTC"  # float noise
    assert texts.fmt_clock(NOW + 221) == "2026-01-01 00:03:41"
    assert texts.fmt_clock(NOW + 180) == "2026-01-01 00:03"
    waiting = orders_views.order("en", _activation(ActivationState.WAITING, cancel_after=NOW + 190),
                          NOW + 70)
    text = texts.strip_html(waiting.text)
    assert "expires in 18:50 (00:20 UTC)" in text
    assert "opens in 2:00, at 00:03:10 UTC." in text
    texts.use_date_time_entities(False)  # the UTC text only: the "as of" says when
    try:
        text = texts.strip_html(orders_views.order(
            "en", _activation(ActivationState.WAITING, cancel_after=NOW + 190), NOW + 70).text)
    finally:
        texts.use_date_time_entities(True)
    assert "expires 00:20 UTC" in text
    assert "available from 00:03:10 UTC (in 2:00 as of 00:01:10 UTC)" in text


@pytest.mark.parametrize("now_offset", [0.0, 0.4, 0.99, 17.5, 59.0, 149.01])
def test_every_stated_cancel_time_agrees_and_is_never_early(now_offset: float) -> None:
    """Issue 9.7: "available at 08:03 (in 0:30 as of 08:01)" for a button that opened
    at 08:02:11. Purchase at an off-minute, off-second moment: the "from" time is the
    first whole second the button is open, "as of" the second now is in, and the wait
    is exactly their difference — in the text, the button label and the toast."""
    purchased = NOW + 11.3  # 00:00:11.3
    cancel_after = purchased + 180  # the button opens at 00:03:11.3
    a = _activation(ActivationState.WAITING, cancel_after=cancel_after)
    now = purchased + now_offset
    live = orders_views.order("en", a, now).text  # relative + absolute, both exact
    opens = re.search(r'<tg-time unix="(\d+)" format="r">in (\d+):(\d\d)</tg-time>, at '
                      r'<tg-time unix="(\d+)" format="T">00:03:12 UTC</tg-time>', live)
    assert opens, live
    assert int(opens[1]) == int(opens[4]) == NOW + 192
    assert int(opens[2]) * 60 + int(opens[3]) == texts.seconds_until(cancel_after, now)
    texts.use_date_time_entities(False)
    try:
        text = texts.strip_html(orders_views.order("en", a, now).text)
    finally:
        texts.use_date_time_entities(True)
    found = re.search(r"available from (\d\d):(\d\d):(\d\d) UTC \(in (\d+):(\d\d) as of "
                      r"(\d\d):(\d\d):(\d\d) UTC\)", text)
    assert found, text
    hh, mm, ss, lm, ls, nh, nm, ns = (int(g) for g in found.groups())
    at = NOW + hh * 3600 + mm * 60 + ss
    as_of = NOW + nh * 3600 + nm * 60 + ns
    assert at >= cancel_after > at - 1  # never early, less than a second late
    assert as_of <= now < as_of + 1  # the second "now" is in
    assert at - as_of == lm * 60 + ls  # the three numbers agree exactly
    assert (hh, mm, ss) == (0, 3, 12)
    markup = orders_views.order("en", a, now).markup
    assert markup is not None
    labels = [b.text for row in markup.inline_keyboard for b in row]
    assert "🔒 Cancel from 00:03:12 UTC" in labels
    assert texts.seconds_until(cancel_after, now) == at - as_of



def test_stats_rate_counts_finished_orders_only() -> None:
    screen = admin_views.stats("en", Stats(2, {"completed": 1, "refunded": 1, "waiting": 2},
                                     Decimal("3"), (
        ServiceStat("WhatsApp 3", None, 3, 1, open=1, refunded=1, multi_pool=True),
        ServiceStat("Signal", None, 1, 0, open=1),
    ), completed_spend=Decimal("1.083"), open_spend=Decimal("1.683")))
    text = texts.strip_html(screen.text)
    assert "WhatsApp 3 [cheapest]: 1/2 (50%) · 1 waiting" in text
    assert "Signal: no finished order yet · 1 waiting" in text
    assert "Spent on completed orders: $1.083" in text
    assert "Charged for open orders (refunded if no SMS comes): $1.683" in text
