"""The .mo files are build products: the PEP 517 backend compiles every catalogue."""

from __future__ import annotations

import gettext
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bot" / "_build"))

import daisybot_build  # noqa: E402


def test_the_build_backend_compiles_every_catalogue(tmp_path: Path) -> None:
    for po in (ROOT / "bot" / "telegram" / "locales").glob("*.po"):
        shutil.copy(po, tmp_path / po.name)
    written = daisybot_build.compile_catalogues(tmp_path)
    assert {p.stem for p in written} == {"en", "ru", "es", "pt_BR", "fa"}
    with (tmp_path / "ru.mo").open("rb") as f:
        ru = gettext.GNUTranslations(f)
    assert ru.gettext("btn_wallet") not in ("", "btn_wallet")
    assert ru.ngettext("history_count", "history_count_plural", 5) != \
        ru.ngettext("history_count", "history_count_plural", 2)


def test_pyproject_uses_the_backend_for_wheels_and_editable_installs() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'build-backend = "daisybot_build"' in text
    assert 'backend-path = ["bot/_build"]' in text
    for hook in ("build_wheel", "build_editable", "build_sdist"):
        assert callable(getattr(daisybot_build, hook))
