"""Export / import of the chats (the playground keeps them across restarts)."""

from __future__ import annotations

import json

from bot.sandbox.fake_telegram.errors import JSON
from bot.sandbox.fake_telegram.state import BotState, Stored
from bot.sandbox.fake_telegram.users import get_user

STATE_VERSION = 1


def export_state(state: BotState) -> JSON:
    """The chats (users, messages as they are now, message-id counters, started /
    blocked, reply keyboard), the unconfirmed updates (payment updates included, so a
    restarted bot sees a successful_payment it never confirmed), the update-id and event
    counters and the Stars ledger (invoices, charges, transactions), as JSON. Deleted
    messages are left out entirely (their text may be a key the bot deleted); recorded
    requests, injections, callback queries, pre-checkout queries and webhook settings
    are not state a restart keeps."""
    chats: list[JSON] = []
    for chat in state.chats.values():
        u = chat.user
        chats.append(
            {
                "user": {
                    "id": u.id,
                    "first_name": u.first_name,
                    "username": u.username,
                    "language_code": u.language_code,
                    "last_name": u.last_name,
                },
                "messages": [
                    {"data": m.data, "from_bot": m.from_bot, "edits": m.edits}
                    for m in chat.messages.values()
                    if not m.deleted
                ],
                "next_message_id": chat.next_message_id,
                "started": chat.started,
                "blocked": chat.blocked,
                "reply_keyboard": chat.reply_keyboard,
            }
        )
    return json.loads(json.dumps({
        "version": STATE_VERSION,
        "next_update_id": state.next_update_id,
        "seq": state.seq,
        "updates": state.updates,
        "chats": chats,
        "stars": state.stars.export(),
    }))  # fmt: skip


def import_state(state: BotState, saved: JSON) -> None:
    """Restore what :func:`export_state` returned (before the bot polls): chats
    continue with their messages (so the bot can still edit them) and message
    ids, update ids continue, unconfirmed updates are delivered again. Users that
    exist already keep their identity; ``ValueError`` on a malformed state."""
    if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
        raise ValueError("not a FakeTelegram state (or another version)")
    try:
        for raw in saved["chats"]:
            info = raw["user"]
            user = get_user(
                state,
                int(info["id"]),
                first_name=str(info["first_name"]),
                username=info.get("username"),
                language_code=info.get("language_code"),
                last_name=info.get("last_name"),
            )
            chat = state.chats[user.id]
            for m in raw["messages"]:
                data = dict(m["data"])
                chat.messages[int(data["message_id"])] = Stored(
                    data=data, from_bot=bool(m["from_bot"]), edits=int(m.get("edits", 0))
                )
            chat.messages = dict(sorted(chat.messages.items()))
            chat.next_message_id = max(
                chat.next_message_id,
                int(raw["next_message_id"]),
                max(chat.messages, default=0) + 1,
            )
            chat.started = chat.started or bool(raw["started"])
            chat.blocked = bool(raw["blocked"])
            chat.reply_keyboard = raw.get("reply_keyboard")
        state.next_update_id = max(state.next_update_id, int(saved["next_update_id"]))
        known = {u["update_id"] for u in state.updates}
        restored = [dict(u) for u in saved["updates"] if u["update_id"] not in known]
        state.updates = sorted(state.updates + restored, key=lambda u: u["update_id"])
        state.seq = max(state.seq, int(saved["seq"]))
        state.stars.restore(saved.get("stars"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed FakeTelegram state: {exc!r}") from None
    state.notify()
