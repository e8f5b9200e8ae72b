"""API-key handling: Fernet encryption at rest and the key format check.

How a key is named (the stored lookup hash, the masked view shown to its owner,
the log-safe fingerprint) lives in :mod:`bot.daisysim.keys`; ``key_hash`` and
``mask_key`` are re-exported here. Keys are never logged.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from bot.daisysim.keys import key_hash, mask_key

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


def valid_key_format(api_key: str) -> bool:
    """Plausible bearer token: 8..512 printable ASCII characters, no whitespace."""
    return 8 <= len(api_key) <= 512 and all(33 <= ord(ch) < 127 for ch in api_key)
