"""Logging configuration with secret redaction.

Secrets (the bot token, the operator's DaisySim key, every key a user links)
must never reach a log line. Three layers make sure of that:

* :func:`register_secret` adds a string to a process-wide set; every log record
  created afterwards has its message (and traceback text) scrubbed of it. This is
  done in the *record factory*, so it applies to every handler — including
  handlers added later, such as pytest's ``caplog``.
* Generic patterns are always scrubbed: Telegram bot tokens (``123:ABC...``)
  and ``Authorization: Bearer ...`` values.
* No record of python-telegram-bot's loggers carries an update's content, at any
  level: users' raw messages may contain a key pasted before the bot knew it was
  one. The Bot API payload debug lines (``Calling Bot API endpoint ... with
  parameters ...`` / ``... finished with return value ...``) keep the endpoint
  only; any JSON payload argument (the batch PTB logs at CRITICAL when it cannot
  decode an update, say) is replaced by its update ids; the webhook lines that
  quote a request's body or secret keep their prefix only; and a traceback of an
  exception that is not a Telegram API error keeps its frames and exception types
  but not their messages (a decoding error may quote the data).

httpx/httpcore request logs (their URLs contain the bot token) are raised to
WARNING.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import Any

__all__ = [
    "RedactingFilter",
    "configure_logging",
    "install_redaction",
    "redact",
    "register_secret",
]

REDACTED = "[REDACTED]"
_MIN_SECRET_LEN = 6

_BOT_TOKEN_RE = re.compile(r"(?<!\d)\d{5,16}:[A-Za-z0-9_-]{30,}")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s'\",}]+")
_BOT_API_PAYLOAD_PREFIXES = ("Calling Bot API endpoint", "Call to Bot API endpoint")
# PTB webhook lines that quote a request's raw body or the (wrong) secret it carried.
_QUOTING_PREFIXES = ("Webhook received data", "Request had the wrong secret token")
NOT_LOGGED = "(message not logged)"

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False
_base_factory: Any = None


def register_secret(secret: str | None) -> None:
    """Scrub ``secret`` from every log record created from now on."""
    if not secret:
        return
    value = secret.strip()
    if len(value) < _MIN_SECRET_LEN:
        return
    with _lock:
        _secrets.add(value)
    install_redaction()


def redact(text: str) -> str:
    """Return ``text`` with every known secret and token-like string replaced."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _BOT_TOKEN_RE.sub(REDACTED, text)
    return _BEARER_RE.sub(lambda m: m.group(1) + REDACTED, text)


def _summarise(arg: object) -> object:
    """Telegram updates/messages carry users' raw text: log their ids only."""
    update_id = getattr(arg, "update_id", None)
    if update_id is not None and type(arg).__name__ == "Update":
        return f"Update(update_id={update_id}, content not logged)"
    if type(arg).__name__ in ("Message", "CallbackQuery") and type(arg).__module__.startswith(
        "telegram"
    ):
        return f"{type(arg).__name__}(content not logged)"
    return arg


def _payload_summary(arg: object) -> object:
    """A raw JSON payload (dict/list) in a telegram record: its update ids only."""
    if not isinstance(arg, dict | list | tuple):
        return arg
    if all(isinstance(i, int) for i in arg):
        return arg  # ids ("Getting updates: [1001, 1002]")
    items = arg if isinstance(arg, list | tuple) else [arg]
    ids = [i.get("update_id") for i in items if isinstance(i, dict) and "update_id" in i]
    if ids:
        return f"[update ids {ids}, content not logged]"
    return "[payload not logged]"


def _is_telegram_error(exc: BaseException | None) -> bool:
    return exc is not None and any(
        c.__module__.startswith("telegram") for c in type(exc).__mro__
    )


def _traceback_without_messages(exc: BaseException) -> str:
    """Frames and exception types of ``exc`` and its causes, no exception messages."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not c for c in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts = [
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(e.__traceback__))
        + f"{type(e).__module__}.{type(e).__qualname__}: {NOT_LOGGED}"
        for e in reversed(chain)
    ]
    return "\n\nwhich led to:\n\n".join(parts)


def _scrub_telegram_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        if record.msg.startswith(_BOT_API_PAYLOAD_PREFIXES) and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            endpoint = args[0] if args else "?"
            record.msg = "Bot API endpoint `%s` (payload not logged)"
            record.args = (endpoint,)
        for prefix in _QUOTING_PREFIXES:
            if record.msg.startswith(prefix):
                record.msg = prefix + " (not logged)"
                record.args = None
    if isinstance(record.args, dict):  # logging's form for one mapping argument
        if "%(" in str(record.msg):  # named formatting: not a payload we can keep
            record.msg, record.args = str(record.msg) + " [payload not logged]", None
        else:
            record.args = (_payload_summary(record.args),)
    elif isinstance(record.args, tuple):
        record.args = tuple(_payload_summary(a) for a in record.args)
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        exc = record.exc_info[1]
        if exc is not None and not _is_telegram_error(exc):
            record.exc_text = _traceback_without_messages(exc)


def _scrub_record(record: logging.LogRecord) -> None:
    if record.name.startswith("telegram"):
        _scrub_telegram_record(record)
    if isinstance(record.args, tuple) and record.args:
        record.args = tuple(_summarise(a) for a in record.args)
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep the raw template only
        message = str(record.msg)
    cleaned = redact(message)
    if cleaned != message or record.args:
        record.msg = cleaned
        record.args = None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _base_factory(*args, **kwargs)
    _scrub_record(record)
    return record


def install_redaction() -> None:
    """Install the redacting log-record factory (idempotent)."""
    global _installed, _base_factory
    with _lock:
        if _installed:
            return
        _base_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_factory)
        _installed = True


class RedactingFilter(logging.Filter):
    """Handler filter: scrubs records that were created before redaction was
    installed, or by loggers that build records by hand (``makeRecord`` still
    goes through the factory, but third-party handlers may not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_record(record)
        return True


def configure_logging(level: str | int = "INFO", secrets: Iterable[str | None] = ()) -> None:
    """Configure root logging for ``daisybot run``: one stderr handler with a
    redacting filter, quiet HTTP client loggers, secrets registered."""
    install_redaction()
    for secret in secrets:
        register_secret(secret)
    root = logging.getLogger()
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO
    root.setLevel(level)
    if not any(getattr(h, "_daisybot", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        handler.addFilter(RedactingFilter())
        handler._daisybot = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    quiet_http_loggers()


QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "aiosqlite")


def quiet_http_loggers() -> None:
    """httpx/httpcore log every request URL at INFO — URLs that hold the bot token;
    aiosqlite logs every SQL statement with its parameters at DEBUG (users' data,
    encrypted keys). Both stay at WARNING whatever LOG_LEVEL says."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
