"""DATABASE_URL: it selects PostgreSQL, is checked, and its password never shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from bot import runner
from bot.config import Settings

TOKEN = "5151515:DatabaseUrlSecretToken_k9"
PASSWORD = "pg-pass-Wd81xq"


def test_database_url_selects_postgresql_and_is_a_secret() -> None:
    url = f"postgresql://bot:{PASSWORD}@db:5432/daisy"
    settings = Settings(_env_file=None, database_url=url)
    assert settings.database_target == url
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    assert Settings(_env_file=None, database_url="postgres://u@h/d").database_url is not None
    plain = Settings(_env_file=None, database_url="", database_path="x.sqlite3")
    assert plain.database_url is None and plain.database_target == "x.sqlite3"


def test_a_bad_database_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, database_url=f"mysql://bot:{PASSWORD}@db/daisy")
    assert "DATABASE_URL must be a postgresql://" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_model_level_settings_error_does_not_echo_the_token() -> None:
    # pydantic shows a model validator's whole input by default: the bot token too
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, bot_token=TOKEN, topup_packs_usd="1000")
    assert "TOPUP_PACKS_USD" in str(caught.value) and TOKEN not in str(caught.value)


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_BASE_URL", "http://127.0.0.1:9")  # never contacted
    monkeypatch.setenv("FUNDING_MODE", "own_key")
    monkeypatch.setenv("ENCRYPTION_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("WEBHOOK_URL", raising=False)
    monkeypatch.delenv("HEALTH_PORT", raising=False)


def test_an_unreachable_postgresql_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # no server on that socket: connection refused
    _env(monkeypatch, tmp_path, f"postgresql://bot:{PASSWORD}@/daisy?host={tmp_path}&port=9")
    assert runner.main([]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("daisybot: the PostgreSQL database postgresql://bot:***@")
    assert "cannot be reached or written" in lines[0] and "Check DATABASE_URL" in lines[0]
    assert PASSWORD not in err and TOKEN not in err and "Traceback" not in err


def test_a_missing_postgresql_database_is_one_clear_line(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _env(monkeypatch, tmp_path, postgres_url.replace("/t_", "/missing_t_", 1))
    assert runner.main([]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "does not exist" in lines[0], err
    assert lines[0].startswith("daisybot: the PostgreSQL database postgresql://")


async def test_check_writable_migrates_and_probes_postgresql(postgres_url: str) -> None:
    from storage import open_database
    from storage.health import HealthRepo, check_writable

    await check_writable(postgres_url)
    db = await open_database(postgres_url, migrate=False)
    try:
        assert await db.fetchval("SELECT COUNT(*) FROM health_probe") == 1
        assert HealthRepo(db).free_bytes() is None  # the server's disk, not ours
    finally:
        await db.close()
