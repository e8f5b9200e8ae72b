"""Settings, read from the environment and an optional ``.env`` file.

Every setting is listed, with a comment, in ``.env.example``. Secrets are
``SecretStr`` so that they never appear in a repr or a log line.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.pricing import PriceRule, parse_overrides

DEFAULT_WEBHOOK_PATH = "telegram"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TELEGRAM_WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})
_WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_WEBHOOK_PATH_RE = re.compile(r"[A-Za-z0-9._~/-]*")
# Telegram usernames: 5-32 characters, letters, digits and underscores, a letter first.
_USERNAME_RE = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{3,30}[A-Za-z0-9])")
_TME_RE = re.compile(r"(?:https://)?t\.me/([A-Za-z][A-Za-z0-9_]{3,30}[A-Za-z0-9])/?")


def support_contact(value: str) -> str | None:
    """SUPPORT_CONTACT normalised: ``@name`` or ``https://t.me/name``; None if it is
    neither (a t.me link to a username only: no invite links or other sites)."""
    text = value.strip()
    m = _TME_RE.fullmatch(text)
    if m:
        return f"https://t.me/{m.group(1)}"
    m = _USERNAME_RE.fullmatch(text)
    if m:
        return f"@{m.group(1)}"
    return None


class FundingMode(StrEnum):
    OWN_KEY = "own_key"
    OPERATOR = "operator"


def _parse_id_list(value: object) -> object:
    """Accept ``"1,2, 3"`` (and a JSON-ish list) for id lists."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        text = value.strip().strip("[]")
        return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    return value


PROXY_SCHEMES = ("http", "https")


