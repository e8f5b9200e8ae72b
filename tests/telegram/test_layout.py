"""The shape of the Telegram layer (issue 11): feature packages, one shared place,
no import cycles, no funding-mode branches, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TELEGRAM = ROOT / "bot" / "telegram"
FEATURES = ("menu", "buy", "orders", "wallet", "history", "keys", "admin")
# Features without buttons of their own (opened with menu:wal / commands only).
NO_CALLBACKS = {"wallet", "admin"}
NO_KEYBOARD = {"admin"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    paths = [*sorted(TELEGRAM.rglob("*.py")), ROOT / "bot" / "app.py"]
    return {_module_name(p): p for p in paths}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every bot.telegram module ``path`` imports, at any level (TYPE_CHECKING and
    function-level imports too: a cycle is a cycle)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known and name.startswith("bot.")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    # Package __init__ modules are empty (checked below): leave them out of the graph.
    return {name: _imports(path, known) - {name} for name, path in modules.items()
            if path.name != "__init__.py"}


def test_feature_packages_hold_their_parts() -> None:
    for name in FEATURES:
        package = TELEGRAM / name
        parts = {"handlers.py", "views.py"}  # texts: the gettext catalogues (issue 12)
        if name not in NO_CALLBACKS:
            parts.add("callbacks.py")
        if name not in NO_KEYBOARD:
            parts.add("keyboards.py")
        present = {p.name for p in package.glob("*.py")}
        assert parts <= present, (name, parts - present)
    for part in ("callbacks.py", "handlers.py", "keyboards.py", "views.py"):
        assert (TELEGRAM / "common" / part).is_file(), part


def test_package_inits_are_empty() -> None:
    for init in TELEGRAM.rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        body = [n for n in tree.body if not (isinstance(n, ast.Expr)
                                               and isinstance(n.value, ast.Constant))]
        assert not body, init


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert "bot.telegram.jobs" not in graph["bot.telegram.context"]


def test_layers() -> None:
    """Texts and callback types are leaves; the common place uses no feature but
    their callback types; a feature's callbacks know only the grammar machinery."""
    graph = _graph()
    for name, deps in graph.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "texts" and name != "bot.telegram.texts":
            assert not deps, (name, deps)
        if leaf == "callbacks" and name != "bot.telegram.common.callbacks":
            assert deps == {"bot.telegram.common.callbacks"}, (name, deps)
        if name.startswith("bot.telegram.common."):
            for dep in deps:
                feature = dep.split(".")[2]
                if feature in FEATURES:
                    assert dep.endswith(".callbacks"), (name, dep)


def test_no_funding_mode_branches_in_the_telegram_layer() -> None:
    for path in TELEGRAM.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "funding_mode" not in source and "FundingMode" not in source, path


def test_one_admin_check() -> None:
    places = [p for p in TELEGRAM.rglob("*.py") if "admin_ids" in p.read_text("utf-8")]
    assert places == [TELEGRAM / "common" / "handlers.py"]
    source = (TELEGRAM / "common" / "handlers.py").read_text("utf-8")
    assert source.count("admin_ids") == 2  # is_admin and the allowlist's "admins always"


def test_modules_stay_small() -> None:
    for path in [*TELEGRAM.rglob("*.py"), ROOT / "bot" / "app.py"]:
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines <= 600, (path, lines)


# Strings with spaces in handlers that are not shown to users.
NOT_TEXT = {"message is not modified"}  # a Bot API error description, matched


def test_handlers_hold_no_inline_text() -> None:
    """User-facing text comes from the catalogue: a handler's string literals are
    keys, callback data, log messages or identifiers — never a sentence."""
    for path in TELEGRAM.rglob("handlers.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        logged = {
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "log"
            for arg in node.args
        }
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef
                          | ast.ClassDef)
            and node.body and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in logged and id(node) not in docstrings
                    and node.value not in NOT_TEXT):
                assert " " not in node.value.strip(), (path, node.lineno, node.value)
