"""UTF-16 helpers (Telegram's unit for entity offsets) and URL checks."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# --------------------------------------------------------------------------------------
# UTF-16 helpers
# --------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (Telegram's unit for entity offsets)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def u16_width(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _u16_to_index_map(text: str) -> list[int]:
    """``m[u]`` = Python index of the character starting at UTF-16 offset ``u``."""
    mapping: list[int] = []
    for i, ch in enumerate(text):
        mapping.append(i)
        if u16_width(ch) == 2:
            mapping.append(i)
    mapping.append(len(text))
    return mapping


def slice_u16(text: str, offset: int, length: int) -> str:
    m = _u16_to_index_map(text)
    start = m[min(max(offset, 0), len(m) - 1)]
    end = m[min(max(offset + length, 0), len(m) - 1)]
    return text[start:end]


# --------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_HOST_LABEL_RE = re.compile(
    r"^[A-Za-z0-9\u00a1-\uffff]([A-Za-z0-9\-\u00a1-\uffff]*[A-Za-z0-9\u00a1-\uffff])?$"
)
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def check_url(url: str) -> str:
    """Validate a URL the way Telegram does (roughly); return it normalised.

    Raises :class:`ValueError` with Telegram's reason ("Wrong HTTP URL",
    "Unsupported URL protocol", "URL host is empty").
    """
    url = url.strip()
    if not url:
        raise ValueError("URL host is empty")
    m = _SCHEME_RE.match(url)
    if m:
        scheme = m.group(1).lower()
        rest = url[m.end() :]
        if scheme in ("tg", "ton"):
            if not rest:
                raise ValueError("Wrong URL")
            return url
        if scheme not in ("http", "https"):
            raise ValueError("Unsupported URL protocol")
        normalised = url
    else:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", url) and not re.match(r"^[^:]+:\d", url):
            raise ValueError("Unsupported URL protocol")
        rest = url
        normalised = "http://" + url
    hostport = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in hostport:
        hostport = hostport.rsplit("@", 1)[1]
    host = hostport
    if hostport.startswith("["):
        return normalised  # IPv6 literal
    if ":" in hostport:
        host, port = hostport.rsplit(":", 1)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("Wrong port number specified in the URL")
    if not host:
        raise ValueError("URL host is empty")
    if _IPV4_RE.match(host):
        return normalised
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 or not all(_HOST_LABEL_RE.match(lb) for lb in labels):
        raise ValueError("Wrong HTTP URL")
    if labels[-1].isdigit():
        raise ValueError("Wrong HTTP URL")
    return normalised


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_local_http(url: str) -> bool:
    """``http://`` to this machine: accepted by the fake only (tests have no TLS)."""
    parts = urlsplit(url)
    return parts.scheme.lower() == "http" and (parts.hostname or "").lower() in LOOPBACK_HOSTS
