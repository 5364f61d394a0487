"""The benchmark's cold-start timer: one fresh interpreter per import, its own CPU time, its failure shown."""

import subprocess
from pathlib import Path

import pytest

from bench.run import _timed_import


def test_an_import_is_timed_in_a_child_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "busy.py").write_text("total = sum(i * i for i in range(2_000_000))\n")
    timed = _timed_import([tmp_path], "import busy", {})
    assert timed.cpu > 0 and timed.wall > 0


def test_an_import_that_fails_fails_the_benchmark_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise ImportError('no such layer module')\n")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _timed_import([tmp_path], "import broken", {})
    assert "no such layer module" in failed.value.stderr
