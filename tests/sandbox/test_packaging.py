"""The production artefacts carry no test stand-ins (issue 11).

The wheel (what ``pip install .`` and the Docker image install) leaves ``bot/sandbox``
and ``tests`` out, also when a stale ``*.egg-info`` of an earlier build still lists the
sandbox; the Docker build context leaves them out too (.dockerignore); without the
sandbox ``daisybot playground`` says in one line how to get it; and the editable
checkout the README's commands make still has the sandbox and its static files.

Building the wheel needs setuptools and wheel, which pip takes from the package index
exactly as the README's ``pip install -e .`` does (about 5 s here).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache",
             ".pytest_cache", ".hypothesis", "playground-data", "test-artifacts"}  # fmt: skip
WHEEL_BUDGET_S = 60.0  # a safety net only: the build takes ~5 s


def _checkout_files() -> list[str]:
    """Every file of the checkout (what a build context or a copy of it sees)."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        rel = Path(dirpath).relative_to(ROOT)
        out.extend((rel / f).as_posix() for f in filenames)
    return sorted(out)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A wheel built from a copy of the whole checkout (bot/sandbox and tests included)
    that also holds a stale egg-info listing the sandbox, as a developer's tree does
    after an earlier ``pip install -e .`` of the old layout."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for rel in _checkout_files():
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    stale = src / "daisybot.egg-info"
    stale.mkdir()
    (stale / "SOURCES.txt").write_text(
        "\n".join(["pyproject.toml", *(f for f in _checkout_files() if f.startswith("bot/"))])
        + "\n"
    )
    out = base / "dist"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    assert elapsed < WHEEL_BUDGET_S, f"building the wheel took {elapsed:.1f} s"
    print(f"wheel built in {elapsed:.1f} s")
    (found,) = out.glob("daisybot-*.whl")
    yield found


def test_wheel_carries_the_bot_without_stand_ins_or_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.startswith("bot/sandbox")] == []
    assert [n for n in names if n.startswith("tests/") or "/tests/" in n] == []
    # ... and everything the bot needs is there
    for needed in ("bot/__main__.py", "bot/app.py", "bot/daisysim/__init__.py",
                   "storage/__init__.py", "storage/migrations/0001_init.sql"):  # fmt: skip
        assert needed in names, needed
    migrations = {n for n in names if n.startswith("storage/migrations/")}
    assert migrations == {
        f for f in _checkout_files() if re.fullmatch(r"storage/migrations/\d{4}_\w+\.sql", f)
    }
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "daisybot = bot.__main__:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_playground_without_the_sandbox_says_how_to_get_it(wheel: Path, tmp_path: Path) -> None:
    """The wheel installed on its own (no checkout, no editable finder): ``daisybot
    playground`` / ``simulator`` answer one clear line and exit 2 (``--help``: with the
    sandbox there, they would print their help and exit 0 instead)."""
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)  # a pure-Python wheel: this is the install
    purelib = sysconfig.get_paths()["purelib"]
    for command in ("playground", "simulator"):
        code = (
            "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import bot; "
            "assert bot.__file__.startswith(sys.argv[1]), bot.__file__; "
            "from bot.__main__ import main; sys.exit(main([sys.argv[3], '--help']))"
        )
        # -S: no site, so no .pth: the checkout's editable finder is not installed
        proc = subprocess.run(
            [sys.executable, "-S", "-c", code, str(target), purelib, command],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert f"daisybot {command}: the sandbox (bot/sandbox) is not in this install" in lines[0]
        assert "pip install -e ." in lines[0]


# -- the Docker build -----------------------------------------------------------------


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (exclude?, regex) in order; the last match wins (Docker's rules:
    ``*`` within a path segment, ``**`` any depth, a match on a folder covers its files)."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rx = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pattern[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pattern[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(pattern[i]), i + 1
        rules.append((exclude, re.compile(rx + "(?:/.*)?")))
    return rules


def _build_context() -> list[str]:
    rules = _dockerignore_patterns()
    kept: list[str] = []
    for path in _checkout_files():
        excluded = False
        for exclude, rx in rules:
            if rx.fullmatch(path):
                excluded = exclude
        if not excluded:
            kept.append(path)
    return kept


def _copied_by_dockerfile(context: list[str]) -> list[str]:
    """Files of the context that the Dockerfile's COPY instructions (from the context,
    not ``--from=``) bring into the image build."""
    text = (ROOT / "Dockerfile").read_text()
    copied: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].upper() not in ("COPY", "ADD"):
            continue
        args = [a for a in parts[1:] if not a.startswith("--")]
        if any(a.startswith("--from") for a in parts[1:]):
            continue
        for source in args[:-1]:
            source = source.strip("./") or "."
            copied.update(
                p for p in context if source == "." or p == source or p.startswith(source + "/")
            )
    return sorted(copied)


def test_docker_build_context_and_copies_leave_stand_ins_and_tests_out() -> None:
    context = _build_context()
    for kept_out in ("bot/sandbox/", "tests/", ".ci/", ".venv/", ".git/"):
        assert [p for p in context if p.startswith(kept_out)] == [], kept_out
    assert ".env" not in context
    copied = _copied_by_dockerfile(context)
    assert [p for p in copied if p.startswith(("bot/sandbox/", "tests/"))] == []
    for needed in ("pyproject.toml", "README.md", "bot/__main__.py", "storage/db.py"):
        assert needed in copied, needed
    assert any(p.startswith("storage/migrations/") for p in copied)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -e" not in dockerfile  # never an editable install in the image
    assert "find_spec('bot.sandbox')" in dockerfile  # the build fails if they slip in


def test_the_editable_checkout_has_the_sandbox_and_its_static_files() -> None:
    """What the README's commands rely on: ``pip install -e .`` maps the checkout's
    bot/ folder, sandbox included (this suite runs on such an install)."""
    import bot.sandbox.playground as playground
    from bot.sandbox.webchat import STATIC_DIR

    assert Path(playground.__file__).resolve().is_relative_to(ROOT / "bot" / "sandbox")
    for name in ("index.html", "app.js", "style.css"):
        assert (STATIC_DIR / name).is_file(), name
