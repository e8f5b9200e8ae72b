"""API-key handling: Fernet encryption at rest, a lookup hash, a masked view.

Keys are never logged; only :func:`mask_key` output may appear anywhere visible.
"""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["ConfigurationError", "KeyVault", "key_hash", "mask_key", "valid_key_format"]


class ConfigurationError(RuntimeError):
    """The settings do not allow the engine to start (clear message, no secrets)."""


class KeyVault:
    """Encrypts / decrypts users' DaisySim keys with the configured Fernet key."""

    def __init__(self, fernet_key: str | bytes) -> None:
        raw = fernet_key.encode("ascii") if isinstance(fernet_key, str) else fernet_key
        try:
            self._fernet = Fernet(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes; "
                "generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from exc

    def encrypt(self, api_key: str) -> str:
        return self._fernet.encrypt(api_key.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str | None:
        """The key, or None if the token cannot be decrypted (wrong ENCRYPTION_KEY)."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None


def key_hash(api_key: str) -> str:
    """Stable, non-reversible id of a key (DaisySim keys are long random tokens)."""
    return hashlib.sha256(b"daisybot-key:" + api_key.encode("utf-8")).hexdigest()


def mask_key(api_key: str) -> str:
    """``"sk_l…9f2a"``: first 4 + … + last 4; fewer characters for short keys."""
    if len(api_key) >= 16:
        return f"{api_key[:4]}…{api_key[-4:]}"
    if len(api_key) >= 8:
        return f"{api_key[:2]}…{api_key[-2:]}"
    return "…"


def valid_key_format(api_key: str) -> bool:
    """Plausible bearer token: 8..512 printable ASCII characters, no whitespace."""
    return 8 <= len(api_key) <= 512 and all(33 <= ord(ch) < 127 for ch in api_key)
