"""Choosing the PageAlloc engine, and what happens when the compiled core is missing or stale.

Each case runs in a fresh interpreter (the notice is printed when
pagealloc.runtime.engines is first imported, once per process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pagealloc.runtime.engines import ENGINES, check_engine, mpagealloc_compiled, page_alloc_class

ROOT = Path(__file__).resolve().parents[2]
NOTICE = "pagealloc: the compiled core is unavailable"
WHICH = ("import pagealloc, importlib, pagealloc.runtime.engines as e; importlib.import_module('pagealloc.cli'); "
         "from pagealloc.runtime.mheap import MHeap; print(e.DEFAULT_ENGINE, type(MHeap().pages).__module__)")


def run(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120)


def test_page_alloc_class_names_the_engines():
    assert ENGINES == ("compiled", "python")
    assert page_alloc_class("python").__module__ == "pagealloc.runtime.mpagealloc"
    with pytest.raises(ValueError, match="engine must be one of compiled, python, not 'fast'"):
        check_engine("fast")


@pytest.mark.skipif(mpagealloc_compiled is None, reason="the compiled core was not built")
def test_compiled_is_the_default_when_built():
    p = run(WHICH, {"PAGEALLOC_ENGINE": ""})
    assert (p.returncode, p.stdout, p.stderr) == (0, "compiled pagealloc.runtime.mpagealloc_compiled\n", "")
    p = run(WHICH, {"PAGEALLOC_ENGINE": "python"})
    assert (p.returncode, p.stdout, p.stderr) == (0, "python pagealloc.runtime.mpagealloc\n", "")


def test_without_the_core_the_python_engine_runs_and_says_so_once():
    p = run("import sys; sys.modules['pagealloc.runtime._core'] = None; " + WHICH, {"PAGEALLOC_ENGINE": ""})
    assert p.returncode == 0 and p.stdout == "python pagealloc.runtime.mpagealloc\n"
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(NOTICE) and "the Python engine runs" in p.stderr


@pytest.mark.skipif(mpagealloc_compiled is None, reason="the compiled core was not built")
def test_a_core_built_from_other_sources_is_refused(monkeypatch):
    from pagealloc.runtime import _core, engines

    assert engines._load_compiled() == (mpagealloc_compiled, "")
    monkeypatch.setattr(_core, "SOURCES_HASH", "stale")
    module, why = engines._load_compiled()
    assert module is None and "built from other sources" in why and "pip install -e ." in why


@pytest.mark.parametrize(("value", "says"), [
    ("fast", "PAGEALLOC_ENGINE must be one of compiled, python, not 'fast'"),
    ("compiled", "PAGEALLOC_ENGINE=compiled, but the compiled core is unavailable"),
])
def test_a_bad_engine_variable_is_one_line_and_status_2(value, says):
    p = run("import sys; sys.modules['pagealloc.runtime._core'] = None; import pagealloc", {"PAGEALLOC_ENGINE": value})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines()[-1].startswith(f"pagealloc: {says}")
    assert "Traceback" not in p.stderr


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler to break")
def test_setup_py_survives_a_failing_compiler_with_one_line(tmp_path):
    """CC=/bin/false: the build fails, setup.py says so in one line and exits 0 (pip's install goes on)."""
    p = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
                        "--build-temp", str(tmp_path / "tmp")], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "CC": "/bin/false"}, timeout=600)
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.startswith("pagealloc:")]
    assert len(lines) == 1 and "compiled core not built" in lines[0] and "the Python engine will run" in lines[0]
    assert not list((tmp_path / "lib").rglob("_core*.so"))
