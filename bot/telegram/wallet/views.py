"""The wallet screen: balance, recent movements (operator mode), this month's spend."""

from __future__ import annotations

from decimal import Decimal

from bot.services.api import LedgerEntry, RefundReason, WalletView
from bot.telegram.common.support import with_support
from bot.telegram.common.views import Screen
from bot.telegram.texts import N_, Raw, Signed, clock_entity, label, t
from bot.telegram.wallet.keyboards import wallet_kb

__all__ = ["ledger_label", "wallet"]


def wallet(lang: str, view: WalletView, *, has_key: bool, user_id: int | None = None) -> Screen:
    lines = [t(lang, "wallet_title"), ""]
    own_key = view.mode == "own_key"
    if own_key:
        if not has_key:
            lines.append(t(lang, "wallet_no_key"))
        elif view.balance is None:
            lines.append(t(lang, "wallet_own_key_unknown", email=view.email or "—"))
        else:
            lines.append(t(lang, "wallet_own_key", balance=view.balance, email=view.email or "—"))
    else:
        lines.append(
            t(
                lang,
                "wallet_operator",
                balance=view.balance or Decimal("0"),
                user_id=user_id if user_id is not None else "—",
            )
        )
        if not view.balance:  # nothing to buy with: say who tops it up (h-ops)
            lines.append(with_support(lang, t(lang, "wallet_operator_empty")))
        lines.append("")
        lines.append(t(lang, "wallet_ledger_title"))
        if not view.ledger:
            lines.append(t(lang, "wallet_ledger_empty"))
        for entry in view.ledger:
            lines.append(
                t(
                    lang,
                    "wallet_ledger_line",
                    date=clock_entity(entry.created_at),
                    amount=Signed(entry.amount),
                    what=ledger_label(lang, entry),
                )
            )
    lines.append("")
    lines.append(
        t(lang, "wallet_summary", active=view.active_count, spent=view.spent_this_month)
    )
    return Screen(Raw("\n".join(lines)), wallet_kb(lang, own_key=own_key, has_key=has_key))


# A ledger kind in words.
_LEDGER_KINDS: dict[str, str] = {
    "credit": N_("ledger_credit"),
    "debit": N_("ledger_debit"),
    "hold": N_("ledger_hold"),
    "release": N_("ledger_release"),
    "charge": N_("ledger_charge"),
    "refund": N_("ledger_refund"),
}
_TOPUP_ENTRIES: dict[str, str] = {
    "topup": N_("ledger_topup_stars"),
    "refund": N_("ledger_topup_refund"),
    "refund_back": N_("ledger_topup_refund_back"),
}
_REFUND_REASONS: dict[RefundReason, str] = {
    RefundReason.USER_CANCEL: N_("ledger_refund_user_cancel"),
    RefundReason.EXPIRED: N_("ledger_refund_expired"),
    RefundReason.FAILED: N_("ledger_refund_failed"),
}
# Refund notes written by older versions of the engine (before LedgerEntry carried
# the reason): internal codes, never shown as such.
_REFUND_NOTES: dict[str, RefundReason] = {
    "refund (user_cancel)": RefundReason.USER_CANCEL,
    "refund (expired)": RefundReason.EXPIRED,
    "refund (failed)": RefundReason.FAILED,
    "not found": RefundReason.FAILED,
}


def ledger_label(lang: str, entry: LedgerEntry) -> str:
    """A wallet movement in words: "WhatsApp 3 · purchase", "Signal · refund · you
    cancelled", "top-up · bank transfer". Internal notes are never shown."""
    if entry.charge_entry in _TOPUP_ENTRIES:  # a Stars top-up, its refund
        return label(lang, _TOPUP_ENTRIES[entry.charge_entry])
    kind_key = _LEDGER_KINDS.get(entry.kind)
    what = label(lang, kind_key) if kind_key is not None else entry.kind
    if entry.kind == "refund":
        reason = entry.refund_reason or _REFUND_NOTES.get(entry.note.strip().casefold())
        if reason is not None:
            what = label(lang, _REFUND_REASONS[reason])
    if entry.kind in ("credit", "debit") or kind_key is None:
        note = " ".join(entry.note.split())
        if note and note.casefold() != what.casefold():
            what = label(lang, "ledger_with_note", what=what, note=note)
    if entry.service_name:
        what = label(lang, "ledger_with_name", name=entry.service_name, what=what)
    return what
