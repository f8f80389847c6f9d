"""Where the course runs (Colab, Kaggle or a local checkout) and the links that open it there.

Standard library only: the notebook setup cell and the notebook builders use this before (or without)
the heavy dependencies. The repository URL has exactly one home, ``[project.urls] Repository`` in
``pyproject.toml``; ``REPO_URL`` below is the fallback for an installed copy without that file, and
``tests/test_platform.py`` fails when the two disagree.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Mapping
from urllib.parse import quote

REPO_URL = "https://github.com/sdpo-course/sdpo-course"  # kept equal to pyproject.toml by a test
BRANCH = "main"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"  # sdpo_lite/course/platform.py -> the checkout
FIRST_NOTEBOOK = "notebooks/00_setup_and_baseline.ipynb"

# Environment variables that only these platforms set (any one of them is enough).
COLAB_VARS = ("COLAB_RELEASE_TAG", "COLAB_GPU")
KAGGLE_VARS = ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE")

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"


def _read_repository_url(pyproject: Path) -> str | None:
    """``[project.urls] Repository`` from a pyproject.toml, or None (tomllib where there is one, else a regex)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # 3.10: the table is simple enough for a regex
        table = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        found = table and re.search(r'^\s*"?Repository"?\s*=\s*"([^"]+)"', table[1], re.M)
        return found[1] if found else None
    return tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")


def repo_url(pyproject: Path | None = None) -> str:
    """The course's GitHub repository, ``https://github.com/<owner>/<repo>`` (no trailing slash)."""
    return (_read_repository_url(pyproject or PYPROJECT) or REPO_URL).rstrip("/").removesuffix(".git")


def repo_slug(url: str | None = None) -> str:
    """``<owner>/<repo>`` of a GitHub URL (default: :func:`repo_url`)."""
    url = url or repo_url()
    found = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url)
    if not found:
        raise ValueError(f"not a GitHub repository URL: {url!r}")
    return f"{found[1]}/{found[2]}"


def detect_platform(environ: Mapping[str, str] | None = None) -> str:
    """``"colab"``, ``"kaggle"`` or ``"local"``, from the environment variables those platforms set."""
    env = os.environ if environ is None else environ
    if any(env.get(name) for name in COLAB_VARS):
        return "colab"
    if any(env.get(name) for name in KAGGLE_VARS):
        return "kaggle"
    return "local"


def memory_limit_bytes(environ: Mapping[str, str] | None = None, cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory this session may use, in bytes: the smallest of the container's cgroup limit (v2 ``memory.max``,
    v1 ``memory/memory.limit_in_bytes``), JupyterHub's ``MEM_LIMIT`` (Binder sets it: 2 GB) and the machine's RAM.
    None where none of them can be read. Why: a notebook that picks its run size from the hardware must not pick
    full fine-tuning (about 3.3 GB for SmolLM2-135M) in a 2 GB Binder session, where the kernel would be killed."""
    env = os.environ if environ is None else environ
    limits = []
    for path in (cgroup / "memory.max", cgroup / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or v1's huge number: no limit
            limits.append(int(text))
    if env.get("MEM_LIMIT", "").strip().isdigit():
        limits.append(int(env["MEM_LIMIT"]))
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
        pass
    return min(limits) if limits else None


def _notebook_path(notebook_path: str | os.PathLike) -> str:
    """A notebook's path inside the repository, POSIX style (``notebooks/00_....ipynb``)."""
    path = Path(notebook_path)
    if path.is_absolute():
        path = path.resolve().relative_to(PYPROJECT.parent)
    posix = PurePosixPath(path.as_posix())
    if ".." in posix.parts or posix.suffix != ".ipynb":
        raise ValueError(f"not a notebook inside the repository: {notebook_path!r}")
    return str(posix)


def github_blob_url(notebook_path: str | os.PathLike) -> str:
    return f"{repo_url()}/blob/{BRANCH}/{_notebook_path(notebook_path)}"


def colab_url(notebook_path: str | os.PathLike) -> str:
    return f"https://colab.research.google.com/github/{repo_slug()}/blob/{BRANCH}/{_notebook_path(notebook_path)}"


def kaggle_url(notebook_path: str | os.PathLike) -> str:
    return f"https://kaggle.com/kernels/welcome?src={github_blob_url(notebook_path)}"


def binder_url(notebook_path: str | os.PathLike = FIRST_NOTEBOOK) -> str:
    """Binder builds ``binder/`` (the CPU profile) and opens this notebook in JupyterLab."""
    return f"https://mybinder.org/v2/gh/{repo_slug()}/HEAD?labpath={quote(_notebook_path(notebook_path), safe='')}"


def badge_markdown(notebook_path: str | os.PathLike, binder: bool = False) -> str:
    """One line of "Open in Colab" and "Open in Kaggle" badges (and Binder with ``binder=True``)."""
    badges = [f"[![Open In Colab]({COLAB_BADGE})]({colab_url(notebook_path)})",
              f"[![Open in Kaggle]({KAGGLE_BADGE})]({kaggle_url(notebook_path)})"]
    if binder:
        badges.append(f"[![Launch Binder]({BINDER_BADGE})]({binder_url(notebook_path)})")
    return " ".join(badges)
