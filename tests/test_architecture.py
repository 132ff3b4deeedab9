"""The package graph flows one way: taxonomy <- reports <- probes <- audit.

Read from the source with ``ast`` (every import, module level or inside a function), so an
import that would close a loop fails here before it can hide behind import order.
ARCHITECTURE.md draws the same graph; the drawing is checked against the code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("taxonomy", "reports", "probes", "audit")
# Who may import whom. Anything else is a violation.
ALLOWED = {
    "taxonomy": set(),
    "reports": {"taxonomy"},
    "probes": {"taxonomy", "reports"},
    "audit": {"taxonomy", "reports", "probes"},
}


def _imported_packages(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(our package, line, inside a function) for every import of one of our packages."""
    out = []
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES:
                out.append((top, node.lineno, id(node) in nested))
    return out


def violations(root: Path) -> list[str]:
    """Every import that goes against the allowed direction, as ``file:line: a -> b``."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            for target, line, _ in _imported_packages(ast.parse(path.read_text(encoding="utf-8"))):
                if target != pkg and target not in ALLOWED[pkg]:
                    found.append(f"{path.relative_to(root)}:{line}: {pkg} -> {target}")
    return found


def package_edges(root: Path) -> set[tuple[str, str]]:
    edges = set()
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            for target, _, _ in _imported_packages(ast.parse(path.read_text(encoding="utf-8"))):
                if target != pkg:
                    edges.add((pkg, target))
    return edges


def test_dependencies_flow_one_way() -> None:
    assert violations(ROOT) == []


def test_the_check_fails_when_a_probe_imports_audit(tmp_path: Path) -> None:
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "probes" / "leaky.py").write_text("from probes import stats\nfrom audit import run_audit\n")
    (tmp_path / "reports" / "lazy.py").write_text("def f():\n    import probes.stats\n")
    assert sorted(violations(tmp_path)) == ["probes/leaky.py:2: probes -> audit", "reports/lazy.py:2: reports -> probes"]


def test_no_lazy_imports_of_our_packages_below_audit() -> None:
    """Function-level imports of our own packages in taxonomy, reports or probes would only be
    there to dodge a cycle; none is needed."""
    lazy = []
    for pkg in ("taxonomy", "reports", "probes"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            lazy += [f"{path.relative_to(ROOT)}:{line}" for _, line, inner in _imported_packages(ast.parse(source))
                     if inner]
            assert "def __getattr__" not in source, path
    assert lazy == []
    assert "def __getattr__" not in (ROOT / "audit" / "__init__.py").read_text(encoding="utf-8")


def test_the_drawing_in_architecture_md_matches_the_code() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no mermaid graph"
    drawn = set(re.findall(r"^\s*(\w+)\s*-->\s*(\w+)\s*$", block.group(1), re.M))
    assert drawn == package_edges(ROOT)
    assert not any(a in ("taxonomy", "reports", "probes") and b == "audit" for a, b in drawn)
