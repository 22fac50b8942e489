"""Builds the compiled core (pagealloc/runtime/_core.pyx, the replay modules of replay_sources.py) with the machine's C compiler.

Everything else is in pyproject.toml.  The core is optional: when Cython or
the compiler fails, the install goes on without it and pagealloc runs its
Python engine (it says so, once, on stderr).
"""

import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that reports a failed build in one line instead of failing the install."""

    reported = False

    def _report(self, e: Exception) -> None:
        if not self.reported:  # one line, however many steps fail after the compiler did
            print(f"pagealloc: compiled core not built ({type(e).__name__}: {e}); the Python engine will run",
                  file=sys.stderr)
            self.reported = True

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler, no headers
            self._report(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._report(e)
            raise


def extensions():
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("pagealloc: Cython not available; the compiled core is not built, the Python engine will run",
              file=sys.stderr)
        return []
    ext = Extension("pagealloc.runtime._core", ["pagealloc/runtime/_core.pyx"], extra_compile_args=["-O2"])
    # The core carries the hash of the sources it was built from; pagealloc.runtime.engines
    # refuses a core built from other sources (a checkout updated but not rebuilt).
    sys.path.insert(0, str(Path(__file__).resolve().parent / "pagealloc" / "runtime"))
    from core_sources import sources_hash

    try:
        core = cythonize([ext], compiler_directives={"language_level": "3"}, quiet=True,
                         compile_time_env={"CORE_SOURCES_HASH": sources_hash()})
    except Exception as e:
        print(f"pagealloc: compiled core not generated ({type(e).__name__}: {e}); the Python engine will run",
              file=sys.stderr)
        return []
    return core + replay_extensions(cythonize)


def replay_extensions(cythonize) -> list:
    """The replay core: the simulation's hot modules, the same Python compiled under other names with
    .pxd files typing them (pagealloc/runtime/replay_sources.py); [] (said in one line) if Cython fails."""
    from replay_sources import REPLAY_CORE, remove_copies, sources_hash, write_copies

    try:
        replay = [Extension(name, [py], extra_compile_args=["-O2"]) for name, py in write_copies()]
        # annotation_typing off: the sources' annotations document, the .pxd files type; overflowcheck: C
        # arithmetic on what a .pxd types raises on overflow, as the Python source's ints never cut
        copies = cythonize(replay, quiet=True, compiler_directives={
            "language_level": "3", "annotation_typing": False, "binding": False, "overflowcheck": True})
        # the event loop, sim/engine.py ported (it cimports the copies' .pxd files); forced, because the
        # hash built into it covers the copies' sources too, which its .c file's date does not follow
        loop = Extension(REPLAY_CORE, [REPLAY_CORE.replace(".", "/") + ".pyx"], extra_compile_args=["-O2"])
        return copies + cythonize([loop], quiet=True, force=True, compiler_directives={
            "language_level": "3", "binding": False}, compile_time_env={"REPLAY_SOURCES_HASH": sources_hash()})
    except Exception as e:
        print(f"pagealloc: compiled replay core not generated ({type(e).__name__}: {e}); "
              "the Python simulation will run", file=sys.stderr)
        return []
    finally:
        remove_copies()

setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
