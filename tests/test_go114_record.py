"""pagealloc record --go 1.14, end to end: a small program recorded on the
real Go 1.14.6 runtime (patched), imported, and replayed against its
reference.  This is the test that makes .ci/run record under Go 1.14.6.

Needs the Go 1.14.6 source in ../shared/go114 (beside the checkout) and,
the first time, a Go to bootstrap the build (the record extra): about 2.5
minutes once, then cached.
"""

from __future__ import annotations

import pytest

import pagealloc
from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.sim import replay as engine
from pagealloc.sim.reference import address_walk, free_os_memory_retained
from pagealloc.trace import go114, validate_trace

pytestmark = pytest.mark.skipif(not go114.BESIDE_CHECKOUT.is_file(), reason=f"needs the Go 1.14.6 source ({go114.BESIDE_CHECKOUT.parent})")
BASELINE = getattr(engine, "BASELINE_MODE", "go1.14" if "go1.14" in pagealloc.MODES else "unlocked")

PROGRAM = """package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
)

var keep [][]byte

func main() {
	fmt.Printf("PAGEALLOC_RECORD_FD=%q\\n", os.Getenv("PAGEALLOC_RECORD_FD"))
	for round := 0; round < 3; round++ {
		for i := 0; i < 400; i++ {
			keep = append(keep, make([]byte, 1<<(10+i%9)))
		}
		keep = keep[:len(keep)/4]
		debug.FreeOSMemory()
	}
	fmt.Println("GOMAXPROCS", runtime.GOMAXPROCS(0))
	os.Exit(EXIT)
}
"""


@pytest.fixture(scope="module")
def goroot():
    try:
        return go114.toolchain()
    except UserError as e:
        pytest.skip(f"cannot build the recording Go 1.14.6: {e}")


def write_program(tmp_path, exit_code: int = 0):
    prog = tmp_path / "prog.go"
    prog.write_text(PROGRAM.replace("EXIT", str(exit_code)))
    return prog


def test_record_a_program_on_go_1_14_and_hold_the_replay_against_it(goroot, tmp_path, capfd):
    out = tmp_path / "o.parquet"
    assert main(["record", "--go", "1.14", "--gomaxprocs", "3", "-o", str(out), "--", str(write_program(tmp_path))]) == 0
    std = capfd.readouterr()
    assert 'PAGEALLOC_RECORD_FD=""' in std.out  # the runtime took the variable out of the environment
    assert "GOMAXPROCS 3" in std.out and "reference (the Go 1.14.6 runtime)" in std.out
    s = validate_trace(out)
    m, ref = s.metadata, s.metadata["reference"]
    assert (m["source"], m["go_version"], m["gomaxprocs"], ref["exit_code"]) == ("go1.14-runtime", "go1.14.6", 3, 0)
    assert s.counts["free_os_memory"] == 3 and s.counts["gc"] >= 3 and s.counts["alloc"] > 1000
    assert ref["released_bytes"]["forced"] > 0 and ref["heap_growths"] >= 1
    assert "--go 1.14 --gomaxprocs 3" in m["generator"]["command"]

    walk = address_walk(out)
    assert walk.agreement == 1.0, walk.to_dict()
    r = pagealloc.replay(out, BASELINE)
    assert r.address_agreement == 1.0
    assert (r.heap_growths, r.heap_sys_bytes) == (ref["heap_growths"], ref["heap_sys_bytes"])
    assert r.reference_heap_growths_ratio == r.reference_heap_sys_bytes_ratio == 1.0
    # After scavengeAll every free page is released, so retained there is exact.
    pairs = free_os_memory_retained(out, r)
    assert len(pairs) == 3 and all(model == real for model, real in pairs), pairs


def test_a_failing_program_is_an_error(goroot, tmp_path, capfd):
    prog = write_program(tmp_path, exit_code=3)
    assert main(["record", "--go", "1.14", "-o", str(tmp_path / "o.parquet"), "--", str(prog)]) == 2
    err = capfd.readouterr().err
    assert err == f"pagealloc: error: {prog} exited with status 3 (its output is above)\n"


def test_record_a_benchmark_on_go_1_14(goroot, tmp_path, capfd, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "go.mod").write_text("module example.com/pkg\n\ngo 1.14\n")
    (pkg / "lib.go").write_text("package lib\n\nvar Sink [][]byte\n")
    (pkg / "lib_test.go").write_text(
        'package lib\n\nimport "testing"\n\nfunc BenchmarkAlloc(b *testing.B) {\n'
        "\tfor i := 0; i < b.N; i++ {\n\t\tSink = append(Sink, make([]byte, 256<<10))\n\t}\n\tSink = nil\n}\n"
    )
    monkeypatch.chdir(pkg)
    out = tmp_path / "bench.parquet"
    assert main(["record", "--go", "1.14", "-o", str(out), "--", "test", ".", "-run", "^$", "-bench", "Alloc", "-benchtime", "50x"]) == 0
    assert "BenchmarkAlloc" in capfd.readouterr().out
    s = validate_trace(out)
    assert s.counts["alloc"] >= 50 and s.metadata["program"] == "go test ."
    assert sorted(p.name for p in pkg.iterdir()) == ["go.mod", "lib.go", "lib_test.go"]  # nothing left behind
