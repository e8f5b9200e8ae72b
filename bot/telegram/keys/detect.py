"""Does a message look like a DaisySim API key? (Pure: the update processor uses it
too, so that such a message is never dropped.)"""

from __future__ import annotations

import re

__all__ = ["looks_like_key", "plausible_key"]

_PLAUSIBLE_KEY = re.compile(r"[\x21-\x7e]{8,256}")
# A message that is nothing but a DaisySim-looking key (see looks_like_key).
_PREFIXED_KEY = re.compile(r"(?:sk|demo)_[A-Za-z0-9_-]{8,250}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,256}")


def plausible_key(candidate: str) -> bool:
    """Sent at the /key prompt: could this be a key at all (8–256 visible ASCII)?"""
    return _PLAUSIBLE_KEY.fullmatch(candidate) is not None


def looks_like_key(text: str) -> bool:
    """Conservative: the whole message is one token that is either ``sk_…`` /
    ``demo_…`` (≥ 11 characters) or ≥ 20 characters of ``[A-Za-z0-9_-]`` mixing
    letters and digits (random tokens do; words and service names don't)."""
    candidate = text.strip()
    if _PREFIXED_KEY.fullmatch(candidate):
        return True
    return (
        _TOKEN.fullmatch(candidate) is not None
        and any(ch.isdigit() for ch in candidate)
        and any(ch.isalpha() for ch in candidate)
    )
