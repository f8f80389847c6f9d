"""Notebook sources (notebooks/src/*.py, percent format) and the notebooks built from them agree, and the build
keeps exactly the outputs that still belong to their cells."""
import json
import sys

import nbformat
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import build_notebooks as bn  # noqa: E402

SOURCES = sorted((ROOT / "notebooks" / "src").glob("*.py"))
NBVAL_TAGS = {"nbval-ignore-output", "nbval-check-output", "nbval-skip", "nbval-raises-exception", "raises-exception"}


def test_every_notebook_has_a_source_and_is_built_from_it():
    assert {p.stem for p in SOURCES} == {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert bn.main(["--check"]) == 0, "a notebook differs from notebooks/src: run scripts/build_notebooks.py"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_sources_round_trip_and_carry_no_nbval_comments(source):
    text = source.read_text()
    cells = bn.parse(text, source.name)
    assert bn.render(cells) == text
    assert sum(bn.SETUP_TAG in c["tags"] for c in cells) == 1
    for cell in cells:
        assert "NBVAL_" not in cell["source"] or cell["cell_type"] == "markdown", cell["id"]
        assert set(cell["tags"]) <= NBVAL_TAGS | {bn.SETUP_TAG}, cell["tags"]
    compile(text, str(source), "exec")  # the source is Python (IPython magics would need %% cells of their own)


@pytest.mark.parametrize("text, needle", [
    ('x = 1\n# %% id="a"\ny = 2\n', "starts with a '# %%' header"),
    ('# %%\ny = 2\n', "needs an id"),
    ('# %% [markdown] id="a"\nnot a comment\n', "must start with '#'"),
    ('# %% id="a"\nx = 1\n\n# %% id="a"\ny = 2\n', "duplicate cell ids ['a']"),
])
def test_malformed_sources_are_refused_with_the_fix(text, needle):
    with pytest.raises(ValueError) as err:
        bn.parse(text, "nb.py")
    assert needle in str(err.value)


def test_a_rebuild_keeps_outputs_of_unchanged_cells_only(tmp_path, monkeypatch):
    monkeypatch.setattr(bn, "NOTEBOOKS", tmp_path)
    source = tmp_path / "09_demo.py"
    source.write_text('# %% [markdown] id="d-00"\n# # Demo\n\n# %% id="d-01" tags=["setup-cell"]\n# placeholder\n\n'
                      '# %% id="d-02" tags=["nbval-ignore-output"]\nprint(1)\n\n# %% id="d-03"\nprint(2)\n')
    nb, to_run = bn.build(source)
    assert to_run == ["d-01", "d-02", "d-03"] and nb.cells[2].metadata["tags"] == ["nbval-ignore-output"]
    assert "Open In Colab" in nb.cells[0].source and nb.cells[1].source.startswith("# @title Setup")  # synced
    for cell, out in zip(nb.cells[1:], ["setup", "1", "2"]):  # as if executed
        cell.outputs, cell.execution_count = [nbformat.v4.new_output("stream", text=out)], 1
    (tmp_path / "09_demo.ipynb").write_text(bn.serialised(nb))
    source.write_text(source.read_text().replace("print(2)", "print(3)"))
    rebuilt, to_run = bn.build(source)
    assert to_run == ["d-03"] and rebuilt.cells[3].outputs == []
    assert [c.outputs[0]["text"] for c in rebuilt.cells[1:3]] == ["setup", "1"]
    assert [c.id for c in rebuilt.cells] == ["d-00", "d-01", "d-02", "d-03"]


def test_export_turns_comment_markers_into_tags(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("setup"),
                                         nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nrun()")])
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    cells = bn.parse(bn.export(path))
    assert cells[2]["tags"] == ["nbval-ignore-output"] and cells[2]["source"] == "run()"
    assert cells[1]["tags"] == [bn.SETUP_TAG]
