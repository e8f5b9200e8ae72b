"""Compatibility only (old import path): see :mod:`bot.telegram.keys.detect`."""

from bot.telegram.keys.detect import looks_like_key

__all__ = ["looks_like_key"]
