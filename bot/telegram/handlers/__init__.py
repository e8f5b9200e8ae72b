"""Compatibility only: the handlers live in the feature packages (bot.telegram.menu,
buy, orders, wallet, history, keys, admin); registration is bot.telegram.routes.
Delete this package once no test imports ``bot.telegram.handlers.key``."""
