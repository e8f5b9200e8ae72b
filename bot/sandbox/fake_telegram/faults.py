"""Injected failures: error replies (a count or a storm window on the fake's clock) and
dropped responses (the call takes effect, the answer never arrives)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.sandbox.fake_telegram.errors import JSON, TelegramApiError
from bot.sandbox.fake_telegram.methods import canonical_name
from bot.sandbox.fake_telegram.params import as_int_safe
from bot.sandbox.fake_telegram.state import BotState

DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: injected failure",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: injected failure",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass
class InjectedError:
    method: str  # canonical method name, or "*"
    status: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None = None
    drop: bool = False  # the call takes effect, then the connection is cut (no answer)
    until: float | None = None  # a time window (fake's clock) instead of a count
    remaining_retry: bool = False  # 429 retry_after = seconds left in the window

    def reply(self, now: float | None = None) -> TelegramApiError:
        retry_after = self.retry_after
        description = self.description
        if self.remaining_retry and self.until is not None and now is not None:
            retry_after = max(1, math.ceil(self.until - now))
            description = f"Too Many Requests: retry after {retry_after}"
        params = {"retry_after": retry_after} if retry_after is not None else None
        return TelegramApiError(self.status, description, params)

    def active(self, now: float) -> bool:
        return now < self.until if self.until is not None else self.remaining > 0


class Faults:
    """The injected failures, in the order they were added (the first match wins)."""

    def __init__(self, state: BotState) -> None:
        self.state = state
        self.injected: list[InjectedError] = []

    def inject_error(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = None,
        count: int = 1,
        description: str | None = None,
        chat_id: int | None = None,
        for_seconds: float | None = None,
    ) -> InjectedError:
        """See :meth:`FakeTelegram.inject_error`."""
        canonical = "*" if method == "*" else canonical_name(method)
        remaining_retry = status == 429 and retry_after is None and for_seconds is not None
        if status == 429 and retry_after is None:
            retry_after = max(1, math.ceil(for_seconds)) if for_seconds is not None else 1
        if description is None:
            if status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        inj = InjectedError(canonical, status, description, retry_after, count, chat_id)
        if for_seconds is not None:
            inj.until = self.state.now() + for_seconds
            inj.remaining_retry = remaining_retry
        self.injected.append(inj)
        return inj

    def drop_response(
        self, method: str, *, count: int = 1, chat_id: int | None = None
    ) -> InjectedError:
        """See :meth:`FakeTelegram.drop_response`."""
        canonical = "*" if method == "*" else canonical_name(method)
        inj = InjectedError(canonical, 0, "", None, count, chat_id, drop=True)
        self.injected.append(inj)
        return inj

    def clear(self) -> None:
        self.injected.clear()

    def take(self, method: str, params: JSON) -> InjectedError | None:
        """The injection that applies to this call, if any (a counted one is used up)."""
        now = self.state.now()
        for inj in self.injected:
            if not inj.active(now):
                continue
            if inj.method == "*" and method == "getUpdates":
                continue
            if inj.method not in ("*", method):
                continue
            if inj.chat_id is not None and as_int_safe(params.get("chat_id")) != inj.chat_id:
                continue
            if inj.until is None:
                inj.remaining -= 1
            return inj
        return None
