"""The rough edges a new user hit (issue 13, item 9): every file checked,
several traces for info, one name per trace, --version, help without RST
markup, write errors naming the file asked for, no empty synthetic traces."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pagealloc.cli import main
from pagealloc.cli.entry import build_parser


def _cli(*args):
    p = subprocess.run([sys.executable, "-m", "pagealloc", *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """A trace whose metadata name differs from its file name."""
    path = tmp_path_factory.mktemp("t") / "file-name.parquet"
    assert _cli("synth", "churn", "-o", str(path), "--events", "2000", "--name", "given-name")[0] == 0
    return path


def test_version():
    status, out, err = _cli("--version")
    assert status == 0 and out.startswith("pagealloc ") and err == ""


def test_help_has_no_rst_markup():
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for command in [None, *commands]:
        status, out, _ = _cli(*([command] if command else []), "--help")
        assert status == 0, command
        assert "``" not in out, (command, out)


def test_info_takes_several_traces_and_names_them_as_replay_does(named, tmp_path, capsys):
    bad = tmp_path / "missing.parquet"
    assert main(["info", "--json", str(named), str(bad), str(named)]) == 2
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in rows] == ["given-name", "given-name"]
    assert err == f"pagealloc: error: {bad}: no such file\n"
    assert main(["replay", str(named), "--json", "--mode", "locked"]) == 0
    assert json.loads(capsys.readouterr().out)["trace"] == "given-name"
    assert main(["info", str(named)]) == 0
    assert "name           given-name\n" in capsys.readouterr().out


def test_synth_refuses_an_empty_trace(tmp_path):
    status, _, err = _cli("synth", "churn", "-o", str(tmp_path / "e.parquet"), "--events", "0")
    assert status == 2 and err == "pagealloc: error: --events must be >= 1, not 0\n"
    assert not (tmp_path / "e.parquet").exists()


@pytest.mark.parametrize("where, reason", [("missing-dir/x.parquet", "No such file or directory"),
                                           (".", "Is a directory")])
def test_write_errors_name_the_file_asked_for(tmp_path, where, reason):
    out = tmp_path / where
    status, _, err = _cli("synth", "churn", "-o", str(out), "--events", "100")
    assert (status, err) == (2, f"pagealloc: error: {out}: cannot write: {reason}\n")
    assert not list(tmp_path.parent.rglob(f"{tmp_path.name}*.tmp-*"))  # no temporary file left behind


def test_selfcheck_checks_its_arguments():
    assert _cli("selfcheck", "--ops", "0")[2] == "pagealloc: error: selfcheck: --ops must be at least 1 (got 0)\n"
    status, out, _ = _cli("selfcheck", "--ops", "300", "--seed", "2")
    assert status == 0 and out.startswith("selfcheck ok: 300 ops") and "seed 2" in out
