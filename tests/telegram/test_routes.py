"""Handler registration (bot.telegram.routes): every button reaches the handler of
its callback type, through patterns derived from the types' grammars; the key
feature exists only when users bring their keys."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot.app import build_application
from bot.config import FundingMode, Settings
from bot.services.api import EngineAPI
from bot.telegram.buy.callbacks import BUY_TYPES
from bot.telegram.common.callbacks import CallbackData, CallbackError, parse_any
from bot.telegram.context import DaisyApp
from bot.telegram.history.callbacks import HistCb
from bot.telegram.keys.callbacks import KeyCb
from bot.telegram.keys.handlers import key_paste, operator_key_command
from bot.telegram.menu.callbacks import MenuCb, Noop
from bot.telegram.orders.callbacks import OrderCb
from bot.telegram.routes import BUY_GROUP, CALLBACK_TYPES, KEY_GROUP, MAIN_GROUP


def _app(own_key: bool) -> DaisyApp:
    if own_key:
        settings = Settings(_env_file=None, bot_token="1:x", funding_mode=FundingMode.OWN_KEY,
                            encryption_key=Fernet.generate_key().decode())
    else:
        settings = Settings(_env_file=None, bot_token="1:x", funding_mode=FundingMode.OPERATOR,
                            daisysim_api_key="sk_operator_0123456789")
    # Registration asks the engine one question; nothing is started here.
    engine = cast(EngineAPI, SimpleNamespace(users_bring_keys=own_key))
    return build_application(settings, engine=engine)


@pytest.fixture(scope="module", params=[True, False], ids=["own_key", "operator"])
def app(request: pytest.FixtureRequest) -> DaisyApp:
    return _app(bool(request.param))


def _callback_handlers(app: DaisyApp, group: int) -> list[CallbackQueryHandler[Any, Any]]:
    return [h for h in app.handlers[group] if isinstance(h, CallbackQueryHandler)]


def _routed(app: DaisyApp, data: str) -> Any:
    """The callback the main group runs for ``data`` (PTB: the first handler whose
    pattern matches)."""
    for handler in _callback_handlers(app, MAIN_GROUP):
        pattern = handler.pattern
        if pattern is None or (isinstance(pattern, re.Pattern) and pattern.match(data)):
            return handler.callback
    raise AssertionError("the main group has a catch-all")


def _name(callback: Any) -> str:
    return str(getattr(callback, "__wrapped__", callback).__name__)


EXPECTED = {
    MenuCb: "menu_callback",
    OrderCb: "order_callback",
    HistCb: "history_callback",
    Noop: "noop_callback",
}

strings = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["menu:home", "menu:buy", "noop", "order:ref:3", "act:cancel:9",
                     "hist:all:2", "key:rm", "key:set", "buy:list:2", "buy:svc:sb_wa",
                     "buy:ok:Signal:-:ab12z"]).flatmap(
        lambda d: st.tuples(st.integers(0, len(d)), st.text(max_size=4)).map(
            lambda p: d[: p[0]] + p[1])),
)


@given(data=strings)
def test_every_press_reaches_the_handler_of_its_type(app: DaisyApp, data: str) -> None:
    try:
        parsed: CallbackData | None = parse_any(data, CALLBACK_TYPES)
    except CallbackError:
        parsed = None
    name = _name(_routed(app, data))
    if parsed is None or isinstance(parsed, BUY_TYPES):
        # Buy buttons belong to the buy flow (group 2), which always takes them.
        assert name == "stale_callback", data
    elif isinstance(parsed, KeyCb):
        own_key = any(isinstance(h, ConversationHandler) and h.name == "key"
                      for h in app.handlers[KEY_GROUP])
        assert name == ("key_callback" if own_key else "operator_key_command"), data
    else:
        assert name == EXPECTED[type(parsed)], data


def test_the_buy_flow_routes_with_the_derived_pattern(app: DaisyApp) -> None:
    [buy] = [h for h in app.handlers[BUY_GROUP] if isinstance(h, ConversationHandler)]
    patterns = {
        h.pattern.pattern
        for h in [*buy.entry_points, *[x for hs in buy.states.values() for x in hs]]
        if isinstance(h, CallbackQueryHandler) and isinstance(h.pattern, re.Pattern)
    }
    expected = "|".join(f"(?:{p})" for p in
                        [MenuCb.pattern(name="buy"), *(k.pattern() for k in BUY_TYPES)])
    assert patterns == {expected}


def test_the_key_feature_is_registered_only_when_users_bring_keys() -> None:
    own, operator = _app(True), _app(False)

    def callbacks(app: DaisyApp) -> set[str]:
        found = set()
        for handlers in app.handlers.values():
            for h in handlers:
                if isinstance(h, ConversationHandler):
                    found.add(f"conversation:{h.name}")
                elif isinstance(h, CallbackQueryHandler | MessageHandler):
                    found.add(_name(h.callback))
                else:
                    found.add(_name(getattr(h, "callback", h)))
        return found

    assert {"conversation:key", "key_paste", "key_callback"} <= callbacks(own)
    assert "operator_key_command" not in callbacks(own)
    assert not {"conversation:key", "key_paste", "key_callback"} & callbacks(operator)
    assert "operator_key_command" in callbacks(operator)
    assert key_paste.__name__ == "key_paste"
    assert operator_key_command.__name__ == "operator_key_command"
