"""An update PTB cannot decode: skipped by id, never logged, never stalls polling.

Before: PTB logged the whole batch at CRITICAL ("Received data was [...]", a pasted
key with it) and, the batch never decoding, fetched the same update again forever.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.logging_setup import install_redaction
from tests import texts
from tests.e2e.conftest import WAIT, Harness

PASTED_KEY = "sk_live_PastedByMistake_7d1c0b9a8f6e5d4c"
TEXT = "Zq-private-message-text-41"
LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]


def undecodable(user_id: int) -> dict[str, Any]:
    """A message PTB fails on (its date is a string) carrying a key and a text."""
    user = {"id": user_id, "is_bot": False, "first_name": "Eve"}
    return {
        "message": {
            "message_id": 99,
            "date": f"soon {PASTED_KEY}",
            "chat": {"id": user_id, "type": "private", "first_name": "Eve"},
            "from": user,
            "text": f"{TEXT} my key is {PASTED_KEY}",
        }
    }


def _rendered(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return "\n".join(formatter.format(r) for r in records)


async def test_undecodable_update_is_skipped_by_id_and_logged_without_content(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad_id = h.fake.push_raw_update(undecodable(5))
    alice = h.user()
    await alice.send("/start")  # after the bad update: polling must get past it
    await alice.wait_for(texts.text("menu_title"), WAIT)
    await h.settle()
    text = _rendered(caplog.records)
    assert PASTED_KEY not in text and TEXT not in text
    assert f"update {bad_id} could not be decoded (TypeError); skipped" in text
    assert h.fake.pending_updates == []  # confirmed: never fetched again
    assert "Getting updates: [" in text  # the ids-only DEBUG line is kept


@pytest.mark.parametrize("level", LEVELS, ids=logging.getLevelName)
def test_telegram_records_never_carry_update_content_at_any_level(
    level: int, caplog: pytest.LogCaptureFixture
) -> None:
    """What PTB logs when it cannot decode updates (polling: telegram.Bot with the
    raw batch; webhook: the Updater with the dict; both with the exception), at
    every level, keeps the update ids and the exception types only."""
    install_redaction()
    caplog.set_level(logging.DEBUG)
    payload = {"update_id": 77, **undecodable(5)}
    try:
        int(f"{TEXT} {PASTED_KEY}")  # an exception whose message quotes the data
    except ValueError as exc:
        error = exc
    logging.getLogger("telegram.Bot").log(
        level, "Error while parsing updates! Received data was %r", [payload], exc_info=error
    )
    logging.getLogger("telegram.ext.Updater").log(
        level, "Something went wrong processing the data received from Telegram. "
        "Received data was *not* processed! Received data was: %r", payload, exc_info=error,
    )
    logging.getLogger("telegram.ext.Updater").log(
        level, "Webhook received data: %s", f'{{"text": "{TEXT}"}}'
    )
    logging.getLogger("telegram.ext.Updater").log(
        level, "Request had the wrong secret token: %s", PASTED_KEY
    )
    [bot_line, updater_line, webhook_line, secret_line] = caplog.records[-4:]
    text = _rendered([bot_line, updater_line, webhook_line, secret_line])
    assert PASTED_KEY not in text and TEXT not in text
    assert "[update ids [77], content not logged]" in bot_line.getMessage()
    assert "[update ids [77], content not logged]" in updater_line.getMessage()
    assert "builtins.ValueError: (message not logged)" in text  # the type is kept
    assert webhook_line.getMessage() == "Webhook received data (not logged)"
    assert secret_line.getMessage() == "Request had the wrong secret token (not logged)"
