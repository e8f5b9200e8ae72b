"""The typed PTB context: ``context.engine``, ``context.settings``, ``context.lang``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from telegram.ext import Application, CallbackContext, ExtBot, JobQueue

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.liveness import UpdateFeed
from bot.services.api import EngineAPI
from bot.telegram.ratelimit import Outgoing

__all__ = ["BotContext", "BotData", "DaisyApp", "DaisyBot", "Scheduler"]

# TelegramRateLimiter is a BaseRateLimiter[Outgoing]: the bot's rate_limit_args.
DaisyBot: TypeAlias = ExtBot[Outgoing]


class Scheduler(Protocol):
    """What the application keeps of the engine's scheduler (``bot.telegram.jobs``
    implements it; declared here so that the context does not import the jobs)."""

    def wake(self, due: float) -> None: ...

    async def kick(self) -> float | None: ...

    def close(self) -> None: ...


@dataclass
class BotData:
    """``application.bot_data``: shared, in-memory, per process."""

    settings: Settings | None = None
    engine_: EngineAPI | None = None
    clock: Clock = field(default_factory=SystemClock)
    scheduler: Scheduler | None = None
    started: bool = False
    # Telegram language per user, remembered from their updates (for event texts).
    langs: dict[int, str] = field(default_factory=dict)
    # Users already registered with engine.ensure_user in this process.
    known_users: set[int] = field(default_factory=set)
    # Given to the engine built in startup() (tests: an in-process transport).
    daisysim_transport: Any = None
    owns_engine: bool = False
    # When updates were last fetched (getUpdates / webhook): /healthz reads it.
    feed: UpdateFeed = field(default_factory=UpdateFeed)
    # Sends the operator alerts to the admins (bot.telegram.admin.alerts.AlertSender).
    alert_sender: Any = None
    # --- h-admin: bans and broadcasts (issue 13) ---
    # Banned users (loaded from the database at start-up; /ban and /unban keep it).
    banned: set[int] = field(default_factory=set)
    # Clock time a banned user was last told so (the refusal is not repeated for a minute).
    ban_told: dict[int, float] = field(default_factory=dict)
    # Clock time each user was last recorded as seen (engine.user_seen, at most hourly).
    seen: dict[int, float] = field(default_factory=dict)
    # The broadcast jobs (bot.telegram.admin.broadcast.BroadcastRunner), set by startup().
    broadcasts: Any = None

    @property
    def engine(self) -> EngineAPI:
        if self.engine_ is None:
            raise RuntimeError("the engine is not started: call bot.app.startup(application)")
        return self.engine_


class BotContext(CallbackContext[DaisyBot, dict[Any, Any], dict[Any, Any], BotData]):
    """Handler context with typed shortcuts."""

    @property
    def engine(self) -> EngineAPI:
        return self.bot_data.engine

    @property
    def settings(self) -> Settings:
        settings = self.bot_data.settings
        if settings is None:
            raise RuntimeError("settings missing from bot_data")
        return settings

    @property
    def clock(self) -> Clock:
        return self.bot_data.clock


DaisyApp: TypeAlias = Application[
    DaisyBot, BotContext, dict[Any, Any], dict[Any, Any], BotData, JobQueue[BotContext]
]
