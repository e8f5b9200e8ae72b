"""The gettext catalogues of the bot: one ``locales/<lang>.po`` per language.

Message ids are the stable text KEYS (``msgid "buy_confirm"``); English is a
catalogue like the others (``en.po``), so there is no second source of English.
The compiled ``<lang>.mo`` files are built with Babel when the package is built
or installed (``bot/_build/daisybot_build.py``); a checkout whose ``.mo``
is missing or older than its ``.po`` compiles that catalogue in memory (with a
warning), so the bot and the tests always read the current texts.
"""

from __future__ import annotations

import gettext
import io
import logging
from pathlib import Path
from typing import Final

__all__ = [
    "EXTRACT_KEYWORDS",
    "LANGUAGES",
    "LOCALE_DIR",
    "RTL_LANGUAGES",
    "compile_all",
    "compile_catalogue",
    "load",
]

log = logging.getLogger(__name__)

LOCALE_DIR: Final = Path(__file__).resolve().parent / "locales"
# Shipped languages, English first (the fallback). Codes are Babel/gettext locales.
LANGUAGES: Final[tuple[str, ...]] = ("en", "ru", "es", "pt_BR", "fa")
RTL_LANGUAGES: Final[frozenset[str]] = frozenset({"fa"})

# The functions that take a text key as argument 2 (``nt``: 2 and 3 — singular
# and plural ids) and the marker ``N_`` for keys kept in tables. The same list is
# the pybabel command line (README / catalogue check):
#   pybabel extract --no-default-keywords -k t:2 -k label:2 -k plain:2 -k nt:2,3 \
#       -k notice:2 -k with_home:2 -k N_ -o messages.pot bot/telegram
EXTRACT_KEYWORDS: Final[dict[str, tuple[int, ...] | None]] = {
    "t": (2,),
    "label": (2,),
    "plain": (2,),
    "nt": (2, 3),
    "notice": (2,),
    "with_home": (2,),
    "N_": None,
}


def compile_catalogue(po_path: Path) -> bytes:
    """``<lang>.po`` → the bytes of its ``.mo`` (Babel's compiler)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po_path.open("rb") as f:
        catalog = read_po(f, locale=po_path.stem)
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def compile_all(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Write ``<lang>.mo`` next to every ``<lang>.po``; the written paths."""
    written = []
    for po in sorted(locale_dir.glob("*.po")):
        mo = po.with_suffix(".mo")
        mo.write_bytes(compile_catalogue(po))
        written.append(mo)
    return written


def load(lang: str, locale_dir: Path = LOCALE_DIR) -> gettext.GNUTranslations:
    """The compiled catalogue of ``lang`` (compiled in memory if the .mo is stale)."""
    po = locale_dir / f"{lang}.po"
    mo = locale_dir / f"{lang}.mo"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        data = mo.read_bytes()
    else:
        log.debug("%s is missing or stale: compiling %s in memory", mo.name, po.name)
        data = compile_catalogue(po)
    return gettext.GNUTranslations(io.BytesIO(data))
