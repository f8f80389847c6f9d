#!/usr/bin/env python
"""Execute the course notebooks headless and summarise what they measured.

    .venv/bin/python scripts/run_notebooks.py                      # every notebooks/*.ipynb
    .venv/bin/python scripts/run_notebooks.py notebooks/00_*.ipynb  # just these
    .venv/bin/python scripts/run_notebooks.py --write-back ...      # also refresh the saved outputs

For each notebook ``<name>.ipynb`` this writes

* ``outputs/<name>.ipynb``             the executed notebook (also when a cell failed: see where),
* ``outputs/figures/<name>-<n>.png``   every PNG figure, numbered in order,
* ``outputs/<name>.results.json``      what the notebook passed to ``sdpo_lite.course.evaluate.record_result``
                                       (the kernel finds the file through ``$SDPO_RESULTS``),

and finally prints one table: notebook, ok/FAILED, wall time, the kernel's peak memory (resident set, read from
``/proc/<kernel pid>/status`` VmHWM after every cell; Linux only; child processes such as the code sandbox are
not included), the cell that set the peak, recorded numbers. The exit status is non-zero when any notebook
failed. Re-running overwrites the same files (stale figures and results
of a notebook are removed first), so the script is idempotent.

Notebooks run in a fresh kernel started from *this* interpreter (jupyter_client maps the ``python3``
kernel's ``python`` to ``sys.executable``), with the notebook's folder as working directory, as
``pytest --nbval`` does.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO = Path(__file__).resolve().parent.parent
CELL_TIMEOUT_S = 1800


@dataclass
class Run:
    """One notebook's outcome."""

    name: str
    ok: bool = False
    seconds: float = 0.0
    results: dict = field(default_factory=dict)
    error: str = ""
    peak_mib: float | None = None  # the kernel's peak resident memory (VmHWM)
    peak_cell: int | None = None  # the cell during which that peak was reached
    marks: list = field(default_factory=list)  # (cell index, high-water mark in MiB after it), every code cell


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set size in MiB (Linux's VmHWM: a high-water mark, so no sampling misses it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found[1]) / 1024 if found else None


def track_peak_memory(client: NotebookClient, run: Run) -> None:
    """After every cell, read the kernel's high-water mark. The peak's cell is the first one that brought the mark
    within 2% of its final value (small later rises, e.g. a plot, would otherwise take the credit)."""
    marks = run.marks

    def after_cell(cell, cell_index, **_):
        process = getattr(getattr(client.km, "provisioner", None), "process", None)
        peak = peak_rss_mib(process.pid) if process is not None else None
        if peak is None:
            return
        marks.append((cell_index, round(peak)))
        run.peak_mib = peak
        run.peak_cell = next(i for i, mark in marks if mark >= 0.98 * peak)

    client.on_cell_executed = after_cell


@contextlib.contextmanager
def patched_env(**values: str) -> Iterator[None]:
    """Set environment variables for the kernel we are about to start, then restore them."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def save_figures(nb: nbformat.NotebookNode, name: str, folder: Path) -> int:
    """Write each PNG output as ``<name>-<n>.png`` (n from 1, in notebook order); return the count."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{name}-*.png"):
        stale.unlink()
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                count += 1
                (folder / f"{name}-{count}.png").write_bytes(base64.b64decode(png))
    return count


def run_notebook(path: Path, out_dir: Path, timeout: int, write_back: bool, kernel_name: str = "python3",
                 cwd: Path | None = None, checkout_on_path: bool = True) -> Run:
    """Execute one notebook in a fresh kernel and write its executed copy, figures and results.

    `kernel_name`, `cwd` (default: the notebook's folder) and `checkout_on_path=False` are for the platform
    rehearsal (scripts/rehearse.py): another interpreter's kernel, run where a platform would run it, finding
    sdpo_lite only the way the notebook's own setup cell makes it findable."""
    name = path.stem
    run = Run(name)
    results_path = out_dir / f"{name}.results.json"
    results_path.unlink(missing_ok=True)  # only this run's numbers end up in the summary
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(cwd or path.parent)}},
        record_timing=False,  # keep executed notebooks free of timestamps (clean diffs on write-back)
    )
    # PYTHONPATH: the kernel imports sdpo_lite from this checkout even if it isn't pip-installed.
    track_peak_memory(client, run)
    pythonpath = os.pathsep.join(filter(None, [str(REPO) if checkout_on_path else "", os.environ.get("PYTHONPATH")]))
    print(f"--- {name}: running", flush=True)
    start = time.perf_counter()
    with patched_env(SDPO_RESULTS=str(results_path.resolve()), PYTHONPATH=pythonpath):
        try:
            client.execute()
            run.ok = True
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # drop the traceback's colours
            run.error = text.splitlines()[-1] if text else type(err).__name__
        except Exception as err:  # e.g. the kernel did not start: report it, go on with the others
            run.error = f"{type(err).__name__}: {err}"
    run.seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / f"{name}.ipynb")
    figures = save_figures(nb, name, out_dir / "figures")
    if results_path.exists():
        run.results = json.loads(results_path.read_text())
    if write_back and run.ok:
        shutil.copyfile(out_dir / f"{name}.ipynb", path)
    status = "ok" if run.ok else f"FAILED: {run.error}"
    print(f"--- {name}: {status} in {run.seconds:.0f} s, peak memory {memory(run)}, {figures} figure(s)", flush=True)
    return run


def memory(run: Run) -> str:
    return "unknown" if run.peak_mib is None else f"{run.peak_mib / 1024:.2f} GiB (cell {run.peak_cell})"


def summary(runs: list[Run]) -> str:
    """A plain-text table, one row per notebook."""
    rows = [("notebook", "status", "time", "peak memory", "results")]
    for run in runs:
        numbers = ", ".join(f"{key}={value}" for key, value in sorted(run.results.items())) or "-"
        rows.append((run.name, "ok" if run.ok else "FAILED", f"{run.seconds:.0f} s", memory(run), numbers))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--out", type=Path, default=REPO / "outputs", help="default: outputs/")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT_S, help="seconds per cell")
    parser.add_argument("--write-back", action="store_true", help="copy successful runs over the sources")
    args = parser.parse_args(argv)

    paths = args.notebooks or sorted((REPO / "notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks to run", file=sys.stderr)
        return 1
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        print("no such notebook:", *missing, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [run_notebook(path.resolve(), args.out, args.timeout, args.write_back) for path in paths]
    print()
    print(summary(runs))
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
