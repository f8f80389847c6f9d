#!/usr/bin/env python
"""Notebook sources -> notebooks: build, sync, and (where a code cell changed) execute, in one command.

    .venv/bin/python scripts/build_notebooks.py               # build every notebook from notebooks/src/*.py
    .venv/bin/python scripts/build_notebooks.py --execute     # ... then run those whose code changed (--write-back)
    .venv/bin/python scripts/build_notebooks.py --check       # write nothing; exit 1 if a notebook is out of date
    .venv/bin/python scripts/build_notebooks.py --export notebooks/01_basic_sdpo.ipynb   # notebook -> source
    make notebooks                                            # = --execute

The source of `notebooks/NN_name.ipynb` is `notebooks/src/NN_name.py`, a plain Python file in the "percent" format
(as Jupytext, VS Code and Spyder read it), so it is edited, diffed and linted as code:

    # %% [markdown] id="nb01-00"
    # # 01 · Basic SDPO
    # Markdown lines are comments.

    # %% id="nb01-07" tags=["nbval-ignore-output"]
    grpo_run = train_run("GRPO", profile, addition_reward, sdpo=SDPOConfig(enabled=False))

Each cell header carries the cell's id (stable: the saved outputs belong to it) and its tags; nbval reads its
markers from the tags (`nbval-ignore-output`, `nbval-skip`, `raises-exception`), so the learner's code holds none.
The cell tagged `setup-cell` is the shared setup cell: its body in the source is a one-line placeholder, and the
build puts in `notebook_cells.setup_cell_source()`; `sync_setup_cells.synced` adds the badges and GPU metadata.

Building keeps every saved output whose cell (same id, same type) kept its source, and drops the outputs of a cell
whose source changed, so a rebuild of unchanged sources leaves `git status` clean. `--execute` then runs, with
`scripts/run_notebooks.py --write-back`, each notebook that has a code cell without its outputs.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
from notebook_cells import BADGES_LINE, setup_cell_source, wants_unsloth
from sync_setup_cells import synced

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
SETUP_TAG = "setup-cell"
SETUP_PLACEHOLDER = "# The shared setup cell: scripts/notebook_cells.py writes it here when the notebook is built."
HEADER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?P<attrs>.*)$")
ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\[[^\]]*\])')


# ----------------------------------------------------------------------------------------------------------------
# The percent format
# ----------------------------------------------------------------------------------------------------------------
def parse(text: str, name: str = "source") -> list[dict]:
    """Cells of a percent-format file: [{"cell_type", "id", "tags", "source"}], in order."""
    cells, lines = [], text.splitlines()
    starts = [i for i, line in enumerate(lines) if HEADER.match(line)]
    if not starts or any(line.strip() for line in lines[:starts[0]]):
        raise ValueError(f"{name}: everything must be inside cells; the file starts with a '# %%' header")
    for start, end in zip(starts, starts[1:] + [len(lines)]):
        header = HEADER.match(lines[start])
        attrs = {key: json.loads(value) for key, value in ATTR.findall(header["attrs"])}
        if "id" not in attrs:
            raise ValueError(f"{name}, line {start + 1}: a cell header needs an id, e.g. '# %% id=\"nb01-07\"'")
        body = lines[start + 1:end]
        while body and not body[-1].strip():
            body.pop()  # the blank line(s) between cells
        kind = "markdown" if header["markdown"] else "code"
        if kind == "markdown":
            bad = [line for line in body if line and not line.startswith("#")]
            if bad:
                raise ValueError(f"{name}, cell {attrs['id']}: markdown lines must start with '#': {bad[0]!r}")
            body = [line[2:] if line.startswith("# ") else line[1:] for line in body]
        cells.append({"cell_type": kind, "id": attrs["id"], "tags": list(attrs.get("tags", [])),
                      "source": "\n".join(body)})
    ids = [c["id"] for c in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: duplicate cell ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return cells


def render(cells: list[dict]) -> str:
    """The percent-format text of `cells` (the inverse of `parse`)."""
    parts = []
    for cell in cells:
        attrs = f' id="{cell["id"]}"' + (f" tags={json.dumps(cell['tags'])}" if cell["tags"] else "")
        if cell["cell_type"] == "markdown":
            body = "\n".join(f"# {line}" if line else "#" for line in cell["source"].split("\n"))
            parts.append(f"# %% [markdown]{attrs}\n{body}")
        else:
            parts.append(f"# %%{attrs}\n{cell['source']}")
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Source -> notebook, notebook -> source
# ----------------------------------------------------------------------------------------------------------------
def notebook_path(source: Path) -> Path:
    return NOTEBOOKS / f"{source.stem}.ipynb"


def build(source: Path) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook for `source`, with the saved outputs of unchanged cells; and the ids of code cells never run.

    The setup cell keeps its outputs when its text changes: it prints what it did on this platform, and
    `sync_setup_cells` may rewrite it (a fork's URL) without anything to re-run."""
    path = notebook_path(source)
    old = nbformat.read(path, as_version=4) if path.exists() else nbformat.v4.new_notebook()
    saved = {cell.get("id"): cell for cell in old.cells}
    cells, to_run = [], []
    for spec in parse(source.read_text(), source.name):
        text = setup_cell_source(unsloth=wants_unsloth(path)) if SETUP_TAG in spec["tags"] else spec["source"]
        previous = saved.get(spec["id"])
        if spec["cell_type"] == "markdown":
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
            if previous is not None and previous.cell_type == "code" and (previous.source == text or
                                                                          SETUP_TAG in spec["tags"]):
                cell.outputs, cell.execution_count = previous.outputs, previous.execution_count
            if cell.execution_count is None:
                to_run.append(spec["id"])
        cell.id = spec["id"]
        if previous is not None:
            cell.metadata = {k: v for k, v in previous.metadata.items() if k != "tags"}
        if spec["tags"]:
            cell.metadata["tags"] = spec["tags"]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=old.metadata)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                          "language": "python"})
    nb.metadata.setdefault("language_info", {"name": "python"})
    synced(nb, path)  # the badges line, the setup cell's current text and the GPU runtime metadata
    return nb, to_run