def proxy_problem(proxy: str | None, backend: str = "aiohttp") -> str | None:
    """Why ``proxy`` cannot be used with ``backend`` (None when it can)."""
    if not proxy:
        return None
    parts = urlsplit(proxy)
    schemes = PROXY_SCHEMES if backend == "aiohttp" else (*PROXY_SCHEMES, "socks5",
                                                           "socks5h", "socks4")
    if parts.scheme not in schemes or not parts.hostname:
        if parts.scheme.startswith("socks") and backend == "aiohttp":
            return ("TELEGRAM_PROXY_URL: SOCKS proxies need TELEGRAM_HTTP_BACKEND=httpx "
                    "(and python-telegram-bot[socks] installed).")
        return ("TELEGRAM_PROXY_URL must be a URL such as http://127.0.0.1:3128 "
                f"(schemes: {', '.join(schemes)}).")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "TELEGRAM_PROXY_URL has an invalid port."
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
        # A validation error must not echo what was given: DATABASE_URL may carry a
        # password, and a model-level error would show every input (the bot token too).
        hide_input_in_errors=True,
    )

    # --- Telegram ---
    bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org"

    # --- DaisySim ---
    daisysim_base_url: str = "https://daisysim.com/api/v1/server7"
    daisysim_api_key: SecretStr | None = None  # operator key (operator mode)
    daisysim_country: str = "USA"
    daisysim_timeout_seconds: float = 20.0

    # --- Funding ---
    funding_mode: FundingMode = FundingMode.OWN_KEY
    markup_percent: Decimal = Decimal("0")

    # --- Storage / secrets ---
    database_path: str = "daisybot.sqlite3"
    encryption_key: SecretStr | None = None  # Fernet key (urlsafe base64, 32 bytes)

    # --- Access ---
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    allowed_user_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # --- Activation timing ---
    give_up_minutes: float = 20.0
    cancel_lock_seconds: float = 180.0
    poll_interval_seconds: float = 15.0

    # --- UI ---
    default_locale: str = "en"
    # Times in messages as Telegram date_time entities (<tg-time>): shown in each
    # reader's time zone and language; off: the UTC text only.
    date_time_entities: bool = True
    conversation_timeout_seconds: float = 600.0

    # --- Deployment ---
    log_level: str = "INFO"
    webhook_url: str | None = None  # set to use webhook mode instead of long polling
    webhook_secret: SecretStr | None = None  # required in webhook mode (see webhook_problem)
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    health_port: int | None = None  # serve GET /healthz on this port when set
    # Largest webhook request body accepted (413 above); Telegram's updates are far smaller.
    webhook_max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    # /healthz says 503 when no getUpdates succeeded for this long (long polling) ...
    health_updates_max_age_seconds: float = Field(default=30.0, gt=0)
    # ... or when an event (a code, a refund notice) has waited this long for delivery.
    health_outbox_max_age_seconds: float = Field(default=600.0, gt=0)

    # --- Polling (adaptive, concurrent) ---
    # Spend the check budget the 15-s rounds leave over on earlier polls (a stored
    # code is returned at once, spec §13); off: each number once per interval.
    poll_adaptive: bool = True
    # No number is polled more often than once per this many seconds.
    poll_min_gap_seconds: float = Field(default=1.0, ge=0.2, le=60.0)
    # Poll rounds of different DaisySim accounts (keys) in flight at once.
    poll_concurrency: int = Field(default=64, ge=1, le=1024)
    # Spare (adaptive) check requests per second across all accounts at most.
    poll_spare_per_second: float = Field(default=100.0, gt=0, le=10_000)
    # --- Operator: prices, alerts, support ---
    # Per-service prices (operator mode), over MARKUP_PERCENT: code=rule pairs, e.g.
    # "WhatsApp=+20%,Telegram=0.75,sb_wa=+10%" (a markup, or a fixed price in USD).
    # An admin's /price wins over these.
    price_overrides: str = ""
    # Admins are alerted once when the operator's DaisySim balance falls below this
    # (USD; unset: no low-balance alert); re-armed when it is back above.
    low_balance_alert_usd: Decimal | None = None
    # How often the operator's DaisySim balance is read for that alert (seconds).
    low_balance_check_seconds: float = Field(default=300.0, ge=30, le=86400)
    # Where users get help ("@daisy_support" or "https://t.me/daisy_support"), shown
    # wherever they are told to ask an admin.
    support_contact: str | None = None
    # --- Admin tools: broadcasts (h-admin, issue 13) ---
    # "/broadcast active ..." reaches users who wrote, pressed a button or bought
    # within this many days.
    broadcast_active_days: float = Field(default=30.0, gt=0, le=3650)
    # Broadcast messages per second (Telegram allows about 30/s to all chats; the rest
    # of the budget stays free for codes and replies, which always go first).
    broadcast_per_second: int = Field(default=20, ge=1, le=30)
    # --- Top-ups (Telegram Stars; operator mode) ---
    # The packs on the "Top up" screen, in USD; each is paid with
    # ceil(amount × STARS_PER_USD) Stars (at most 10,000 per invoice).
    topup_packs_usd: Annotated[tuple[Decimal, ...], NoDecode] = (
        Decimal("1"), Decimal("5"), Decimal("10"), Decimal("25"),
    )
    stars_per_usd: Decimal = Field(default=Decimal("77"), gt=0, le=10000)
    # An invoice can be paid for this long (a later payment is still credited).
    topup_invoice_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    # How often getStarTransactions is read for payments the bot did not see, and
    # failed refunds are retried.
    topup_reconcile_seconds: float = Field(default=300.0, ge=10)

    @field_validator("topup_packs_usd", mode="before")
    @classmethod
    def _packs(cls, value: object) -> object:
        from bot.domain.topups import parse_packs

        if isinstance(value, str):
            return parse_packs(value)
        return value

    @model_validator(mode="after")
    def _stars_bound(self) -> Settings:
        from bot.domain.topups import MAX_STARS, stars_price

        for usd in self.topup_packs_usd:
            if not 1 <= stars_price(usd, self.stars_per_usd) <= MAX_STARS:
                raise ValueError(
                    f"TOPUP_PACKS_USD × STARS_PER_USD: ${usd} is not 1 to {MAX_STARS} Stars"
                )
        return self
    # --- DaisySim connection pool (own-key scale) ---
    # One pool (and one SSL context) for every DaisySim key: at most this many sockets
    # to the API for all accounts together ...
    daisysim_max_connections: int = Field(default=64, ge=1, le=64)
    # ... each idle socket kept this long: longer than the poll interval, so the next
    # round reuses it instead of a new TCP + TLS handshake.
    daisysim_keepalive_seconds: float = Field(default=60.0, gt=0, le=3600)
    # --- Bot API transport ---
    # The HTTP client under python-telegram-bot: "aiohttp" (bot/telegram/request.py,
    # about 4x less CPU per request) or "httpx" (PTB's own; kept for one release).
    telegram_http_backend: Literal["aiohttp", "httpx"] = "aiohttp"
    # Connections to the Bot API for everything but getUpdates (which has its own one).
    telegram_connection_pool_size: int = Field(default=32, ge=1, le=256)
    # Proxy for the Bot API: http://[user:pass@]host:port (socks5://: httpx backend only).
    telegram_proxy_url: str | None = None
    # --- PostgreSQL (issue 15) ---
    # postgresql://user:password@host:5432/dbname (or postgres://): the bot's database
    # on PostgreSQL, which several bot processes may share (one of them leads). Unset:
    # SQLite at DATABASE_PATH. A secret (it may carry the password): never logged.
    database_url: SecretStr | None = None

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if not isinstance(raw, str) or raw.strip().split("://", 1)[0].lower() not in (
            "postgresql", "postgres",
        ):
            raise ValueError("DATABASE_URL must be a postgresql:// (or postgres://) URL")
        return raw.strip()

    @property
    def database_target(self) -> str:
        """What storage.open_database opens: DATABASE_URL when set, else DATABASE_PATH."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return self.database_path

    @property
    def users_bring_keys(self) -> bool:
        """Own-key funding: each user links their own DaisySim key (the engine's
        ``users_bring_keys`` says the same; this one is for what runs before it)."""
        return self.funding_mode == FundingMode.OWN_KEY

    @field_validator("admin_ids", "allowed_user_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        return _parse_id_list(value)

    @field_validator("markup_percent", mode="before")
    @classmethod
    def _markup(cls, value: object) -> object:
        if isinstance(value, float):
            return Decimal(str(value))
        return value

    @field_validator("markup_percent")
    @classmethod
    def _markup_range(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value < 0 or value > 1000:
            raise ValueError("MARKUP_PERCENT must be a number from 0 to 1000")
        return value

    @field_validator("price_overrides")
    @classmethod
    def _price_overrides(cls, value: str) -> str:
        parse_overrides(value)  # raises PriceRuleError (a ValueError) with the reason
        return value

    def price_rules(self) -> dict[str, PriceRule]:
        """PRICE_OVERRIDES, parsed (validated at load)."""
        return parse_overrides(self.price_overrides)

    @field_validator("low_balance_alert_usd", mode="before")
    @classmethod
    def _threshold_in(cls, value: object) -> object:
        if isinstance(value, float):
            return Decimal(str(value))
        return value

    @field_validator("low_balance_alert_usd")
    @classmethod
    def _threshold(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and (not value.is_finite() or not 0 < value <= 1_000_000):
            raise ValueError("LOW_BALANCE_ALERT_USD must be an amount in USD above 0")
        return value

    @field_validator("support_contact")
    @classmethod
    def _support(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        contact = support_contact(value)
        if contact is None:
            raise ValueError(
                "SUPPORT_CONTACT must be a Telegram username (@daisy_support) or a t.me "
                "link (https://t.me/daisy_support)"
            )
        return contact

    @field_validator("daisysim_timeout_seconds")
    @classmethod
    def _timeout_range(cls, value: float) -> float:
        # The total deadline of every DaisySim request (connect .. whole body).
        if not 0 < value <= 300:
            raise ValueError("DAISYSIM_TIMEOUT_SECONDS must be a number of seconds above 0, "
                             "at most 300")
        return value

    @field_validator("telegram_proxy_url")
    @classmethod
    def _telegram_proxy(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = (value or "").strip() or None
        problem = proxy_problem(value, info.data.get("telegram_http_backend", "aiohttp"))
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def telegram_api_base(self) -> str:
        """Base URL in the form PTB expects (``.../bot``)."""
        return self.telegram_base_url.rstrip("/") + "/bot"

    @property
    def telegram_file_base(self) -> str:
        return self.telegram_base_url.rstrip("/") + "/file/bot"

    @property
    def give_up_seconds(self) -> float:
        return self.give_up_minutes * 60.0

    # --- Webhook mode ---
    @property
    def webhook_path(self) -> str:
        """Local path the webhook server listens on: WEBHOOK_URL's path without the
        surrounding slashes (``https://h/tg/hook`` -> ``tg/hook``); ``telegram`` when
        the URL has no path."""
        path = urlsplit((self.webhook_url or "").strip()).path.strip("/")
        return path or DEFAULT_WEBHOOK_PATH

    @property
    def webhook_public_url(self) -> str | None:
        """The URL given to setWebhook: WEBHOOK_URL, with ``/telegram`` appended when it
        has no path (so Telegram posts where the server listens). None = long polling."""
        url = (self.webhook_url or "").strip()
        if not url:
            return None
        parts = urlsplit(url)
        if parts.path.strip("/"):
            return url
        return urlunsplit(parts._replace(path="/" + DEFAULT_WEBHOOK_PATH))

    def webhook_problem(self) -> str | None:
        """Why these webhook settings can't be used (None when fine or not in webhook mode).

        The message never contains the secret."""
        url = (self.webhook_url or "").strip()
        if not url:
            return None
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            return "WEBHOOK_URL has an invalid port."
        host = (parts.hostname or "").lower()
        local = host in LOOPBACK_HOSTS
        if not host or parts.scheme not in ("https", "http"):
            return "WEBHOOK_URL must be a full URL such as https://bot.example.com/telegram."
        if parts.scheme != "https" and not local:
            return (
                "WEBHOOK_URL must be an https:// URL: Telegram delivers webhooks over HTTPS "
                "only (http:// is accepted for 127.0.0.1/localhost, for tests)."
            )
        if not local and port is not None and port not in TELEGRAM_WEBHOOK_PORTS:
            return "WEBHOOK_URL: Telegram sends webhooks only to ports 443, 80, 88 or 8443."
        if parts.fragment or parts.username or parts.password:
            return "WEBHOOK_URL must not contain a #fragment or user:password@."
        if not _WEBHOOK_PATH_RE.fullmatch(parts.path):
            return "WEBHOOK_URL's path may only contain A-Z a-z 0-9 and . _ ~ - /."
        if not 1 <= self.webhook_port <= 65535:
            return "WEBHOOK_PORT must be between 1 and 65535."
        if self.webhook_secret is None:
            return (
                "WEBHOOK_SECRET is required when WEBHOOK_URL is set: Telegram sends it with "
                "every update, and the bot refuses requests without it. Make one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        if not _WEBHOOK_SECRET_RE.fullmatch(self.webhook_secret.get_secret_value()):
            return (
                "WEBHOOK_SECRET must be 1-256 characters from A-Z a-z 0-9 _ - "
                "(Telegram's rule for secret_token)."
            )
        return None
