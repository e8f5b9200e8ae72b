"""The python-telegram-bot layer.

Feature packages, each with its handlers, callback data (grammar = builder +
parser + routing pattern), keyboards, views (screens, no I/O) and English texts:
``menu`` (start, help, unknown input), ``buy`` (the Buy flow), ``orders`` (an
order's message and buttons, the pushes of engine events, Active numbers),
``wallet``, ``history``, ``keys`` (own-key mode only), ``admin``.

``common`` is the one shared place: the callback grammar machinery, answering
and edit-in-place helpers, Screen, shared buttons and texts, error screens.

Infrastructure at the top: ``routes`` (handler registration), ``access`` (the
gate), ``errors`` (the error handler), ``events`` (delivering engine events),
``texts`` (the public text API), ``context``, ``jobs``, ``ratelimit``,
``updates``, ``flood``, ``application``.
"""
