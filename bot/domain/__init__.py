"""The domain: what an activation is and how money moves, with nothing of
Telegram, HTTP or SQL in it."""
