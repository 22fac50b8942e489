"""The package layout's rules (ARCHITECTURE.md, "Packages"), checked on the source.

Dependencies point one way, in pipeline order: ``cli`` -> ``results`` ->
``sim`` -> ``runtime`` / ``trace``.  ``runtime`` imports nothing of ours
outside itself, ``trace`` only ``errors``.  No two modules import each
other, directly or round a loop, even lazily inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "pagealloc"

# package -> the packages (and top-level modules) of ours it may import
ALLOWED = {
    "runtime": {"runtime"},
    "trace": {"trace", "errors"},
    "sim": {"sim", "runtime", "trace", "errors"},
    "results": {"results", "sim", "runtime", "trace", "errors"},
    "sweep": {"sweep", "results", "sim", "runtime", "trace", "errors"},
    "cli": {"cli", "sweep", "results", "sim", "runtime", "trace", "errors"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every pagealloc module ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pagealloc"):
            out.add(node.module)
            for alias in node.names:  # ``from pagealloc.runtime import mgcscavenge``
                candidate = f"{node.module}.{alias.name}"
                if (PKG.parent / Path(*candidate.split("."))).with_suffix(".py").exists():
                    out.add(candidate)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("pagealloc"))
    return out


MODULES = {_module_name(p): _imports(p) for p in sorted(PKG.rglob("*.py"))}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package):
    bad = []
    for module, imported in MODULES.items():
        if _package(module) != package:
            continue
        for target in imported:
            if _package(target) not in ALLOWED[package]:
                bad.append(f"{module} imports {target}")
    assert not bad, bad


def test_every_package_says_what_it_holds_and_may_import():
    for package in ALLOWED:
        doc = ast.get_docstring(ast.parse((PKG / package / "__init__.py").read_text())) or ""
        assert "import" in doc.lower(), f"pagealloc/{package}/__init__.py: the docstring must say what it may import"


def test_no_import_cycles():
    """A module's imports, followed transitively, never come back to it
    (a package's ``__init__`` importing its own modules is not a cycle)."""
    graph = {m: {t for t in imported if t in MODULES and t != m} for m, imported in MODULES.items()}

    def reach(start):
        seen, todo = set(), [t for t in graph[start] if not start.startswith(t + ".")]
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(t for t in graph[m] if not m.startswith(t + ".") and not t.startswith(m + "."))
        return seen

    cycles = [m for m in graph if m in reach(m) and not m.endswith("__init__")]
    assert not cycles, cycles


def test_runtime_modules_name_their_go_file():
    """The Go mirror: each module's docstring names its Go counterpart, or says it is ours."""
    for path in sorted((PKG / "runtime").glob("*.py")):
        if path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert f"runtime/{path.stem}.go" in doc or "Not a Go file" in doc, path.name
