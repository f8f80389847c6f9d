"""scripts/rehearse.py's own logic (the rehearsal itself takes an hour: `make rehearse`, not part of `make test`)."""
import json
import sys

import nbformat
import pytest
from conftest import ROOT
from nbformat.v4 import new_code_cell, new_notebook, new_output

sys.path.insert(0, str(ROOT / "scripts"))
import rehearse  # noqa: E402


def test_binder_packages_are_environment_yml_pip_section():
    args = rehearse.binder_packages()
    assert args[0].startswith("--extra-index-url")
    pins = [a for a in args if "==" in a]
    from install_env import read_pins

    main, _ = read_pins()
    assert set(pins) <= set(main) and any(a.startswith("torch==") for a in pins)


def test_platform_versions_are_exact_and_keep_the_platforms_own_packages():
    for spec in (rehearse.COLAB, rehearse.KAGGLE):
        names = [p.split("==")[0] for p in spec.packages]
        assert all("==" in p for p in spec.packages) and len(set(names)) == len(names)
        assert set(rehearse.KEPT) <= set(names) and "torchao" in names  # the versions the setup cell must meet
        assert spec.substitutions
    colab = dict(p.split("==") for p in rehearse.COLAB.packages)
    assert colab["ipywidgets"] == "7.7.1" and colab["torchao"] == "0.10.0"
    assert dict(p.split("==") for p in rehearse.KAGGLE.packages)["ipywidgets"] == "8.1.5"
    assert rehearse.KAGGLE.env["CUDA_VISIBLE_DEVICES"] == "0,1"  # two GPUs, as "GPU T4 x2"
    assert int(rehearse.BINDER.env["MEM_LIMIT"]) == 2 * 10**9  # mybinder's "2G"
    assert rehearse.BINDER_KERNEL_MIB * 2**20 < 2 * 10**9


def test_the_check_cell_reports_back(tmp_path):
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    source, copy = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    nbformat.write(nb, source)
    rehearse.with_check_cell(source, copy)
    executed = nbformat.read(copy, as_version=4)
    assert len(executed.cells) == 2 and "REHEARSAL" in executed.cells[-1].source
    report = {"gpus": "0", "imported": {"torch": "2.11.0", "numpy": None, "ipywidgets": "7.7.1"}}
    executed.cells[-1].outputs = [new_output("stream", name="stdout", text="REHEARSAL " + json.dumps(report) + "\n")]
    nbformat.write(executed, copy)
    assert rehearse.check_output(copy) == report
    assert rehearse.check_output(tmp_path / "missing.ipynb") is None


def test_a_missing_python_is_a_clear_stop():
    with pytest.raises(SystemExit, match="pyenv install 2.9"):
        rehearse.python_for("2.9")


def test_the_check_cell_runs(capfd):
    import re
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import numpy\n" + rehearse.CHECK], capture_output=True, text=True,
                         env={"CUDA_VISIBLE_DEVICES": "0", "PATH": "/usr/bin:/bin"}, check=True).stdout
    report = json.loads(re.search(r"^REHEARSAL (.*)$", out, re.M)[1])
    import numpy

    assert report["gpus"] == "0" and report["imported"]["numpy"] == numpy.__version__


def test_a_partial_rerun_replaces_only_its_notebooks():
    def entry(name, ok, date):
        return {"notebook": name, "ok": ok, "problems": [] if ok else ["boom"], "date": date}

    recorded = {"problems": [], "notebooks": [entry("00.ipynb", True, "d1"), entry("01.ipynb", False, "d1")]}
    rerun = {"problems": [], "notebooks": [entry("01.ipynb", True, "d2")]}
    assert rehearse.all_problems(recorded) == ["01.ipynb: boom"]
    both = rehearse.merged(recorded, rerun)
    assert [(nb["notebook"], nb["date"]) for nb in both["notebooks"]] == [("00.ipynb", "d1"), ("01.ipynb", "d2")]
    assert rehearse.all_problems(both) == []
