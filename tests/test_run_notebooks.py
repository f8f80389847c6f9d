"""scripts/run_notebooks.py measures each notebook's peak memory (the Binder ceiling is 2 GB): check it sees a peak."""
import sys

import nbformat
import pytest
from conftest import ROOT
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(ROOT / "scripts"))
import run_notebooks  # noqa: E402


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc (Linux)")
def test_peak_memory_is_the_kernels_and_names_its_cell(tmp_path):
    nb = new_notebook(cells=[new_code_cell("x = 1"),
                             new_code_cell("block = bytearray(300 * 2**20); block[::4096] = b'1' * len(block[::4096])"),
                             new_code_cell("del block"), new_code_cell("y = 2")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "memory.ipynb"
    nbformat.write(nb, path)
    (tmp_path / "out").mkdir()
    run = run_notebooks.run_notebook(path, tmp_path / "out", timeout=120, write_back=False)
    assert run.ok, run.error
    assert run.peak_mib is not None and run.peak_mib >= 300, run.peak_mib  # the block was resident at its peak
    assert run.peak_cell == 1  # freeing it later does not lower a high-water mark
    table = run_notebooks.summary([run])
    assert "peak memory" in table.splitlines()[0] and "GiB (cell 1)" in table


def test_peak_rss_of_a_missing_process_is_unknown():
    assert run_notebooks.peak_rss_mib(2**22 + 12345) is None
    assert run_notebooks.memory(run_notebooks.Run("x")) == "unknown"
