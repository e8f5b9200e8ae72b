"""Settings, read from the environment and an optional ``.env`` file.

Every setting is listed, with a comment, in ``.env.example``. Secrets are
``SecretStr`` so that they never appear in a repr or a log line.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class FundingMode(StrEnum):
    OWN_KEY = "own_key"
    OPERATOR = "operator"


def _parse_id_list(value: object) -> object:
    """Accept ``"1,2, 3"`` (and a JSON-ish list) for id lists."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        text = value.strip().strip("[]")
        return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # --- Telegram ---
    bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org"

    # --- DaisySim ---
    daisysim_base_url: str = "https://daisysim.com/api/v1/server7"
    daisysim_api_key: SecretStr | None = None  # operator key (operator mode)
    daisysim_country: str = "USA"
    daisysim_timeout_seconds: float = 20.0

    # --- Funding ---
    funding_mode: FundingMode = FundingMode.OWN_KEY
    markup_percent: Decimal = Decimal("0")

    # --- Storage / secrets ---
    database_path: str = "daisybot.sqlite3"
    encryption_key: SecretStr | None = None  # Fernet key (urlsafe base64, 32 bytes)

    # --- Access ---
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    allowed_user_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # --- Activation timing ---
    give_up_minutes: float = 20.0
    cancel_lock_seconds: float = 180.0
    poll_interval_seconds: float = 15.0

    # --- UI ---
    default_locale: str = "en"
    conversation_timeout_seconds: float = 600.0

    # --- Deployment ---
    log_level: str = "INFO"
    webhook_url: str | None = None  # set to use webhook mode instead of long polling
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    health_port: int | None = None  # serve GET /healthz on this port when set

    @field_validator("admin_ids", "allowed_user_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        return _parse_id_list(value)

    @field_validator("markup_percent", mode="before")
    @classmethod
    def _markup(cls, value: object) -> object:
        if isinstance(value, float):
            return Decimal(str(value))
        return value

    @property
    def telegram_api_base(self) -> str:
        """Base URL in the form PTB expects (``.../bot``)."""
        return self.telegram_base_url.rstrip("/") + "/bot"

    @property
    def telegram_file_base(self) -> str:
        return self.telegram_base_url.rstrip("/") + "/file/bot"

    @property
    def give_up_seconds(self) -> float:
        return self.give_up_minutes * 60.0
