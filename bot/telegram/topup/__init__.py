"""Wallet top-ups with Telegram Stars (operator mode): Wallet → Top up → a pack →
an XTR invoice; the pre-checkout query, the successful payment, the admin
``/refund`` and the reconciliation job."""
