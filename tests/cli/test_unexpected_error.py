"""An exception the CLI does not expect is a bug in pagealloc: one line on stderr, exit status 1, no
traceback, unless ``PAGEALLOC_TRACEBACK`` asks for it."""

import pytest

from pagealloc.cli import entry


@pytest.fixture
def exploding(monkeypatch):
    """``pagealloc info`` made to fail as a bug would: an exception no input check raises."""
    import pagealloc.cli.info as info

    def boom(args):
        return {}["no such key"]

    monkeypatch.setattr(info, "run", boom)
    monkeypatch.delenv(entry.TRACEBACK_ENV, raising=False)


def test_an_unexpected_exception_is_one_line_and_exit_1(exploding, capsys, tmp_path):
    assert entry.main(["info", str(tmp_path / "t.parquet")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line == ("pagealloc: error: internal error: KeyError: 'no such key' (a bug in pagealloc; "
                    "PAGEALLOC_TRACEBACK=1 shows the traceback)")


def test_the_traceback_is_there_when_asked_for(exploding, monkeypatch, tmp_path):
    monkeypatch.setenv(entry.TRACEBACK_ENV, "1")
    with pytest.raises(KeyError, match="no such key"):
        entry.main(["info", str(tmp_path / "t.parquet")])
