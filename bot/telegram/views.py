"""Compatibility only (old import path of ``views.stats``): the screens live in the
feature packages; see :mod:`bot.telegram.admin.views`. Delete once no test imports it."""

from bot.telegram.admin.views import stats

__all__ = ["stats"]
