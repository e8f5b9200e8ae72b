"""Request parameters: form values are strings, so decode JSON for every non-string
parameter, and read integers / booleans / JSON objects the way the Bot API does."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from bot.sandbox.fake_telegram.errors import JSON, bad

STRING_PARAMS = frozenset(
    {
        "text",
        "parse_mode",
        "callback_query_id",
        "url",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "action",
        "language_code",
        "secret_token",
        "ip_address",
        "description",
        "short_description",
        "name",
        "caption",
        # payments (a payload "007" must stay a string)
        "title",
        "payload",
        "currency",
        "provider_token",
        "provider_data",
        "start_parameter",
        "photo_url",
        "error_message",
        "pre_checkout_query_id",
        "telegram_payment_charge_id",
    }
)


def normalise_params(raw: dict[str, Any]) -> JSON:
    """Form values are strings; decode JSON for everything that is not a string parameter."""
    out: JSON = {}
    for key, value in raw.items():
        if isinstance(value, str) and key not in STRING_PARAMS:
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out


def as_int(params: JSON, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())
    raise bad(f'field "{name}" must be of type Integer')


def as_bool(params: JSON, name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def as_json(params: JSON, name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise bad(f"can't parse {name} JSON object") from exc
    return value


def as_int_safe(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?\d+", s):
            return int(s)
    return None
