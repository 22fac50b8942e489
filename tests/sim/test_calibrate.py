"""pagealloc calibrate measures real madvise/page-fault costs and writes a usable cost model."""

import subprocess
import sys

from pagealloc.sim.costmodel import CostModel


def test_calibrate_writes_a_loadable_cost_model(tmp_path):
    out = tmp_path / "here.toml"
    subprocess.run([sys.executable, "-m", "pagealloc", "calibrate", "--repeat", "3", "-o", str(out)], check=True)
    cost = CostModel.load(out)
    assert cost.madvise_page_ns > 0  # releasing resident pages costs something per page
    assert cost.page_fault_ns > 0  # and faulting them back in does too
    assert cost.alloc_ns == CostModel().alloc_ns  # untouched costs keep their defaults
    # measured, not defaulted (it can be 0: on a loaded machine the other thread gets no CPU of its own)
    text = out.read_text()
    assert "tlb_shootdown_ns = " in text
    # the cold curve: a floor, a slope and a cap, all measured (MADV_FREE after sleeping 64 ms is slower)
    assert "cold_per_doubling_ns = " in text and cost.cold_max_ns > 0


def test_calibrate_bad_output_path_is_one_line_error(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pagealloc", "calibrate", "--repeat", "1", "-o", str(tmp_path / "no/such/dir/x.toml")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.startswith("pagealloc: error:") and p.stderr.count("\n") == 1
