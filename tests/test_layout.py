"""The package layout's rules (ARCHITECTURE.md, "Packages"), checked on the source.

Dependencies point one way, in pipeline order: ``cli`` -> ``sweep`` ->
``results`` -> ``sim`` -> ``runtime`` / ``trace``.  ``runtime`` imports
nothing of ours outside itself, ``trace`` only ``errors``.  No two modules
import each other, directly or round a loop, even lazily inside a function.
The rules written in ARCHITECTURE.md and in each package's docstring are the
rules checked here.
"""

from __future__ import annotations

import ast
import re
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


def _docstring(package: str) -> str:
    return ast.get_docstring(ast.parse((PKG / package / "__init__.py").read_text())) or ""


def _quoted(text: str) -> set[str]:
    return set(re.findall(r"``(?:pagealloc\.)?(\w+)``", text))


def _importers(package: str) -> set[str]:
    return {p for p, allowed in ALLOWED.items() if package in allowed and p != package}


def test_architecture_states_the_rules_checked_here():
    """ARCHITECTURE.md's chain ("`cli` -> `sweep` -> ..."): each package may import the ones after
    it, and every package but the runtime ``errors``.  That is ALLOWED, no more, no less."""
    text = (PKG.parent / "ARCHITECTURE.md").read_text()
    (chain,) = re.findall(r"Dependencies point one way: (.*?)\.\s", text, re.S)
    groups = [re.findall(r"`(\w+)`", group) for group in chain.split("→")]
    assert sorted(p for g in groups for p in g) == sorted(ALLOWED), chain
    assert re.search(r"`runtime` imports\s+nothing of ours outside itself", text)
    stated = {}
    for i, group in enumerate(groups):
        for p in group:
            below = {q for g in groups[i + 1:] for q in g}
            stated[p] = {p} | below | ({"errors"} if p != "runtime" else set())
    assert stated == ALLOWED


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_every_package_says_what_it_holds_and_may_import(package):
    """A package's docstring states its import rule, and the rule it states is the one checked:
    every ``pagealloc.X`` it says it may import is allowed, nothing it says it must "never"
    import is, and when it says who imports it ("only ``cli``", "nothing"), that is so.  Every
    module it lists (a ``name`` heading a bullet, or in its "Modules" paragraph) exists."""
    doc = _docstring(package)
    assert re.search(r"\bimport", doc, re.I), f"pagealloc/{package}/__init__.py: say what it may import"
    for sentence in re.split(r"(?<=\.)\s+", doc):
        if "import" not in sentence.lower():
            continue
        if m := re.search(r"\bonly (``\w+``(?:,? (?:and |or )?``\w+``)*) imports? it", sentence):
            assert _importers(package) == _quoted(m.group(1)), sentence
            continue
        if "nothing imports it" in sentence:
            assert _importers(package) == set(), sentence
            sentence = sentence.replace("nothing imports it", "")
        allowed_part, _, never_part = sentence.partition("never")
        named = set(re.findall(r"``pagealloc\.(\w+)``", allowed_part))
        assert named <= ALLOWED[package], f"{package}'s docstring allows {named - ALLOWED[package]}: {sentence}"
        forbidden = _quoted(never_part) & (set(ALLOWED) | {"errors"})
        assert not forbidden & ALLOWED[package], f"{package}'s docstring forbids what it may import: {sentence}"
    module = r"``([a-z][a-z0-9_]*)``"  # a module's name: snake_case, no dots, no call
    listed = {n for head in re.findall(r"^- ((?:``\w+``,? ?(?:and )?)+):", doc, re.M) for n in re.findall(module, head)}
    modules_sentence = re.search(r"^Modules\b.*?(?:\.\s|\Z)", doc, re.M | re.S)  # "Modules: ``format`` (...), ..."
    listed |= set(re.findall(module, modules_sentence.group(0))) if modules_sentence else set()
    missing = sorted(n for n in listed if not (PKG / package / f"{n}.py").exists() and not (PKG / package / n).is_dir())
    assert not missing, f"pagealloc/{package}/__init__.py lists modules that do not exist: {missing}"


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


def test_compiled_core_files_name_their_go_file():
    """The compiled core reads side by side with Go too: _core.pyx lists one .pxi per Go file, and
    each .pxi's header names its Go file, the Python mirror module of the same name and its lock contract."""
    runtime = PKG / "runtime"
    core = (runtime / "_core.pyx").read_text()
    pxis = sorted(runtime.glob("_*.pxi"))
    assert pxis, "no .pxi files beside _core.pyx"
    for pxi in pxis:
        go = pxi.stem.lstrip("_")
        assert f'include "{pxi.name}"' in core, f"_core.pyx does not include {pxi.name}"
        assert (runtime / f"{go}.py").exists(), f"{pxi.name} has no mirror module {go}.py"
        header = pxi.read_text().split("\n\n", 1)[0]
        assert f"runtime/{go}.go" in header, f"{pxi.name} does not name runtime/{go}.go"
        assert f"pagealloc/runtime/{go}.py" in header, f"{pxi.name} does not name its mirror {go}.py"
        assert "Lock contract" in header or "lock contract" in header, f"{pxi.name} states no lock contract"
