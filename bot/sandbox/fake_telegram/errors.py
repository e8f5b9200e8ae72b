"""Error replies of the fake Bot API and Telegram's own descriptions."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)
WEBHOOK_HTTPS_REQUIRED = "bad webhook: An HTTPS URL must be provided for webhook"
WEBHOOK_BAD_PORT = "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
SECRET_TOKEN_TOO_LONG = "secret token is too long"
SECRET_TOKEN_BAD_CHARS = "secret token contains unallowed characters"


class TelegramApiError(Exception):
    """An error reply of the Bot API (``ok: false``)."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad(description: str) -> TelegramApiError:
    """A 400 with Telegram's "Bad Request: " prefix."""
    return TelegramApiError(400, f"Bad Request: {description}")


class EntityParseError(ValueError):
    """Text could not be parsed with the given parse_mode (message without the prefix)."""
