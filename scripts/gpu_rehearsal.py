#!/usr/bin/env python3
"""The notebooks' GPU path under a T4's limits, on the NVIDIA GPU of this machine (issue 17). Prepared, not yet run.

    python scripts/gpu_rehearsal.py --out "$OUT"                # on a GPU machine: notebooks 00-03, 3 steps a run
    python scripts/gpu_rehearsal.py --out /tmp/r --dry-run      # on a CPU: the same machinery with the tiny model

What it emulates, and how:
* **One visible GPU**: CUDA_VISIBLE_DEVICES=0, as the setup cell sets on Kaggle's T4 x2.
* **A T4's precision**: `torch.cuda.is_bf16_supported()` answers False in the kernel, before anything reads it, so
  sdpo_lite picks fp16 (fp32 master weights, autocast, TRL's grad scaler) and Unsloth picks float16, as on a T4.
* **A T4's memory**: `torch.cuda.set_per_process_memory_fraction(15e9 / this GPU's bytes)`: an allocation past
  15 GB raises torch's OutOfMemoryError, as it would on a T4 (which reports about 15.8e9 bytes, part of them taken
  by the CUDA context).
* **The GPU profile**: `SDPO_MODEL` names a random-weight model of Qwen2.5-0.5B-Instruct's shape, built here
  (`benchmarks/make_random_model.py`; the machine has no Hub), so every notebook chooses the `gpu` profile with its
  batch shapes and token budgets; each training run is cut to `--steps` optimiser steps.
Not emulated: a T4's speed. Step times are this GPU's; "extrapolated" notebook times are (this GPU's mean step
time after the first step) x (the profile's real steps) + the rest of the notebook, and are labelled as such.

Per notebook it records wall time, each run's step times, peak GPU memory (allocated and reserved), the
precision the kernel chose, and whether Unsloth was used (notebook 02), in OUT/gpu-rehearsal.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from rehearse import check_output, with_check_cell  # noqa: E402
from run_notebooks import run_notebook  # noqa: E402

T4_BYTES = 15 * 10**9
NOTEBOOKS = ["00_setup_and_baseline", "01_basic_sdpo", "02_sdpo_with_unsloth", "03_sdpo_rich_feedback"]

# Runs in every kernel before the first cell (an IPython startup file).
STARTUP = '''\
import json, os
import torch
if torch.cuda.is_available():
    _total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, int(os.environ["SDPO_REHEARSAL_BYTES"]) / _total), 0)
    torch.cuda.is_bf16_supported = lambda *args, **kwargs: False  # a T4 has no bf16
from dataclasses import replace as _replace
import sdpo_lite.course.recipes as _recipes
_steps = int(os.environ["SDPO_REHEARSAL_STEPS"])
_profile = os.environ["SDPO_REHEARSAL_PROFILE"]
os.environ["SDPO_REHEARSAL_REAL_STEPS"] = json.dumps(
    {task: over.get(_profile, {}).get("steps", _recipes.PROFILES[_profile].steps)
     for task, over in _recipes.TASK_OVERRIDES.items()})
_recipes.PROFILES[_profile] = _replace(_recipes.PROFILES[_profile], steps=_steps)
for _over in _recipes.TASK_OVERRIDES.values():
    if _profile in _over:
        _over[_profile] = {**_over[_profile], "steps": _steps}
'''

# Appended to every notebook: what the kernel ended with.
REPORT = '''\
# GPU rehearsal report (appended by scripts/gpu_rehearsal.py)
import json, os, sys
import torch
from sdpo_lite.course.models import choose_precision
from sdpo_lite.course.recipes import RunResult
_cuda = torch.cuda.is_available()
print("GPU_REHEARSAL", json.dumps({
    "device": torch.cuda.get_device_name(0) if _cuda else "cpu",
    "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "precision": choose_precision(),
    "peak_allocated_bytes": torch.cuda.max_memory_allocated() if _cuda else None,
    "peak_reserved_bytes": torch.cuda.max_memory_reserved() if _cuda else None,
    "unsloth_imported": "unsloth" in sys.modules,
    "real_steps": json.loads(os.environ["SDPO_REHEARSAL_REAL_STEPS"]),
    "runs": [{"label": v.label, "step_seconds": v.step_seconds, "seconds": v.seconds, "steps": len(v.step_seconds)}
             for v in list(globals().values()) if isinstance(v, RunResult)]}))
'''


def build_model(folder: Path, dry_run: bool) -> str:
    """The model every notebook loads: a random Qwen2.5-0.5B-shaped one (GPU), or the tiny one (--dry-run)."""
    if dry_run:
        return "tiny"
    if not (folder / "config.json").exists():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_random_model.py"), str(folder),
                        "--dtype", "float32"], check=True, cwd=REPO)
    return str(folder)


def extrapolated(seconds: float, report: dict, task_steps: int) -> float:
    """The notebook's wall time with every run at the profile's real number of steps (labelled an estimate)."""
    extra = 0.0
    for run in report["runs"]:
        times = run["step_seconds"]
        per_step = [b - a for a, b in zip(times, times[1:])] or times[:1]  # the first step carries the warm-up
        extra += (sum(per_step) / len(per_step)) * max(0, task_steps - run["steps"]) if per_step else 0.0
    return seconds + extra


TASK_OF = {"00_setup_and_baseline": "addition", "01_basic_sdpo": "addition", "02_sdpo_with_unsloth": "parity",
           "03_sdpo_rich_feedback": "code"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="where gpu-rehearsal.json and the notebooks go")
    ap.add_argument("--steps", type=int, default=3, help="optimiser steps per training run (default 3)")
    ap.add_argument("--notebooks", nargs="+", default=NOTEBOOKS, help="stems under notebooks/ (default: all)")
    ap.add_argument("--dry-run", action="store_true", help="CPU: the tiny model and profile, to test this script")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per cell")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_rehearsal_"))
    model = build_model(work / "qwen-shaped", args.dry_run)
    profile = "tiny" if args.dry_run else "gpu"
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-gpu-rehearsal.py").write_text(STARTUP)
    env = {"CUDA_VISIBLE_DEVICES": "0", "SDPO_MODEL": model, "IPYTHONDIR": str(work / "ipython"),
           "SDPO_REHEARSAL_BYTES": str(T4_BYTES), "SDPO_REHEARSAL_STEPS": str(args.steps),
           "SDPO_REHEARSAL_PROFILE": profile, "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)  # the kernels inherit this process's environment
    results = {"date": time.strftime("%Y-%m-%d"), "steps_per_run": args.steps, "t4_bytes": T4_BYTES,
               "model": "tiny (dry run)" if args.dry_run else "random weights, Qwen2.5-0.5B-Instruct's shape",
               "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                        text=True).stdout.strip(), "notebooks": []}
    for stem in args.notebooks:
        source = with_check_cell(REPO / "notebooks" / f"{stem}.ipynb", work / f"{stem}.ipynb", REPORT)
        run = run_notebook(source, args.out, args.timeout, write_back=False, cwd=REPO / "notebooks")
        report = check_output(args.out / f"{stem}.ipynb", "GPU_REHEARSAL")
        row = {"notebook": stem, "ok": run.ok, "error": run.error, "seconds": round(run.seconds, 1), "report": report}
        if report:
            real = report["real_steps"].get(TASK_OF.get(stem, "addition"), args.steps)
            row["extrapolated_seconds_at_real_steps"] = round(extrapolated(run.seconds, report, real), 1)
            row["real_steps"] = real
        results["notebooks"].append(row)
        (args.out / "gpu-rehearsal.json").write_text(json.dumps(results, indent=1))
        peak = (report or {}).get("peak_reserved_bytes")
        print(f"{stem}: {'ok' if run.ok else 'FAILED ' + str(run.error)}, {run.seconds:.0f} s, peak reserved "
              f"{peak / 2**30:.2f} GiB" if peak else f"{stem}: {'ok' if run.ok else 'FAILED ' + str(run.error)}, "
              f"{run.seconds:.0f} s", flush=True)
    return 0 if all(n["ok"] for n in results["notebooks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
