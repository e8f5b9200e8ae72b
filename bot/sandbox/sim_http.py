"""HTTP helpers of the DaisySim simulator: the JSON envelope (Decimals become JSON
numbers at this boundary only), request bodies, and the fault effects applied to an
answer (a patched ``data`` field, a trickled body)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.sandbox.sim_state import Account, SimError


def to_json(value: Any) -> Any:
    """Decimals become JSON numbers rounded to 4 decimals (the JSON boundary only)."""
    if isinstance(value, Decimal):
        return float(round(value, 4))
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def json_response(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(to_json(payload)), status=status, content_type="application/json"
    )


def ok(data: Any, message: str = "OK") -> web.Response:
    return json_response({"success": True, "message": message, "data": data})


def fail(status: int, code: str, message: str, data: Any = None) -> web.Response:
    body: dict[str, Any] = {"success": False, "error": message, "code": code}
    if data is not None:
        body["data"] = data
    return json_response(body, status)


def validation_error(message: str) -> SimError:
    return SimError(422, "VALIDATION_ERROR", message)


async def json_body(request: web.Request) -> Any:
    """The JSON body, or ``None`` when absent/malformed (Laravel treats it as empty)."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


Handler = Callable[[Account, web.Request], Awaitable[web.Response]]


def apply_patch(data: Any, path: str, value: Any) -> bool:
    """Set ``value`` at ``path`` in a decoded answer's ``data``; True if applied.

    ``path`` is ``/``-separated. On an object a segment is a key (the last one is
    created if missing); on a list it is an index (``0``) or a selector
    ``key=value`` (the first element whose ``key`` reads as ``value``). Examples:
    ``amount_charged``; ``code=Signal/price``;
    ``code=sb_tg/providers/provider_id=2266/price``; ``orders/0/amount_charged``."""
    parts = path.split("/")
    node = data
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(node, dict):
            if last:
                node[part] = value
                return True
            node = node.get(part)
        elif isinstance(node, list):
            if "=" in part:
                key, _, wanted = part.partition("=")
                pos = next(
                    (i for i, item in enumerate(node)
                     if isinstance(item, dict) and str(item.get(key)) == wanted),
                    None,
                )
            else:
                try:
                    pos = int(part)
                except ValueError:
                    return False
                if not -len(node) <= pos < len(node):
                    pos = None
            if pos is None:
                return False
            if last:
                node[pos] = value
                return True
            node = node[pos]
        else:
            return False
    return False


def patch_answer(response: web.Response, patch: dict[str, Any]) -> web.Response:
    """The answer with ``patch`` applied to its ``data``. A Decimal value is sent
    as that exact JSON number (``Decimal("1E+30")`` -> ``1E+30``)."""
    assert response.text is not None
    payload = json.loads(response.text)
    raw: dict[str, str] = {}
    for n, (path, value) in enumerate(patch.items()):
        if isinstance(value, Decimal):
            marker = f"@@raw{n}@@"
            raw[json.dumps(marker)] = str(value)
            value = marker
        apply_patch(payload.get("data"), path, value)
    text = json.dumps(payload)
    for marker, number in raw.items():
        text = text.replace(marker, number)
    return web.Response(text=text, status=response.status, content_type="application/json")


async def trickle_body(
    request: web.Request, response: web.Response, interval: float
) -> web.StreamResponse:
    """Slow loris: the headers now, then the body one byte per ``interval`` s."""
    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(
        status=response.status, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    stream.content_length = len(body)
    await stream.prepare(request)
    try:
        for i in range(len(body)):
            await asyncio.sleep(interval)
            await stream.write(body[i : i + 1])
        await stream.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client gave up: the effect stands, nobody hears the rest
    return stream
