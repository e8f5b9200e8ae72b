"""One way to name a DaisySim API key, per purpose (the key itself is a secret:
it is only ever sent to DaisySim and, encrypted, stored).

=====================  ==============================  =============================
function               what it is for                  example
=====================  ==============================  =============================
:func:`key_hash`       the stored lookup id            ``accounts.key_hash``: 64 hex
                       (``accounts.key_hash``)
:func:`key_fingerprint` logs, reprs, the per-key       ``3f1c0a9b7d2e4f60`` (16 hex)
                       limiter registry
:func:`mask_key`       display to the key's owner      ``sk_l…9f2a``
                       (``accounts.key_masked``)
=====================  ==============================  =============================

The formats of :func:`key_hash` and :func:`mask_key` are fixed: existing
databases hold them (a changed hash would make a linked key unknown). The
fingerprint is the first 16 characters of the hash, so a log line can be matched
to its account (``WHERE key_hash LIKE '<fingerprint>%'``) and reveals nothing of
the key. This module imports nothing of the bot: both ``bot.daisysim`` and
``bot.services`` use it.
"""

from __future__ import annotations

import hashlib

__all__ = ["FINGERPRINT_LENGTH", "key_fingerprint", "key_hash", "mask_key"]

FINGERPRINT_LENGTH = 16


def key_hash(api_key: str) -> str:
    """Stable, non-reversible id of a key (DaisySim keys are long random tokens):
    the sha256 hex digest of ``"daisybot-key:" + key``. Stored; never change it."""
    return hashlib.sha256(b"daisybot-key:" + api_key.encode("utf-8")).hexdigest()


def key_fingerprint(api_key: str) -> str:
    """A short, non-reversible id of a key that is safe to log: the start of
    :func:`key_hash`."""
    return key_hash(api_key)[:FINGERPRINT_LENGTH]


def mask_key(api_key: str) -> str:
    """``"sk_l…9f2a"``: first 4 + … + last 4; fewer characters for short keys.
    Shown to the key's owner (and stored as ``accounts.key_masked``); logs use
    :func:`key_fingerprint`."""
    if len(api_key) >= 16:
        return f"{api_key[:4]}…{api_key[-4:]}"
    if len(api_key) >= 8:
        return f"{api_key[:2]}…{api_key[-2:]}"
    return "…"
