"""PEP 517 build backend: setuptools, plus the gettext catalogues compiled first.

Every ``bot/telegram/locales/<lang>.po`` is compiled with Babel into
``<lang>.mo`` next to it before setuptools builds a wheel, an editable install
(``pip install -e .``) or an sdist, so an installed bot ships current ``.mo``
files (they are build products: gitignored). Wired in pyproject.toml via
``build-backend = "daisybot_build"`` and ``backend-path = ["bot/_build"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the hooks we do not wrap)

LOCALES = Path(__file__).resolve().parent.parent / "telegram" / "locales"  # bot/telegram/


def compile_catalogues(locale_dir: Path = LOCALES) -> list[Path]:
    """``<lang>.po`` → ``<lang>.mo`` for every catalogue; the written files."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(locale_dir.glob("*.po")):
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.stem)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as f:
            write_mo(f, catalog, use_fuzzy=False)
        written.append(mo)
    if not written:
        raise RuntimeError(f"no gettext catalogues in {locale_dir}")
    return written


def build_wheel(wheel_directory: str, config_settings: Any = None,
                metadata_directory: str | None = None) -> str:
    compile_catalogues()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory: str, config_settings: Any = None,
                   metadata_directory: str | None = None) -> str:
    compile_catalogues()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    compile_catalogues()
    return _setuptools.build_sdist(sdist_directory, config_settings)
