#!/usr/bin/env python
"""Put the shared setup cell and the Colab/Kaggle badges into every course notebook.

    .venv/bin/python scripts/sync_setup_cells.py            # rewrite notebooks/*.ipynb where needed
    .venv/bin/python scripts/sync_setup_cells.py --check    # only report; exit 1 when a notebook is stale
    .venv/bin/python scripts/sync_setup_cells.py notebooks/01_*.ipynb   # just these

For each notebook it changes exactly these things and nothing else (outputs, ids and other metadata are kept):

* the **first code cell**'s source becomes ``notebook_cells.setup_cell_source()`` (the Unsloth variant for a
  notebook whose name mentions Unsloth), shown collapsed (``notebook_cells.SETUP_CELL_METADATA``);
* the **first markdown cell** ends with the notebook's "Open in Colab" / "Open in Kaggle" badges line (an
  existing badges line is replaced, so running this twice changes nothing);
* the notebook **metadata** that asks Colab and Kaggle for a GPU runtime (``notebook_cells.PLATFORM_METADATA``).

``scripts/build_notebooks.py`` runs it on every notebook it builds; run it alone after changing the repository URL.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from notebook_cells import PLATFORM_METADATA, SETUP_CELL_METADATA, setup_cell_source, wants_unsloth, with_badges

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def synced(nb: nbformat.NotebookNode, path: Path) -> list[str]:
    """Bring ``nb`` (read from ``path``) in line, in place; return what changed (empty: it already was)."""
    changed = []
    code = next((c for c in nb.cells if c.cell_type == "code"), None)
    if code is None:
        raise ValueError(f"{path.name} has no code cell to hold the setup cell")
    want = setup_cell_source(unsloth=wants_unsloth(path))
    if code.source != want:
        code.source = want
        changed.append("setup cell")
    changed += _set(code.metadata, SETUP_CELL_METADATA, "setup cell")
    markdown = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if markdown is not None:
        want = with_badges(markdown.source, path)
        if markdown.source != want:
            markdown.source = want
            changed.append("badges")
    changed += _set(nb.metadata, PLATFORM_METADATA, "metadata")
    return changed


def _set(metadata: dict, wanted: dict, label: str) -> list[str]:
    """Give `metadata` every key of `wanted`, in place; return what changed, as "<label> <key>"."""
    changed = [f"{label} {key}" for key, value in wanted.items() if metadata.get(key) != value]
    metadata.update(wanted)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    stale = 0
    for path in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        changed = synced(nb, path)
        if not changed:
            print(f"{path.name}: up to date")
            continue
        stale += 1
        if args.check:
            print(f"{path.name}: out of date ({', '.join(changed)}): run scripts/sync_setup_cells.py")
        else:
            nbformat.write(nb, path)
            print(f"{path.name}: updated {', '.join(changed)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
