"""Is the bot receiving its updates? And what to do with an update PTB cannot decode.

* :class:`UpdateFeed` remembers when updates were last fetched: a ``getUpdates``
  answered 200 (a long poll that returns nothing counts: Telegram answered) or an
  authenticated webhook delivery. ``/healthz`` reads it (see :mod:`bot.health`).
* :class:`FeedRequest` is the HTTP request object PTB uses for ``getUpdates`` only
  (``ApplicationBuilder.get_updates_request``): it tells the feed about every poll,
  and turns an update that PTB cannot decode into a bare ``{"update_id": N}``.
  Without that, PTB logs the whole batch at CRITICAL (a user's pasted key with it)
  and, since the batch never decodes, fetches the same update again and again: one
  bad update would stall polling for everyone. The update is skipped, logged by id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.request import BaseRequest, HTTPXRequest, RequestData

if TYPE_CHECKING:
    from telegram._utils.types import ODVInput

__all__ = ["FeedRequest", "UpdateFeed", "decode_problem", "sanitize_updates"]

log = logging.getLogger("bot.updates")

# Time allowed for a getUpdates whose read timeout PTB did not pass explicitly.
_FALLBACK_POLL_SECONDS = 30.0


class UpdateFeed:
    """When updates were last fetched. ``now``: a monotonic clock (tests pass a fake)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._created = now()
        self.last_ok: float | None = None
        self.failures = 0  # getUpdates failures since the last success
        self._in_flight_since: float | None = None
        self._in_flight_timeout = 0.0
        # Webhook mode: whether the webhook server is listening (None: long polling).
        self.webhook_listening: bool | None = None

    # -- reports -----------------------------------------------------------------
    def poll_started(self, timeout: float | None) -> None:
        self._in_flight_since = self._now()
        self._in_flight_timeout = _FALLBACK_POLL_SECONDS if timeout is None else timeout

    def poll_finished(self, ok: bool) -> None:
        self._in_flight_since = None
        if ok:
            self.last_ok = self._now()
            self.failures = 0
        else:
            self.failures += 1

    def received(self) -> None:
        """An authenticated webhook delivery (or any other proof updates arrive)."""
        self.last_ok = self._now()
        self.failures = 0

    # -- the check -----------------------------------------------------------------
    def fresh(self, max_age: float) -> bool:
        """Updates were fetched within ``max_age`` seconds, or a long poll that follows
        a successful one is still within its own timeout (plus ``max_age``)."""
        now = self._now()
        if self._in_flight_since is not None and self.failures == 0:
            return now - self._in_flight_since <= self._in_flight_timeout + max_age
        reference = self.last_ok if self.last_ok is not None else self._created
        return now - reference <= max_age


def decode_problem(data: Any) -> str | None:
    """None when PTB can decode ``data`` as an Update, else the exception's type name
    (never its message: it may quote the update's text)."""
    try:
        Update.de_json(data, None)
    except Exception as exc:
        return type(exc).__name__
    return None


def sanitize_updates(payload: bytes) -> bytes:
    """A getUpdates answer with every undecodable update replaced by ``{"update_id": N}``
    (PTB then confirms it like any other and no handler matches it)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload  # PTB reports an unreadable answer itself, without the body
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        return payload
    clean: list[Any] = []
    changed = False
    for item in result:
        problem = decode_problem(item)
        if problem is None:
            clean.append(item)
            continue
        changed = True
        update_id = item.get("update_id") if isinstance(item, dict) else None
        if isinstance(update_id, int) and not isinstance(update_id, bool):
            log.warning("update %d could not be decoded (%s); skipped", update_id, problem)
            clean.append({"update_id": update_id})
        else:
            log.warning("an update without a valid update_id could not be decoded (%s); "
                        "skipped", problem)
    if not changed:
        return payload
    data["result"] = clean
    return json.dumps(data).encode()


class FeedRequest(BaseRequest):
    """The request object for getUpdates, reporting to an :class:`UpdateFeed`: wraps
    ``inner`` (the transport, see :mod:`bot.telegram.request`; PTB's HTTPXRequest with
    one connection when not given)."""

    def __init__(self, feed: UpdateFeed, inner: BaseRequest | None = None,
                 **kwargs: Any) -> None:
        if inner is None:
            kwargs.setdefault("connection_pool_size", 1)  # PTB's default for getUpdates
            inner = HTTPXRequest(**kwargs)
        self.inner = inner
        self.feed = feed

    @property
    def read_timeout(self) -> float | None:
        return self.inner.read_timeout

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        timeout = read_timeout if isinstance(read_timeout, int | float) else self.read_timeout
        self.feed.poll_started(timeout)
        ok = False
        try:
            code, payload = await self.inner.do_request(
                url, method, request_data, read_timeout, write_timeout, connect_timeout,
                pool_timeout,
            )
            ok = code == 200
            if ok:
                payload = sanitize_updates(payload)
            return code, payload
        finally:
            self.feed.poll_finished(ok)
