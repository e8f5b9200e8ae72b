"""getUpdates (long polling, one poller at a time, 409 while a webhook is set) and the
webhook methods (setWebhook's URL / port / secret rules, deleteWebhook, getWebhookInfo)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from urllib.parse import urlsplit

from bot.sandbox.fake_telegram.errors import (
    CONFLICT_OTHER_POLL,
    CONFLICT_WEBHOOK,
    JSON,
    SECRET_TOKEN_BAD_CHARS,
    SECRET_TOKEN_TOO_LONG,
    WEBHOOK_BAD_PORT,
    WEBHOOK_HTTPS_REQUIRED,
    TelegramApiError,
    bad,
)
from bot.sandbox.fake_telegram.params import as_bool, as_int, as_json
from bot.sandbox.fake_telegram.state import BotState
from bot.sandbox.fake_telegram.urls import is_local_http
from bot.sandbox.fake_telegram.webhook import start_delivery, stop_delivery

_WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]*")


async def get_updates(state: BotState, p: JSON) -> list[JSON]:
    if state.webhook.url:
        raise TelegramApiError(409, CONFLICT_WEBHOOK)
    offset = as_int(p, "offset", 0) or 0
    limit = as_int(p, "limit", 100) or 100
    limit = min(max(limit, 1), 100)
    raw_timeout = p.get("timeout", 0)
    try:
        timeout = max(float(raw_timeout or 0), 0.0)
    except (TypeError, ValueError) as exc:
        raise bad('field "timeout" must be of type Integer') from exc
    allowed = as_json(p, "allowed_updates")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise bad("can't parse allowed_updates JSON array")
        state.allowed_updates = list(allowed)
    state.confirm(offset)
    token = object()
    state.poller = token
    state.notify()  # a poll that is still waiting is now superseded
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if state.closing:
            return []
        if state.poller is not token:
            raise TelegramApiError(409, CONFLICT_OTHER_POLL)
        updates = state.deliverable(limit)
        remaining = deadline - loop.time()
        if updates or remaining <= 0:
            if state.poller is token:
                state.poller = None
            return updates
        event = state.changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)


async def set_webhook(state: BotState, p: JSON) -> bool:
    url = p.get("url") or ""
    if not isinstance(url, str):
        raise bad('field "url" must be of type String')
    secret = p.get("secret_token") or ""
    if not isinstance(secret, str):
        raise bad('field "secret_token" must be of type String')
    if url:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise bad("bad webhook: Wrong port number specified in the URL") from exc
        if parts.scheme.lower() != "https" and not is_local_http(url):
            raise bad(WEBHOOK_HTTPS_REQUIRED)
        if not parts.hostname:
            raise bad("bad webhook: Failed to resolve host: Name or service not known")
        if port is not None and port not in _WEBHOOK_PORTS and not is_local_http(url):
            raise bad(WEBHOOK_BAD_PORT)
    if len(secret) > 256:
        raise bad(SECRET_TOKEN_TOO_LONG)
    if not _SECRET_TOKEN_RE.fullmatch(secret):
        raise bad(SECRET_TOKEN_BAD_CHARS)
    allowed = as_json(p, "allowed_updates")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise bad("can't parse allowed_updates JSON array")
        state.allowed_updates = list(allowed)  # shared with getUpdates, like Telegram
    max_connections = as_int(p, "max_connections", 40) or 40
    if not 1 <= max_connections <= 100:
        raise bad("bad webhook: max_connections must be between 1 and 100")
    await stop_delivery(state)
    changed = url != state.webhook.url
    state.webhook.url = url
    state.webhook.secret = secret or None
    state.webhook.info = {"max_connections": max_connections} if url else {}
    if url and state.allowed_updates is not None:
        state.webhook.info["allowed_updates"] = list(state.allowed_updates)
    if url and isinstance(p.get("ip_address"), str):
        state.webhook.info["ip_address"] = p["ip_address"]
    if changed:
        state.webhook.last_error = None
    if as_bool(p, "drop_pending_updates"):
        state.updates.clear()
    start_delivery(state)
    state.notify()
    return True


async def delete_webhook(state: BotState, p: JSON) -> bool:
    await stop_delivery(state)
    state.webhook.url = ""
    state.webhook.info = {}
    state.webhook.secret = None
    state.webhook.last_error = None
    if as_bool(p, "drop_pending_updates"):
        state.updates.clear()
    state.notify()
    return True


def get_webhook_info(state: BotState, p: JSON) -> JSON:
    info: JSON = {
        "url": state.webhook.url,
        "has_custom_certificate": False,
        "pending_update_count": len(state.updates),
    }
    if state.webhook.url:
        info.update(state.webhook.info)
        if state.webhook.last_error is not None:
            info["last_error_date"], info["last_error_message"] = state.webhook.last_error
    return info
