"""Settings parsing and validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from bot.config import FundingMode, Settings


def test_ids_lists_and_empty_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_IDS", "1, 2;3")
    monkeypatch.setenv("ALLOWED_USER_IDS", "")
    monkeypatch.setenv("HEALTH_PORT", "")  # copied from .env.example: means unset
    monkeypatch.setenv("FUNDING_MODE", "operator")
    s = Settings(_env_file=None)
    assert s.admin_ids == [1, 2, 3] and s.allowed_user_ids == []
    assert s.health_port is None and s.funding_mode is FundingMode.OPERATOR
    assert s.telegram_api_base == "https://api.telegram.org/bot"


def test_secrets_are_not_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "4242:do-not-print-me")
    monkeypatch.setenv("DAISYSIM_API_KEY", "sk_do_not_print")
    text = repr(Settings(_env_file=None))
    assert "do-not-print-me" not in text and "sk_do_not_print" not in text


@pytest.mark.parametrize("value", ["-1", "-100", "NaN", "Infinity", "1001"])
def test_markup_must_be_a_sane_percentage(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MARKUP_PERCENT", value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_markup_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKUP_PERCENT", "12.5")
    assert Settings(_env_file=None).markup_percent == Decimal("12.5")


@pytest.mark.parametrize("value", ["0", "-4", "NaN", "inf", "301"])
def test_daisysim_timeout_must_be_a_sane_deadline(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DAISYSIM_TIMEOUT_SECONDS", value)
    with pytest.raises(ValidationError, match="DAISYSIM_TIMEOUT_SECONDS"):
        Settings(_env_file=None)
    monkeypatch.setenv("DAISYSIM_TIMEOUT_SECONDS", "4")
    assert Settings(_env_file=None).daisysim_timeout_seconds == 4.0
