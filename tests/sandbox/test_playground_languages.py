"""Playground users speak different languages: the picker lists each demo user with the
language_code their (fake) Telegram client sends, and the bot receives it as
``from.language_code`` in every update from that user (messages and button presses),
also when the chats were kept from an older run that had another language for them.

System clock, bounded event-driven waits (no timing assertions), as test_playground.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.sandbox import sim_state
from bot.sandbox.chat_store import CHATS_FILE
from bot.sandbox.playground import (
    FIRST_USER_ID,
    USER_LANGUAGES,
    USER_NAMES,
    Playground,
    PlaygroundOptions,
    _ascii_slug,
    start_playground,
)

WAIT = 15.0
SHIPPED = {"en", "ru", "es", "pt-br", "fa"}  # issue 12's languages
DARIUSH = FIRST_USER_ID + USER_NAMES.index("Dariush")


@pytest_asyncio.fixture
async def pg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Playground]:
    monkeypatch.setattr(sim_state, "WAITING_CACHE_SECONDS", 0.2)
    data = tmp_path / "data"
    data.mkdir()
    # a chats file from an older run, when Dariush's client said "en"
    (data / CHATS_FILE).write_text(
        json.dumps(
            {
                "version": 1,
                "chats": [
                    {
                        "user": {"id": DARIUSH, "first_name": "Dariush",
                                 "language_code": "en"},
                        "messages": [],
                        "next_message_id": 1,
                        "started": False,
                        "blocked": False,
                    }
                ],
                "next_update_id": 1,
                "updates": [],
                "seq": 0,
            }
        ),
        encoding="utf-8",
    )
    playground = await start_playground(
        PlaygroundOptions(
            port=0, data_dir=data, users=len(USER_NAMES), auto_sms=None, poll_interval=0.5
        )
    )
    try:
        yield playground
    finally:
        await playground.close()


def test_the_roster_covers_every_shipped_language() -> None:
    assert {lang for _, lang in USER_LANGUAGES} >= SHIPPED
    assert USER_NAMES[:3] == ("Alice", "Bob", "Carol")  # the default picker
    assert dict(USER_LANGUAGES)["Alice"] == "en"
    # --users 7 (the first seven) already covers every shipped language
    assert {lang for _, lang in USER_LANGUAGES[:7]} == SHIPPED
    assert len(set(USER_NAMES)) == len(USER_NAMES)
    assert _ascii_slug("Sofía") == "sofia"  # demo keys stay ASCII


async def test_picker_lists_languages_and_updates_carry_them(pg: Playground) -> None:
    async with aiohttp.ClientSession() as s, s.get(pg.url + "/api/users") as r:
        assert r.status == 200
        listed: list[dict[str, Any]] = (await r.json())["users"]
    assert [(u["name"], u["language_code"]) for u in listed] == list(USER_LANGUAGES)

    data_dir = Path(pg.options.data_dir)
    assert not (data_dir / (CHATS_FILE + ".broken")).exists()  # the old chats were loaded
    by_name = {u["name"]: u["id"] for u in listed}
    for name in ("Dariush", "Ana", "Sofía"):
        user = pg.fake.user(by_name[name])
        await user.send("/start")
        menu = await user.wait_for(lambda m: m.from_bot and bool(m.buttons), WAIT)
        await user.press(menu.buttons[0][0].text, message_id=menu.message_id)
        await pg.fake.wait_idle(timeout=WAIT)

    # what the bot was handed by getUpdates, per user
    seen: dict[int, list[tuple[str, str | None]]] = {}
    for call in pg.fake.calls:
        if call.method != "getUpdates" or call.status != 200:
            continue
        for upd in call.response["result"]:
            for kind in ("message", "callback_query"):
                if kind in upd:
                    sender = upd[kind]["from"]
                    seen.setdefault(sender["id"], []).append(
                        (kind, sender.get("language_code"))
                    )
    for name in ("Dariush", "Ana", "Sofía"):
        got = seen[by_name[name]]
        assert {kind for kind, _ in got} == {"message", "callback_query"}, got
        assert {lang for _, lang in got} == {dict(USER_LANGUAGES)[name]}, got