MARKER = re.compile(r"^# (NBVAL_[A-Z_]+)\n?", re.M)


def export(path: Path) -> str:
    """The percent-format source of an existing notebook (to adopt edits made in Jupyter). nbval markers written
    as comments (`# NBVAL_IGNORE_OUTPUT`) become tags (`nbval-ignore-output`)."""
    nb = nbformat.read(path, as_version=4)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    cells = []
    for i, cell in enumerate(nb.cells):
        tags = list(cell.metadata.get("tags", []))
        source = cell.source
        if cell.cell_type == "code":
            tags += [m.lower().replace("_", "-") for m in MARKER.findall(source) if m.lower().replace("_", "-") not in tags]
            source = MARKER.sub("", source)
        if i == 0 and cell.cell_type == "markdown":
            source = BADGES_LINE.sub("", source).rstrip()  # the badges line is generated (sync_setup_cells)
        if i == first_code:
            tags, source = [*tags, SETUP_TAG] if SETUP_TAG not in tags else tags, SETUP_PLACEHOLDER
        cells.append({"cell_type": cell.cell_type, "id": cell.id, "tags": tags, "source": source})
    return render(cells)


def serialised(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="*", type=Path, help="default: every notebooks/src/*.py")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is out of date")
    parser.add_argument("--execute", action="store_true", help="run the notebooks whose code changed (--write-back)")
    parser.add_argument("--export", type=Path, metavar="NOTEBOOK", help="write NOTEBOOK's source file and stop")
    args = parser.parse_args(argv)
    if args.export:
        target = SOURCES / f"{args.export.stem}.py"
        target.parent.mkdir(exist_ok=True)
        target.write_text(export(args.export))
        print(f"wrote {target.relative_to(ROOT)}")
        return 0
    stale, runs = [], []
    for source in args.sources or sorted(SOURCES.glob("*.py")):
        nb, to_run = build(source)
        path = notebook_path(source)
        if to_run:
            runs.append(path)
        text = serialised(nb)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}" + (f" ({len(to_run)} code cell(s) not run yet)" if to_run else ""))
    if args.check:
        for name in stale:
            print(f"{name}: out of date with notebooks/src: run scripts/build_notebooks.py")
        return 1 if stale else 0
    if args.execute and runs:
        command = [sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--write-back", *map(str, runs)]
        return subprocess.call(command, cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
