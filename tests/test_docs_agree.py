"""What the README, the examples and --help say agrees with the code (issue 22's rough edges)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from pagealloc.cli import build_parser
from pagealloc.sweep import load_grid

ROOT = Path(__file__).resolve().parents[1]


def test_readme_names_the_main_jobs_history_default():
    default = int(re.search(r'"--history", type=int, default=(\d+)', (ROOT / "scripts" / "main").read_text()).group(1))
    line = next(x for x in (ROOT / "README.md").read_text().splitlines() if "scripts/main " in x and "# the main job" in x)
    said = re.search(r"HEAD and (\d+) earlier commits?\b", line)
    assert said and int(said.group(1)) == default, line


def _grid_without(example: Path, key: str, tmp_path: Path):
    """The example's grid without ``key`` (so with its default), its relative paths kept."""
    lines = [x for x in example.read_text().splitlines() if not re.match(rf"{key}\s*=", x)]
    without = tmp_path / example.name
    without.write_text("\n".join(lines).replace('"../', f'"{example.parent.parent}/'))
    return load_grid(without)


FIELD = {"modes": "mode", "timings": "timing"}


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_an_example_calls_the_default_only_what_is_the_default(example, tmp_path):
    text, grid = example.read_text(), tomllib.loads(example.read_text())
    for m in re.finditer(r"^(\w+)\s*=.*#\s*the default\b", text, re.M):
        key = m.group(1)
        points = _grid_without(example, key, tmp_path).points
        assert sorted({getattr(p, FIELD[key]) for p in points}) == sorted(grid[key]), f"{example.name}: {key}"
    # 'timings = [...]  # what the default, "auto", is for these ...': auto is the default, and it means those here.
    for m in re.finditer(r'^timings\s*=.*#\s*what the default, "(\w+)", is\b', text, re.M):
        replay = build_parser()._subparsers._group_actions[0].choices["replay"]
        assert m.group(1) == next(a.default for a in replay._actions if a.dest == "timing")
        points = _grid_without(example, "timings", tmp_path).points
        assert sorted({p.timing for p in points}) == sorted(grid["timings"]), example.name
    assert not re.search(r'^timings\s*=\s*\["recorded"\]\s*#\s*the default', text, re.M)  # issue 22


def test_record_help_names_every_place_go114_source_comes_from():
    sub = build_parser()._subparsers._group_actions[0].choices["record"]
    text = sub.format_help()
    assert "$PAGEALLOC_GO114_SRC" in text and "../shared/go114" in text


def test_no_script_shares_a_name_with_a_benchmark_module():
    benchmarks = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    scripts = {p.stem.replace("-", "_") for p in (ROOT / "scripts").iterdir() if p.is_file()}
    assert not benchmarks & scripts, benchmarks & scripts


def test_every_script_the_docs_name_exists():
    docs = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "traces" / "README.md"]
    named = {m.group(1) for d in docs for m in re.finditer(r"\bscripts/([\w.-]+)", d.read_text())}
    assert {"model-speed", "replay-speed", "compare"} <= named
    missing = sorted(n for n in named if not (ROOT / "scripts" / n).exists())
    assert not missing, missing
