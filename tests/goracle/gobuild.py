"""Building a Go runtime's test binary with test files of ours, in a scratch GOROOT.

Shared by the page-allocator differential tests (``goracle_lib``, against
current Go and Go 1.14.6) and the pacing probe (``tests/go114``, Go 1.14.6):

* ``Toolchain``: a go command, its GOROOT and version, and the environment
  it needs (the same for both versions: Go 1.14's go command wants an empty
  GOFLAGS, GOENV=off and no GO111MODULE; current Go is happy with that too).
* ``scratch_goroot``: copy a GOROOT with hard links, add our files to
  ``src/runtime`` and apply our patches -- a patched file is replaced, never
  written through its link, so the installed tree is never modified.
* ``runtime_test_binary``: ``go test -c runtime`` in such a copy, kept in a cache
  directory under a name hashed from the toolchain version, our files, our
  patches and the runtime's ``export_test.go``; built only when missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Toolchain:
    go: str  # the go command
    goroot: Path
    version: str  # "go1.14.6", "go1.27.3"
    goos: str
    goarch: str

    @property
    def is_go114(self) -> bool:
        return self.version == "go1.14" or self.version.startswith("go1.14.")

    @classmethod
    def of(cls, go: str) -> Toolchain:
        """Ask the go command for its version, GOROOT, GOOS and GOARCH."""
        run = lambda *args: subprocess.run(
            [go, *args], env=go_env(), capture_output=True, text=True, check=True, timeout=120
        ).stdout
        version = run("version").split()[2]  # "go version go1.14.6 linux/amd64" (1.14 has no GOVERSION)
        goroot, goos, goarch = run("env", "GOROOT", "GOOS", "GOARCH").split("\n")[:3]
        return cls(go=go, goroot=Path(goroot), version=version, goos=goos, goarch=goarch)


def go_env(goroot: Path | None = None) -> dict[str, str]:
    """Environment for the go command: local toolchain only, no cgo, no user settings.

    Go 1.14 needs GOFLAGS empty (``-mod=mod`` makes it ignore ``src/vendor``
    and look up std's requirements online), GOENV=off and GO111MODULE unset
    (see ../shared/go114/README.md).  ``goroot``: the tree to build in.
    """
    env = dict(os.environ)
    for k in ("GOROOT", "GO111MODULE", "GOPATH"):
        env.pop(k, None)
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="", GOENV="off", GOWORK="off")
    if goroot is not None:
        env["GOROOT"] = str(goroot)
    if not (env.get("GOCACHE") or env.get("XDG_CACHE_HOME") or env.get("HOME")):
        env["GOCACHE"] = os.path.join(tempfile.gettempdir(), "pagealloc-goracle-gocache")
    return env


def _patched_files(patch: Path) -> list[str]:
    """Paths (relative to GOROOT) that a unified diff with a/ b/ prefixes changes."""
    return [line[6:].split("\t")[0].strip() for line in patch.read_text().splitlines() if line.startswith("+++ b/")]


def scratch_goroot(src: Path, dst: Path, files: list[Path], patches: list[Path] = ()) -> Path:
    """Copy GOROOT src to dst, add files to dst/src/runtime, apply patches (-p1, paths from GOROOT).

    The copy is made of hard links where possible (else it is a real copy).
    Nothing is written through a link: our files are new, and each file a
    patch changes is first replaced by a private copy.
    """
    try:
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
    except (OSError, shutil.Error):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)
    for f in files:
        shutil.copyfile(f, dst / "src" / "runtime" / f.name)
    for patch in patches:
        for rel in _patched_files(patch):
            target = dst / rel
            data = target.read_bytes()
            target.unlink()
            target.write_bytes(data)
        # GIT_CEILING_DIRECTORIES: apply to the tree, even if it lies inside some repository.
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(dst.parent))
        r = subprocess.run(["git", "apply", "-p1", str(patch.resolve())], cwd=dst, env=env, capture_output=True,
                           text=True, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{patch.name} does not apply to {src}:\n{r.stderr}")
    return dst


def _runtime_tests_not_needed(goroot: Path, keep: set[str]) -> list[Path]:
    """The runtime's own test files, except the export*_test.go files our files use."""
    return [f for f in (goroot / "src" / "runtime").glob("*_test.go")
            if f.name not in keep and not f.name.startswith("export")]


def build_test_binary(tc: Toolchain, goroot: Path, out: Path, keep: set[str]) -> None:
    """go test -c the runtime of the scratch tree goroot into out (atomically).

    First without the runtime's own ~115 test files (only unlinked from the
    scratch copy), which halves the build; if the export files turn out to
    need them, they are put back and the whole test package is built.
    """
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    cmd = [str(goroot / "bin" / "go"), "test", "-c", "-o", str(tmp), "runtime"]
    env = go_env(goroot)
    pruned = _runtime_tests_not_needed(goroot, keep)
    saved = {f: f.read_bytes() for f in pruned}
    for f in pruned:
        f.unlink()
    r = subprocess.run(cmd, cwd=goroot, env=env, capture_output=True, text=True, timeout=900, check=False)
    if r.returncode != 0:
        first = r
        for f, data in saved.items():
            f.write_bytes(data)
        r = subprocess.run(cmd, cwd=goroot, env=env, capture_output=True, text=True, timeout=900, check=False)
        if r.returncode != 0:
            raise RuntimeError(
                f"{tc.version}: go test -c runtime failed in {goroot} (with only the export test files:\n"
                f"{first.stdout}{first.stderr}\nwith all of them:)\n{r.stdout}{r.stderr}"
            )
    os.replace(tmp, out)


def binary_key(tc: Toolchain, files: list[Path], patches: list[Path] = ()) -> str:
    """Content hash naming a compiled test binary."""
    h = hashlib.sha256(f"{tc.version} {tc.goos} {tc.goarch}\n".encode())
    for f in [*files, *patches]:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    h.update((tc.goroot / "src/runtime/export_test.go").read_bytes())
    return h.hexdigest()[:20]


def runtime_test_binary(tc: Toolchain, name: str, files: list[Path], cache_dir: Path, scratch: Path,
                patches: list[Path] = ()) -> tuple[Path, str]:
    """The runtime test binary with our files (and patches) for tc: (path, how it was obtained).

    Cached in cache_dir as ``{name}-{version}-{GOOS}-{GOARCH}-{hash}.test``;
    older binaries of the same name and version are removed.  scratch: an
    empty directory to build in.
    """
    stem = f"{name}-{tc.version}-{tc.goos}-{tc.goarch}"
    binary = cache_dir / f"{stem}-{binary_key(tc, files, patches)}.test"
    if binary.exists():
        return binary, f"cached binary {binary.name}"
    t0 = time.perf_counter()
    goroot = scratch_goroot(tc.goroot, scratch / "go", files, patches)
    build_test_binary(tc, goroot, binary, {f.name for f in files})
    shutil.rmtree(goroot, ignore_errors=True)
    for stale in cache_dir.glob(f"{stem}-*.test"):
        if stale != binary:
            stale.unlink(missing_ok=True)
    return binary, f"built in {time.perf_counter() - t0:.1f} s"


def run_go_test(binary: Path, test_name: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run one test of a test binary with extra environment; raise on failure with its output."""
    r = subprocess.run(
        [str(binary), "-test.run", f"^{test_name}$", "-test.count=1", f"-test.timeout={int(timeout * 0.9)}s"],
        env=dict(os.environ, **env), capture_output=True, text=True, timeout=timeout, check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(f"{binary.name} failed (exit {r.returncode}):\n{r.stdout[-5000:]}\n{r.stderr[-5000:]}")
    return r
