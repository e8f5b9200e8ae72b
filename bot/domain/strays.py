"""Stray orders: upstream orders no activation owns (the late order of a purchase
written off as "not bought", or, with the bot's own key, any unknown order). The
sweep (:mod:`bot.services.sweep`) records each one and cancels it for the refund;
if its code came first it is a loss."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["StrayState"]


class StrayState(StrEnum):
    CANCELLING = "cancelling"  # cancel owed upstream (after the cancel lock)
    REFUNDED = "refunded"  # final: cancelled upstream, refund to the key's wallet
    LOST = "lost"  # final: its code arrived first; the cost is a loss
