"""Guard: tests find buttons and texts through catalogue keys (tests/texts.py), never
through the English copy, so a copy edit or a translation does not break them.

The scan reads the string constants of the test files (docstrings and comments
aside) and fails on any that spells a button label of the catalogue (the literal
part of a ``btn_*`` template, e.g. ``"🛒 Buy a number"`` or ``"✅ Confirm · "``) or
a phrase of a message text (``"Choose a service"``).

``python -m tests.test_no_literals`` lists every hit (the count in the report of
issue 11 comes from it; ``--all`` scans every file that used to have them,
including the ones owned elsewhere, for a before/after figure).
"""

from __future__ import annotations

import ast
import re
import string
import sys
from pathlib import Path

from bot.telegram.texts import CATALOGUE, DEFAULT_LANG, strip_html
from tests.texts import button_keys, template

ROOT = Path(__file__).resolve().parent.parent
# The files whose literals this guard keeps clean. tests/e2e/test_texts.py and
# test_callbacks.py test the catalogue itself (and belong to the telegram layer);
# the helper's own test compares its renderings with the English copy.
SCANNED = sorted(
    {
        *ROOT.glob("tests/e2e/*.py"),
        *ROOT.glob("tests/test_*.py"),
        *ROOT.glob("tests/bench/*.py"),
        ROOT / "tests/sandbox/test_playground.py",
    }
    - {
        ROOT / "tests/e2e/test_texts.py",
        ROOT / "tests/e2e/test_callbacks.py",
        ROOT / "tests/test_no_literals.py",
        ROOT / "tests/test_texts_helper.py",  # checks that the helper renders the copy
    }
)

_MIN_PHRASE = 5  # shorter fragments ("Pool", " · ") are too common to be copy


def _segments(key: str) -> list[str]:
    """The literal pieces of a template as the user reads them, line by line."""
    tpl = template(key)
    pieces = [lit for lit, _, _, _ in string.Formatter().parse(tpl) if lit]
    if not key.startswith("btn_"):
        pieces = [strip_html(p) for p in pieces]
    out: list[str] = []
    for piece in pieces:
        for line in piece.split("\n"):
            line = line.strip()
            if len(line) >= _MIN_PHRASE and re.search(r"[A-Za-z]", line):
                out.append(line)
    return out


_LABEL_KEYS = ("hist_",)  # labels whose keys do not start with btn_ (history filters)


def _label_keys() -> list[str]:
    return [*button_keys(), *(k for k in CATALOGUE[DEFAULT_LANG] if k.startswith(_LABEL_KEYS))]


def button_phrases() -> set[str]:
    return {seg for key in _label_keys() for seg in _segments(key)}


def text_phrases() -> set[str]:
    labels = set(_label_keys())
    keys = [k for k in CATALOGUE[DEFAULT_LANG] if k not in labels and not k.startswith("cmd_")]
    # one plain word ("refund", "waiting") is a ledger kind or a state name as often as
    # copy: only a whole one-word text with punctuation ("Updated.") counts
    # and a sentence's last stop plus the next sentence's first word, between a tag
    # and a placeholder (". The" of "</code>. The {amount}"), is not copy either
    return {
        seg
        for key in keys
        for seg in _segments(key)
        if (" " in seg or not seg.isalpha()) and not _STOP_AND_WORD.fullmatch(seg)
    }


_STOP_AND_WORD = re.compile(r"\s*[.,;:!?]+\s+[A-Za-z]+\s*")


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:
                if (
                    isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                ):
                    ids.add(id(stmt.value))
    return ids


def string_constants(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant of a file, f-string parts included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def _unregex(value: str) -> str:
    # r"^✅ Confirm" and re.escape'd labels count too
    return re.sub(r"\\(.)", r"\1", value).strip("^$")


# Literals that coincide with the copy but are test DATA, per file (with why).
ALLOWED: dict[str, set[str]] = {
    "tests/bench/baseline.py": {"Waiting"},  # a DaisySim getStatus answer, not our label
    # the note of a test credit (the usage example happens to use the same words)
    "tests/e2e/test_accounts.py": {"bank transfer"},
    # the playground's own banner / the runner's startup log, not the bot's catalogue
    "tests/e2e/test_browser.py": {"opens 5 s after purchase"},
    "tests/sandbox/test_playground.py": {"opens 1 s after purchase"},
    "tests/test_entrypoint.py": {"operator mode", "opens 30 s after purchase"},
    "tests/test_kill_mid_purchase.py": {"timed out"},  # the test's own AssertionError
}


def _allowed(path: Path) -> set[str]:
    if not path.is_relative_to(ROOT):
        return set()
    return ALLOWED.get(path.relative_to(ROOT).as_posix(), set())


def _words(value: str) -> int:
    return len(re.findall(r"[A-Za-z]{2,}", value))


def _spells(literal: str, phrase: str) -> bool:
    if " " not in phrase:  # a one-word text ("Updated.", "Waiting"): only itself
        return literal == phrase
    if phrase in literal:
        return True
    # a fragment of the copy: "Choose a pool", "Not enough balance", "✅ Confirm"
    if literal not in phrase:
        return False
    emoji_and_word = not literal[0].isascii() and _words(literal) >= 1
    return emoji_and_word or (_words(literal) >= 2 and len(literal) >= 8)


def hits(path: Path, phrases: set[str]) -> list[tuple[int, str, str]]:
    """(line, literal, phrase) where a literal spells a phrase of the catalogue or
    a fragment of one (at least two words)."""
    found = []
    for line, value in string_constants(path):
        plain = _unregex(value).strip()
        if not plain or value in _allowed(path):
            continue
        for phrase in phrases:
            if _spells(plain, phrase):
                found.append((line, value, phrase))
                break
    return found


def test_no_button_label_is_spelled_in_a_test() -> None:
    phrases = button_phrases()
    assert "🛒 Buy a number" in phrases and "✅ Confirm ·" in phrases  # the scan sees labels
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {value!r} (catalogue label {phrase!r})"
        for path in SCANNED
        for line, value, phrase in hits(path, phrases)
    ]
    assert not bad, "use tests.texts.button()/pattern() instead:\n" + "\n".join(bad)


def test_no_message_text_is_spelled_in_a_test() -> None:
    phrases = text_phrases()
    assert "🛒 Choose a service" in phrases  # the scan sees message texts
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {value!r} (catalogue text {phrase!r})"
        for path in SCANNED
        for line, value, phrase in hits(path, phrases)
    ]
    assert not bad, "use tests.texts.text()/pattern() instead:\n" + "\n".join(bad)


def test_the_scan_finds_a_spelled_label(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        '"""Docstrings may say 🛒 Buy a number."""\n'
        "import re\n"
        "LABEL = '🛒 Buy a number'\n"
        "CONFIRM = re.compile(r'^✅ Confirm')\n"
        "WAIT = 'Choose a service'\n"
        "DATA = 'WhatsApp'\n",
        encoding="utf-8",
    )
    assert [line for line, _, _ in hits(sample, button_phrases())] == [3, 4]
    # line 3 too: help names the button by its very label (issue 12), so it is text as well
    assert [line for line, _, _ in hits(sample, text_phrases())] == [3, 5]


def main(argv: list[str]) -> int:
    files = SCANNED
    buttons, texts = button_phrases(), text_phrases()
    total = 0
    for path in files:
        for line, value, phrase in hits(path, buttons | texts):
            total += 1
            print(f"{path.relative_to(ROOT)}:{line}: {value!r}  [{phrase!r}]")
    print(f"{total} literal(s) spelling catalogue copy in {len(files)} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
