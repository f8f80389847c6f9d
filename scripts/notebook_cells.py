"""Cells that every course notebook shares: the setup cell (first code cell) and the badges line.

``scripts/build_notebooks.py`` and ``scripts/sync_setup_cells.py`` import from here, and
``tests/test_platform.py`` checks that every notebook's first code cell is exactly ``setup_cell_source()``.

The setup cell runs *before* ``sdpo_lite`` is importable on Colab/Kaggle, so it detects the platform inline
(the same rule as ``sdpo_lite.course.platform.detect_platform``). The repository URL is written into it here, at
generation time, from its one home: ``[project.urls] Repository`` in ``pyproject.toml``.

What it does:

* **everywhere, first**: one visible GPU, ``CUDA_VISIBLE_DEVICES=0`` (or the first one a learner listed). TRL's ``GRPOTrainer`` refuses a process that
  sees several GPUs (Kaggle's "GPU T4 x2"), and the variable only counts before torch first asks CUDA.
* **Colab / Kaggle**: clone the repository (shallow; ``SDPO_COURSE_REPO`` names another URL or a local path,
  for a fork or the platform rehearsal), then ``pip install`` the runtime pins of its ``requirements.txt``
  (``RUNTIME`` below) with a constraints file that holds the packages the platform has already imported
  (torch, numpy, pillow, ipywidgets) at their installed versions, so pip can never upgrade them and the runtime
  never needs a restart; then the repository itself with ``--no-deps -e``. Where the platform ships torchao
  (Colab: 0.10), our pinned torchao replaces it: peft refuses torchao older than 0.16 when it makes LoRA
  layers. The Unsloth notebook also installs the pinned ``unsloth``, only on a CUDA GPU. A failing git or pip
  raises with the tool's own message (``CalledProcessError`` alone says nothing).
* **locally**: nothing to install; it prints that it uses the project's environment.
* everywhere: puts the checkout on ``sys.path`` (so ``sdpo_lite`` imports without a kernel restart) and
  prints what it did. ``SDPO_SETUP_DRY_RUN=1`` prints the exact commands instead of running them.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sdpo_lite.course.platform import COLAB_VARS, KAGGLE_VARS, badge_markdown, repo_url  # noqa: E402

# Installed from the repository's requirements.txt on Colab/Kaggle. Not torch, numpy, pillow, ipywidgets:
# the platform ships (and has usually imported) them; upgrading them would need a runtime restart. Also from
# requirements.txt, when they apply: torchao (where the platform has one) and unsloth (notebook 02, CUDA GPU).
RUNTIME = ("transformers", "trl", "datasets", "peft", "accelerate", "tokenizers", "gguf")
KEEP = ("torch", "numpy", "pillow", "ipywidgets")
LOCAL_MESSAGE = "Local or Binder run: nothing to install, sdpo_lite comes from this checkout"

_TEMPLATE = '''\
# @title Setup (run first): on Colab/Kaggle it fetches the course and installs its pins; locally it does nothing
import os, subprocess, sys
from importlib.metadata import distributions
from pathlib import Path
REPO = os.environ.get("SDPO_COURSE_REPO", "{url}")  # or a fork, or a local clone
RUNTIME = {runtime}
KEEP = {keep}  # the platform's own: never upgraded, so no restart
GPU = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]  # one GPU: TRL's trainer refuses two (Kaggle)
os.environ["CUDA_VISIBLE_DEVICES"] = GPU  # set before torch asks CUDA, or it is ignored
on = lambda *names: any(os.environ.get(n) for n in names)
PLATFORM = ("colab" if on({colab}) else
            "kaggle" if on({kaggle}) else "local")
DRY_RUN = os.environ.get("SDPO_SETUP_DRY_RUN") == "1"  # print the commands instead of running them
def run(*cmd):  # on failure, show git's or pip's own reason (on Kaggle: is the notebook's Internet on?)
    done = print("$", *cmd) if DRY_RUN else subprocess.run(cmd, capture_output=True, text=True)
    if done and done.returncode:
        raise RuntimeError(f"{{' '.join(cmd[:4])}} ... failed:\\n{{(done.stderr or done.stdout)[-3000:]}}")
if PLATFORM != "local":
    repo = Path("{name}")
    if not (repo / ".git").exists():
        run("git", "clone", "-q", "--depth=1", REPO, str(repo))
    have = {{(d.metadata["Name"] or "").lower(): d.version for d in distributions()}}
    wanted = RUNTIME + ("torchao",) * ("torchao" in have)  # peft refuses a torchao older than 0.16 (Colab: 0.10){unsloth}
    pins = [p for p in (repo / "requirements.txt").read_text().split() if "==" in p and p.split("==")[0] in wanted]
    keep = [f"{{n}}=={{have[n]}}" for n in KEEP if n in have]
    constraints = Path(os.environ.get("TMPDIR", "/tmp"), "sdpo-keep.txt")
    constraints.write_text("\\n".join(keep) + "\\n")
    run(sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints), *pins)
    run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(repo))
    print(f"{{PLATFORM}} run: installed", *pins, "| kept", *keep)
else:
    repo = Path.cwd().parent  # this notebook lives in <repo>/notebooks
    print("{local}")
sys.path.insert(0, str(repo.resolve()))  # import sdpo_lite from the checkout, installed or not'''

_UNSLOTH = '''
    import torch  # the platform's own (in KEEP)
    wanted += ("unsloth",) * torch.cuda.is_available()  # Unsloth needs a CUDA GPU; its verified release is pinned'''


def _args(names) -> str:
    return ", ".join(f'"{name}"' for name in names)


def setup_cell_source(unsloth: bool = False, url: str | None = None) -> str:
    """The first code cell of every course notebook (``unsloth=True``: the Unsloth notebook's variant).

    ``url``: the repository to clone (default: ``[project.urls] Repository`` of pyproject.toml, where a fork
    writes its own; then ``scripts/sync_setup_cells.py`` rewrites every notebook's cell and badges)."""
    url = url or repo_url()
    return _TEMPLATE.format(colab=_args(COLAB_VARS), kaggle=_args(KAGGLE_VARS), name=url.rsplit("/", 1)[-1],
                            url=url, runtime=f"({_args(RUNTIME)})", keep=f"({_args(KEEP)})", local=LOCAL_MESSAGE,
                            unsloth=_UNSLOTH if unsloth else "")


def wants_unsloth(notebook: str | Path) -> bool:
    """The Unsloth variant of the setup cell goes into notebooks whose file name mentions Unsloth."""
    return "unsloth" in Path(notebook).name.lower()


# Notebook metadata that asks the platforms for a GPU, so "Run all" does not start on a CPU runtime. Colab reads
# `accelerator` + `colab.gpuType` when it opens a notebook from GitHub. `kaggle` is the block Kaggle writes into
# the notebooks it exports (T4, Internet on: the setup cell needs it); whether Kaggle's import honours it is not
# documented, so the README still says how to switch both on by hand.
PLATFORM_METADATA = {
    "accelerator": "GPU",
    "colab": {"gpuType": "T4", "provenance": []},
    "kaggle": {"accelerator": "nvidiaTeslaT4", "isGpuEnabled": True, "isInternetEnabled": True, "dataSources": [],
               "language": "python", "sourceType": "notebook"},
}


# The setup cell's own metadata: shown collapsed, so a learner's first sight is the lesson, not 30 lines of pip.
# Colab shows a cell with `cellView: form` and a `# @title` line as its title (code hidden until clicked);
# JupyterLab, Binder and VS Code read `jupyter.source_hidden`. GitHub and nbviewer show the code as it is.
SETUP_CELL_METADATA = {"cellView": "form", "jupyter": {"source_hidden": True}}


# The badges line that ends a notebook's first markdown cell (found again by its first badge).
BADGES_LINE = re.compile(r"^\[!\[Open In Colab\].*$", re.M)


def badges_line(notebook: str | Path) -> str:
    """"Open in Colab" / "Open in Kaggle" badges for a notebook under notebooks/."""
    return badge_markdown(f"notebooks/{Path(notebook).name}")


def with_badges(markdown: str, notebook: str | Path) -> str:
    """``markdown`` ending with the notebook's badges line (replacing an old one: idempotent)."""
    text = BADGES_LINE.sub("", markdown).rstrip()
    return f"{text}\n\n{badges_line(notebook)}"
