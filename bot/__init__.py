"""DaisyBot: buy US virtual numbers for SMS verification from a Telegram chat."""

__version__ = "0.1.0"
