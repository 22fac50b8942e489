"""Go 1.14.6 with pagealloc's recording runtime: patch, build once, run.

``pagealloc record --go 1.14`` runs programs on the very runtime the model
mirrors.  The toolchain is built from a Go 1.14.6 source (a tarball or a
tree: ``--go114-src``, ``$PAGEALLOC_GO114_SRC``, or the tarball in
``../shared/go114/`` beside this checkout), patched with the files in
``go114patch/``: ``pagealloc_record.go``, added to ``src/runtime``, and
``edits.toml``, the hooks that call it (see there for why edits are matched
on code rather than applied as a diff).  The build (Go's ``make.bash``,
bootstrapped with the ``record`` extra's Go, about 2.5 minutes on 2 cores)
goes into ``$PAGEALLOC_GO114_CACHE`` (default
``${XDG_CACHE_HOME:-~/.cache}/pagealloc-go114-record``), one folder per
source and patch, and is reused while both stay the same.  Go's own files
are never copied anywhere else.

Go 1.14's go command runs with ``GOFLAGS`` empty, ``GOENV=off``,
``CGO_ENABLED=0`` and ``GO111MODULE`` unset (see ``go114_env``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from pagealloc.errors import UserError
from pagealloc.trace.gotool import find_go, last_line

GO_VERSION = "go1.14.6"
PATCH_DIR = Path(__file__).with_name("go114patch")
RECORDER = "pagealloc_record.go"
SRC_ENV = "PAGEALLOC_GO114_SRC"
CACHE_ENV = "PAGEALLOC_GO114_CACHE"
BOOTSTRAP_ENV = "PAGEALLOC_GO114_BOOTSTRAP"
# The shared tarball of this project's setup: ../shared/go114 beside the checkout.
BESIDE_CHECKOUT = Path(__file__).resolve().parents[3] / "shared" / "go114" / f"{GO_VERSION}-src.tar.gz"


def source_path(given: str | None = None) -> Path:
    """The Go 1.14.6 source to build from: ``given``, ``$PAGEALLOC_GO114_SRC``, or the shared tarball."""
    for where, value in (("--go114-src", given), (SRC_ENV, os.environ.get(SRC_ENV))):
        if value:
            path = Path(value).expanduser()
            if not path.exists():
                raise UserError(f"{where} {value}: no such file or directory (a {GO_VERSION} source tarball or tree)")
            return path
    if BESIDE_CHECKOUT.is_file():
        return BESIDE_CHECKOUT
    raise UserError(
        f"record --go 1.14 needs the {GO_VERSION} source: give --go114-src PATH or set {SRC_ENV} "
        f"(a {GO_VERSION}-src.tar.gz or an unpacked tree)"
    )


# --------------------------------------------------------------------------
# The patch


def _code_lines(text: str) -> list[tuple[int, str]]:
    """``[(line number, the line's code with spacing collapsed)]``, skipping
    comments and blank lines, so that anchors match whatever the comments say."""
    out, in_block = [], False
    for n, line in enumerate(text.split("\n")):
        code, i, quote = [], 0, None
        while i < len(line):
            ch, two = line[i], line[i : i + 2]
            if in_block:
                if two == "*/":
                    in_block, i = False, i + 2
                    continue
            elif quote:
                code.append(ch)
                if ch == "\\" and quote != "`":
                    code.append(line[i + 1 : i + 2])
                    i += 1
                elif ch == quote:
                    quote = None
            elif two == "//":
                break
            elif two == "/*":
                in_block, i = True, i + 2
                continue
            else:
                if ch in "\"'`":
                    quote = ch
                code.append(ch)
            i += 1
        normal = " ".join("".join(code).split())
        if normal:
            out.append((n, normal))
    return out


def apply_edit(text: str, edit: dict, label: str) -> str:
    """Apply one edit of edits.toml to a Go file's text (UserError if its anchor is not found exactly once)."""
    code = _code_lines(text)
    anchor = [c for _, c in _code_lines(edit["anchor"])]
    found = [k for k in range(len(code) - len(anchor) + 1) if [c for _, c in code[k : k + len(anchor)]] == anchor]
    if len(found) != 1:
        how = "not found" if not found else f"found {len(found)} times"
        raise UserError(f"{label}: the patch's anchor {anchor[0]!r}... is {how}; is this the {GO_VERSION} source?")
    first, last = code[found[0]][0], code[found[0] + len(anchor) - 1][0]
    lines = text.split("\n")
    new = edit["text"].strip("\n").split("\n")
    where = edit["where"]
    if where == "after":
        lines[last + 1 : last + 1] = new
    elif where == "before":
        lines[first:first] = new
    elif where == "replace":
        lines[first : last + 1] = new
    else:
        raise ValueError(f"edits.toml: unknown where {where!r}")
    return "\n".join(lines)


def apply_patch(goroot: Path) -> None:
    """Patch the Go tree at ``goroot`` in place: the edits, then the recorder file."""
    runtime = goroot / "src" / "runtime"
    spec = tomllib.loads((PATCH_DIR / "edits.toml").read_text())
    texts: dict[str, str] = {}
    for edit in spec["edit"]:
        name = edit["file"]
        if name not in texts:
            texts[name] = (runtime / name).read_text()
        texts[name] = apply_edit(texts[name], edit, f"src/runtime/{name}")
    for name, text in texts.items():
        (runtime / name).write_text(text)
    shutil.copyfile(PATCH_DIR / RECORDER, runtime / RECORDER)


def patch_digest() -> str:
    h = hashlib.sha256()
    for name in ("edits.toml", RECORDER):
        h.update((PATCH_DIR / name).read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------
# The source


def _source_digest(src: Path) -> str:
    """Tarball: its bytes.  Tree: VERSION and src/runtime/*.go (what the patch touches)."""
    h = hashlib.sha256()
    if src.is_file():
        with open(src, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    for path in [src / "VERSION", *sorted((src / "src" / "runtime").glob("*.go"))]:
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _unpack(src: Path, dest: Path) -> None:
    """Copy the Go tree of ``src`` (tarball or directory) to ``dest``."""
    if src.is_dir():
        if not (src / "src" / "runtime").is_dir():
            raise UserError(f"{src}: not a Go source tree (no src/runtime)")
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "bin", "pkg"), symlinks=True)
    else:
        try:
            with tarfile.open(src) as tar:
                members = tar.getmembers()
                top = {m.name.split("/", 1)[0] for m in members}
                if len(top) != 1:
                    raise UserError(f"{src}: not a Go source tarball (expected one top-level folder)")
                prefix = top.pop() + "/"
                for m in members:
                    m.name = m.name[len(prefix) :] if m.name.startswith(prefix) else ""
                tar.extractall(dest, members=[m for m in members if m.name], filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise UserError(f"{src}: cannot unpack it as a Go source tarball ({e})") from None
    version = (dest / "VERSION").read_text().split()[0] if (dest / "VERSION").is_file() else "(no VERSION file)"
    if version != GO_VERSION:
        raise UserError(f"{src}: this is {version}, not {GO_VERSION}")


# --------------------------------------------------------------------------
# Building and running


def cache_root() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pagealloc-go114-record")
    return Path(base)


def _bootstrap() -> str:
    """GOROOT_BOOTSTRAP: ``$PAGEALLOC_GO114_BOOTSTRAP`` or the record extra's Go (make.bash needs any Go >= 1.4)."""
    given = os.environ.get(BOOTSTRAP_ENV)
    if given:
        return given
    exe, root = find_go()
    if root:
        return root
    r = subprocess.run([exe, "env", "GOROOT"], capture_output=True, text=True, env={**os.environ, "GOTOOLCHAIN": "local"})
    return r.stdout.strip()


def go114_env(goroot: Path, extra: dict | None = None) -> dict:
    """The environment for Go 1.14's go command and the programs it builds."""
    env = {k: v for k, v in os.environ.items() if k not in ("GO111MODULE", "GOROOT", "GOFLAGS", "PAGEALLOC_RECORD_FD")}
    env.update({"GOROOT": str(goroot), "GOFLAGS": "", "GOENV": "off", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOPROXY": "off"})
    env.update(extra or {})
    return env


def toolchain(src: str | None = None, log=None) -> Path:
    """The GOROOT of the recording Go 1.14.6, built first if needed.

    ``log(message)`` hears about a build (it takes minutes).  Safe to call
    from parallel processes: builds take a lock in the cache.
    """
    source = source_path(src)
    key = hashlib.sha256((_source_digest(source) + patch_digest()).encode()).hexdigest()[:16]
    root = cache_root()
    folder = root / key
    goroot, stamp = folder / "go", folder / ".built"
    if stamp.is_file():
        return goroot
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time
        if stamp.is_file():
            return goroot
        (log or _stderr)(f"building the recording {GO_VERSION} toolchain from {source} into {folder} (once; about 2.5 minutes on 2 cores)")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        _unpack(source, goroot)
        apply_patch(goroot)
        _make(goroot, folder / "make.log")
        stamp.write_text(f"{source}\n")
    return goroot


def _make(goroot: Path, log_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GOROOT", "GOPATH", "GOFLAGS", "GO111MODULE")}
    env.update({"GOTOOLCHAIN": "local", "GOROOT_BOOTSTRAP": _bootstrap()})
    with open(log_path, "w") as log:
        r = subprocess.run(["bash", "make.bash"], cwd=goroot / "src", env=env, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise UserError(f"building {GO_VERSION} failed: {last_line(log_path.read_text())} (full log: {log_path})")
    v = subprocess.run([str(goroot / "bin" / "go"), "version"], capture_output=True, text=True, env=go114_env(goroot))
    if not re.search(rf"\b{re.escape(GO_VERSION)}\b", v.stdout):
        raise UserError(f"the toolchain built in {goroot} says {last_line(v.stdout + v.stderr)!r}, not {GO_VERSION}")


def _stderr(message: str) -> None:
    print(f"pagealloc: {message}", file=sys.stderr, flush=True)


__all__ = ["GO_VERSION", "apply_edit", "apply_patch", "go114_env", "source_path", "toolchain"]
