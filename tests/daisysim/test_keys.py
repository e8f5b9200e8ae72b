"""One way to name a key per purpose (bot.daisysim.keys), and the stored formats
pinned: existing databases hold ``accounts.key_hash`` and ``accounts.key_masked``
made by earlier versions, so these outputs must never change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

import bot.daisysim
import bot.services.crypto
from bot.clock import VirtualClock
from bot.daisysim import DaisySimClient, get_limiter
from bot.daisysim.keys import FINGERPRINT_LENGTH, key_fingerprint, key_hash, mask_key
from storage.db import Database
from storage.repositories import Repositories

KEY = "sk_live_abcdef0123456789"
# Made by the formats as they were when the accounts table was created (0001).
STORED_HASH = "22b67ce3a13e33cb7d725b9e928b43e7ddf3ae4ff7a3d3034acf4236b4a54e30"
STORED_MASK = "sk_l…6789"


def test_stored_hash_format_never_changes() -> None:
    assert key_hash(KEY) == STORED_HASH
    assert key_hash("short123") == (
        "b7671e4053f71a0500148e7a63b598dbf0bdec5d40918773fcd2faabb4faeace"
    )
    assert key_hash(KEY) == hashlib.sha256(b"daisybot-key:" + KEY.encode()).hexdigest()
    assert key_hash("a" * 20) != key_hash("b" * 20)


def test_display_mask_format_never_changes() -> None:
    assert mask_key(KEY) == STORED_MASK
    assert mask_key("short123") == "sh…23"
    assert mask_key("1234567") == "…"
    assert mask_key("0123456789abcdef") == "0123…cdef"


def test_fingerprint_is_log_safe_and_matches_the_stored_hash() -> None:
    fp = key_fingerprint(KEY)
    assert len(fp) == FINGERPRINT_LENGTH and STORED_HASH.startswith(fp)
    for piece in (KEY, KEY[:4], KEY[-4:]):
        assert piece not in fp
    assert key_fingerprint("other-key-0123456789") != fp


def test_one_function_per_purpose_everywhere() -> None:
    # The services' names are the same functions, not look-alikes.
    assert bot.services.crypto.key_hash is key_hash
    assert bot.services.crypto.mask_key is mask_key
    assert bot.daisysim.mask_key is mask_key
    assert bot.daisysim.key_hash is key_hash
    assert bot.daisysim.key_fingerprint is key_fingerprint
    assert bot.daisysim.limits.key_fingerprint is key_fingerprint  # the limiter registry


async def test_client_and_limiter_name_the_key_by_its_fingerprint() -> None:
    clock = VirtualClock()
    client = DaisySimClient(
        KEY, clock=clock, transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    async with client:
        assert client.key_fingerprint == key_fingerprint(KEY)
        assert key_fingerprint(KEY) in repr(client)
        assert KEY not in repr(client) and KEY[-4:] not in repr(client)
        assert client.limiter is get_limiter(KEY, clock)


async def test_a_key_linked_by_an_older_version_is_found_again(tmp_path: Path) -> None:
    """A row written with the stored formats is found by today's key_hash."""
    db = await Database.open(tmp_path / "old.sqlite3")
    try:
        repos = Repositories(db)
        await repos.users.ensure(7, 0.0)
        await db.execute(
            "INSERT INTO accounts (kind, owner_user_id, key_hash, key_encrypted, key_masked,"
            " created_at) VALUES ('user', 7, ?, 'tok', ?, 0.0)",
            (STORED_HASH, STORED_MASK),
        )
        row = await repos.accounts.by_hash(key_hash(KEY))
        assert row is not None and row.owner_user_id == 7
        assert row.key_masked == mask_key(KEY)
    finally:
        await db.close()
