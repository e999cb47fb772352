"""The import rules of docs/architecture.md, checked on the source tree by following imports transitively.

- Online modules (``certrb.online``, ``certrb.io``, ``certrb.errors``) reach no offline or face module and
  never import scipy.sparse, directly or through another certrb module.
- The library (everything but the face: ``certrb.cli``, ``certrb.plots``, ``certrb.study``) never imports the face.
- ``certrb.parallel`` is a generic leaf: it imports no other certrb module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import certrb

SRC = Path(certrb.__file__).resolve().parent
FACE = ("certrb.cli", "certrb.plots", "certrb.study", "certrb.dictionary_study", "certrb.offline_floor")
FORBIDDEN_ONLINE = ("scipy.sparse",)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, bool]]:
    """(imported module, at module level) for every import outside ``if TYPE_CHECKING:`` blocks."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = node.module or ""
            if node.level:
                target = f"{base}.{target}" if target else base
            found.append((target, top))
            found.extend((f"{target}.{alias.name}", top) for alias in node.names)
        inner = top and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner if not isinstance(node, ast.ClassDef) else top)

    for stmt in tree.body:
        visit(stmt, True)
    return found


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Internal edges (every import) and external module-level imports of each module of the package at ``root``."""
    top = root.name
    paths = {_module_name(root, p): p for p in root.rglob("*.py")}
    internal: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for name, path in paths.items():
        found = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        internal[name] = {m for m, _ in found if m in paths and m != name}
        external[name] = {m for m, at_top in found if at_top and m.split(".")[0] != top}
    return internal, external


def reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Modules reached from ``start`` by following imports (the parents of a module are imported first)."""
    seen, todo = {start}, [start]
    while todo:
        current = todo.pop()
        parents = {".".join(current.split(".")[:i]) for i in range(1, current.count(".") + 1)}
        for nxt in (graph.get(current, set()) | parents) & graph.keys():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def violations(root: Path) -> list[str]:
    """Every broken rule of the package at ``root``, one line each."""
    internal, external = import_graph(root)
    top = root.name
    online = [m for m in internal if m.startswith((f"{top}.online", f"{top}.io")) or m == f"{top}.errors"]
    face = tuple(f"{top}.{m.split('.', 1)[1]}" for m in FACE)
    out = []
    for m in online:
        reached = reach(internal, m)
        out += [f"{m} -> {r} (online reaches offline or face)" for r in sorted(reached)
                if r.startswith(f"{top}.offline") or r.startswith(face) or r.startswith(f"{top}.problems")]
        out += [f"{m} -> {x} via {r}" for r in sorted(reached) for x in sorted(external[r])
                if x.startswith(FORBIDDEN_ONLINE)]
    for m in internal:
        if not m.startswith(face):
            out += [f"{m} -> {r} (library reaches the face)" for r in sorted(internal[m]) if r.startswith(face)]
    out += [f"{top}.parallel -> {r} (parallel must be a leaf)" for r in sorted(internal.get(f"{top}.parallel", ()))
            if r != top]
    return out


def test_the_package_follows_its_import_rules():
    assert violations(SRC) == []


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", "online/__init__.py": "", "offline/__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_transitive_online_to_offline_import_is_caught(tmp_path):
    root = _fake_package(tmp_path, {
        "online/model.py": "from .solve import solve\n",
        "online/solve.py": "def solve():\n    from ..offline import builder\n",
        "offline/builder.py": "import scipy.sparse\n",
    })
    found = violations(root)
    assert any("pkg.online.model -> pkg.offline.builder" in v for v in found)
    assert any("scipy.sparse via pkg.offline.builder" in v for v in found)


def test_a_sparse_import_behind_an_online_module_is_caught(tmp_path):
    root = _fake_package(tmp_path, {"online/model.py": "from . import helper\n",
                                    "online/helper.py": "from scipy import sparse\n"})
    assert violations(root) == ["pkg.online.model -> scipy.sparse via pkg.online.helper",
                                "pkg.online.helper -> scipy.sparse via pkg.online.helper"]


def test_type_checking_imports_do_not_count(tmp_path):
    root = _fake_package(tmp_path, {"online/model.py": """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from ..offline import builder
        """, "offline/builder.py": ""})
    assert violations(root) == []


def test_the_face_is_never_imported_by_the_library(tmp_path):
    root = _fake_package(tmp_path, {"offline/greedy.py": "from .. import plots\n", "plots.py": ""})
    assert violations(root) == ["pkg.offline.greedy -> pkg.plots (library reaches the face)"]


@pytest.mark.parametrize("module", ["certrb.online.model", "certrb.io"])
def test_online_imports_load_no_offline_module_and_no_sparse(module):
    code = (f"import sys, {module}\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('certrb.offline', 'scipy.sparse')))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_the_two_estimator_tables_hold_the_same_names():
    from certrb.offline.estimators import BUILDERS
    from certrb.online.estimators import ESTIMATOR_NAMES, EVALUATORS

    assert list(BUILDERS) == list(EVALUATORS) == list(ESTIMATOR_NAMES)
    for name, cls in EVALUATORS.items():
        assert callable(BUILDERS[name].build)
        assert hasattr(cls, "from_arrays")
        assert hasattr(cls, "to_arrays")
