"""The API key texts (own-key mode): prompt, link, remove.

English, HTML (see :mod:`bot.telegram.texts`, the one entry point). Key names
are stable message ids: never rename one.
"""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
    "key_prompt": (
        "🔑 Send me your <b>DaisySim API key</b> as a message.\n\n"
        "I delete your message right away, check the key with DaisySim and store it "
        "encrypted. /cancel to stop."
    ),
    "key_current": "🔑 Linked key: <code>{masked}</code>",
    "key_prompt_replace": "Send a new key to replace it, or /cancel.",
    "key_checking": "⏳ Checking the key with DaisySim…",
    "key_linked": (
        "✅ Key linked: <code>{masked}</code>\nDaisySim balance: <b>{balance}</b>\nAccount: {email}"
    ),
    "key_invalid": "❌ DaisySim rejected that key. Send another one, or /cancel.",
    "key_malformed": "That doesn't look like an API key. Send just the key, or /cancel.",
    "key_delete_failed": (
        "⚠️ I couldn't delete your message with the key — please delete it yourself."
    ),
    "key_remove_confirm": (
        "Remove the linked key <code>{masked}</code>? Numbers you already bought keep working."
    ),
    "key_removed": "🗑 Key removed. Use /key to link one again.",
    "key_kept": "Okay, the key stays linked.",
    "key_none": "No key is linked.",
    "key_operator_mode": (
        "This bot pays with the operator's DaisySim account — you don't need a key."
    ),
    "key_timeout": "⌛ I stopped waiting for the key. Use /key to try again.",
    "key_paste_deleted": (
        "🔑 That looks like a DaisySim API key — I deleted your message so it doesn't stay "
        "in the chat, and I'm linking the key to your account."
    ),
    "key_paste_intro": (
        "🔑 That looks like a DaisySim API key — I'm linking it to your account."
    ),
    "key_paste_invalid": (
        "❌ DaisySim rejected that key, so nothing was linked. Use /key to try another one."
    ),
    "btn_remove_key": "🗑 Remove key",
    "btn_remove_yes": "Yes, remove it",
    "btn_remove_no": "No, keep it",
}
