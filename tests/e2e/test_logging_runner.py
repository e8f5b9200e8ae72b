"""Log redaction (bot/logging_setup.py) and the runner's friendly failures."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot import runner
from bot.logging_setup import RedactingFilter, redact, register_secret

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_redact_tokens_bearer_and_registered_secrets() -> None:
    register_secret("sk_live_supersecret_0001")
    register_secret("abc")  # too short to be a secret: ignored
    text = (
        f"GET https://api.telegram.org/bot{TOKEN}/getMe Authorization: Bearer abc.def-ghi "
        "key=sk_live_supersecret_0001 abc"
    )
    out = redact(text)
    assert TOKEN not in out and "abc.def-ghi" not in out and "sk_live_supersecret_0001" not in out
    assert out.endswith(" abc") and out.count("[REDACTED]") == 3


def test_records_are_scrubbed_for_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    register_secret("sk_live_supersecret_0002")
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("some.library")
    log.info("url=%s key=%s", f"/bot{TOKEN}/x", "sk_live_supersecret_0002")
    try:
        raise RuntimeError("failed with sk_live_supersecret_0002")
    except RuntimeError:
        log.exception("boom")
    logging.getLogger("telegram.Bot").debug(
        "Calling Bot API endpoint `%s` with parameters `%s`", "sendMessage",
        {"text": "my key is sk_unregistered_value_123"},
    )
    text = caplog.text
    assert "sk_live_supersecret_0002" not in text and TOKEN not in text
    assert "sk_unregistered_value_123" not in text
    assert "Bot API endpoint `sendMessage` (payload not logged)" in text
    assert "RuntimeError" in text  # tracebacks are kept, scrubbed


def test_filter_scrubs_preexisting_records() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (TOKEN,), None)
    RedactingFilter().filter(record)
    assert TOKEN not in record.getMessage()


def test_runner_without_token_fails_friendly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    assert runner.main([]) == 2
    assert "BOT_TOKEN is not set" in capsys.readouterr().err


def test_runner_invalid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("FUNDING_MODE", "free_money")
    assert runner.main([]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err and TOKEN not in err


def test_runner_reports_configuration_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ENCRYPTION_KEY", "DAISYSIM_API_KEY", "WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("FUNDING_MODE", "own_key")
    monkeypatch.setenv("TELEGRAM_BASE_URL", "http://127.0.0.1:9")  # never contacted
    assert runner.main([]) == 2
    err = capsys.readouterr().err
    assert "ENCRYPTION_KEY" in err and TOKEN not in err


def test_chatty_libraries_stay_quiet_even_at_debug() -> None:
    import logging

    from bot.logging_setup import QUIET_LOGGERS, configure_logging

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        configure_logging("DEBUG", [])
        for name in ("httpx", "httpcore", "aiosqlite"):
            assert name in QUIET_LOGGERS
            assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
