"""Webhook delivery: when setWebhook's host is this machine, updates are POSTed to it
one at a time, in order, with the secret-token header, and retried until a 2xx (as
Telegram does). Other hosts are never contacted: their updates stay pending."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import aiohttp

from bot.sandbox.fake_telegram.snapshots import WebhookDelivery
from bot.sandbox.fake_telegram.state import BotState
from bot.sandbox.fake_telegram.urls import LOOPBACK_HOSTS


def start_delivery(state: BotState) -> None:
    url = state.webhook.url
    if state.webhook.task is not None or not state.running or not url:
        return
    if (urlsplit(url).hostname or "").lower() not in LOOPBACK_HOSTS:
        return  # never contact another host: its updates stay pending
    state.webhook.task = asyncio.get_running_loop().create_task(
        deliver(state, url, state.webhook.secret), name="fake-telegram-webhook"
    )


async def stop_delivery(state: BotState) -> None:
    task, state.webhook.task = state.webhook.task, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def deliver(state: BotState, url: str, secret: str | None) -> None:
    """POST pending updates to the webhook one at a time, oldest first, until it is
    changed or deleted; an update is confirmed by a 2xx answer, else retried."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
    delay = state.webhook.retry_delay
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not state.closing:
            event = state.changed
            batch = state.deliverable(1)
            if not batch:
                await event.wait()
                continue
            update = batch[0]
            status: int | None = None
            try:
                async with session.post(url, json=update, headers=headers) as response:
                    status = response.status
                    await response.read()
                    error = f"Wrong response from the webhook: {status} {response.reason}"
            except TimeoutError:
                error = "Read timeout expired"
            except aiohttp.ClientConnectorError:
                error = "Connection refused"
            except (aiohttp.ClientError, OSError) as exc:
                error = f"Connection failed: {type(exc).__name__}"
            ok = status is not None and 200 <= status < 300
            uid = update["update_id"]
            state.webhook.deliveries.append(WebhookDelivery(uid, status, None if ok else error))
            if ok:
                state.updates = [u for u in state.updates if u["update_id"] != uid]
                delay = state.webhook.retry_delay
                state.notify()
                continue
            state.webhook.last_error = (int(state.now()), error)
            state.notify()
            await asyncio.sleep(delay)
            delay = min(delay * 2, state.webhook.retry_delay * 10)
