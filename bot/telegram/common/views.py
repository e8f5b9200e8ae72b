"""The screen type and the screens every feature shares: engine errors."""

from __future__ import annotations

import math
from dataclasses import dataclass

from telegram import InlineKeyboardMarkup

from bot.services.api import (
    AccountUnavailable,
    ActivationNotFound,
    EngineError,
    InvalidKey,
    KeyRequired,
    NotAllowed,
    OperatorFundsLow,
    PurchasePending,
    ServiceUnavailable,
    TooBusy,
)
from bot.telegram.buy.callbacks import buy_list
from bot.telegram.common.keyboards import error_kb
from bot.telegram.common.support import support_plain, with_support
from bot.telegram.texts import N_, Raw, plain, t

__all__ = ["Screen", "engine_error", "error_alert", "join", "notice"]


@dataclass(frozen=True, slots=True)
class Screen:
    """What a message shows: HTML text and an optional inline keyboard."""

    text: str
    markup: InlineKeyboardMarkup | None = None


def join(*lines: str) -> Raw:
    return Raw("\n".join(line for line in lines if line))


def notice(lang: str, key: str, /, **values: object) -> Screen:
    """A one-text screen without buttons."""
    return Screen(t(lang, key, **values))


def engine_error(lang: str, exc: EngineError, *, retry: str | None = None) -> Screen:
    """The message and next step for an engine error outside the Buy flow (the Buy
    flow's own errors — sold out, not enough balance, a new price — are screens of
    :func:`bot.telegram.buy.views.purchase_error`)."""
    if isinstance(exc, TooBusy):
        seconds = max(1, math.ceil(exc.retry_after))
        return Screen(t(lang, "err_rate_limited", seconds=seconds), error_kb(lang, retry=retry))
    if isinstance(exc, KeyRequired):
        return Screen(t(lang, "err_key_required"), error_kb(lang, key=True))
    if isinstance(exc, InvalidKey):
        return Screen(t(lang, "err_invalid_key"), error_kb(lang, key=True))
    if isinstance(exc, AccountUnavailable):
        if exc.locked:
            return Screen(t(lang, "err_account_locked"), error_kb(lang))
        return Screen(with_support(lang, t(lang, "err_account_suspended")), error_kb(lang))
    if isinstance(exc, ActivationNotFound):
        return Screen(t(lang, "err_not_found"), error_kb(lang))
    if isinstance(exc, ServiceUnavailable):
        return Screen(t(lang, "err_service_gone"), error_kb(lang, retry=buy_list(1)))
    if isinstance(exc, NotAllowed):
        return Screen(t(lang, "not_allowed"), error_kb(lang))
    if isinstance(exc, PurchasePending):  # never "nothing was charged": not known
        return Screen(t(lang, "err_purchase_pending"), error_kb(lang))
    if isinstance(exc, OperatorFundsLow):  # the operator's DaisySim wallet, not theirs
        return Screen(with_support(lang, t(lang, "err_service_unavailable")), error_kb(lang))
    # UpstreamUnavailable and anything new
    return Screen(t(lang, "err_upstream"), error_kb(lang, retry=retry))


_ALERT_KEYS: dict[type[EngineError], str] = {
    ActivationNotFound: N_("err_not_found"),
    NotAllowed: N_("not_allowed"),
    KeyRequired: N_("err_key_required"),
    InvalidKey: N_("err_invalid_key"),
}


def error_alert(lang: str, exc: EngineError) -> str:
    """Short plain text for an answerCallbackQuery (≤ 200 characters)."""
    for cls, key in _ALERT_KEYS.items():
        if isinstance(exc, cls):
            return plain(lang, key)
    if isinstance(exc, TooBusy):
        return plain(lang, "err_rate_limited", seconds=max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, AccountUnavailable):
        return plain(lang, N_("err_account_locked") if exc.locked else N_("err_account_suspended"))
    if isinstance(exc, PurchasePending):
        return plain(lang, "err_purchase_pending")
    if isinstance(exc, OperatorFundsLow):
        return support_plain(lang, plain(lang, "err_service_unavailable"))
    return plain(lang, "err_upstream")
