"""Colab, Kaggle, Binder and local: platform detection, the shared setup cell, badges and links.

The setup cell is *executed* here, in a subprocess, under simulated platforms: once with
``SDPO_SETUP_DRY_RUN=1`` (it prints the commands it would run) and once for real with fake ``git`` and ``pip``
that only record their arguments. Nothing is cloned or installed.
"""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import nbformat
import pytest
from conftest import ROOT

from sdpo_lite.course import platform as plat

sys.path.insert(0, str(ROOT / "scripts"))
from notebook_cells import KEEP, LOCAL_MESSAGE, RUNTIME, setup_cell_source, wants_unsloth  # noqa: E402
from sync_setup_cells import synced  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PLATFORM_VARS = plat.COLAB_VARS + plat.KAGGLE_VARS
SIMULATED = {"colab": {"COLAB_RELEASE_TAG": "release-colab_20260101-060000_RC00", "COLAB_GPU": "1"},
             "kaggle": {"KAGGLE_KERNEL_RUN_TYPE": "Interactive", "KAGGLE_URL_BASE": "https://www.kaggle.com"}}


def pinned(name):
    """requirements.txt's pin of `name`: an active line, or a platform-only one (commented out)."""
    from install_env import read_pins, read_platform_pins

    main, nodeps = read_pins()
    return next(pin for pin in main + nodeps + read_platform_pins() if pin.startswith(f"{name}=="))


# --------------------------------------------------------------------------------------------------
# detect_platform and the one repository URL
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env, expected", [
    ({"COLAB_RELEASE_TAG": "release-colab_2026"}, "colab"),
    ({"COLAB_GPU": "1"}, "colab"),
    ({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, "kaggle"),
    ({"KAGGLE_URL_BASE": "https://www.kaggle.com"}, "kaggle"),
    ({}, "local"),
    ({"COLAB_RELEASE_TAG": "", "KAGGLE_URL_BASE": ""}, "local"),  # set but empty: not a platform
    ({"HOME": "/root", "PATH": "/usr/bin", "CONDA_PREFIX": "/srv/conda"}, "local"),  # Binder is local
])
def test_detect_platform_from_a_dict(env, expected):
    assert plat.detect_platform(env) == expected


@pytest.mark.parametrize("name", ["colab", "kaggle", "local"])
def test_detect_platform_from_the_process_environment(monkeypatch, name):
    for var in PLATFORM_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in SIMULATED.get(name, {}).items():
        monkeypatch.setenv(var, value)
    assert plat.detect_platform() == name


def test_the_repository_url_has_one_home():
    text = (ROOT / "pyproject.toml").read_text()
    table = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)[1]
    configured = re.search(r'^Repository\s*=\s*"([^"]+)"', table, re.M)[1]
    assert plat.repo_url() == configured
    assert plat.REPO_URL == configured, "sdpo_lite/platform.py REPO_URL must equal pyproject's [project.urls]"
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", configured)
    assert plat.repo_slug() == configured.removeprefix("https://github.com/")


def test_repo_url_without_pyproject_or_tomllib(tmp_path, monkeypatch):
    assert plat.repo_url(tmp_path / "absent.toml") == plat.REPO_URL  # an installed copy has no pyproject
    custom = tmp_path / "pyproject.toml"
    custom.write_text('[project]\nname = "x"\n\n[project.urls]\nHomepage = "https://example.org"\n'
                      'Repository = "https://github.com/someone/fork.git"\n\n[tool.x]\nRepository = "no"\n')
    assert plat.repo_url(custom) == "https://github.com/someone/fork"
    monkeypatch.setitem(sys.modules, "tomllib", None)  # Python 3.10: the regex reader
    assert plat.repo_url(custom) == "https://github.com/someone/fork"
    assert plat.repo_url() == plat.REPO_URL


def test_badge_urls():
    slug, nb = plat.repo_slug(), "notebooks/00_setup_and_baseline.ipynb"
    assert plat.colab_url(nb) == f"https://colab.research.google.com/github/{slug}/blob/main/{nb}"
    assert plat.kaggle_url(nb) == f"https://kaggle.com/kernels/welcome?src=https://github.com/{slug}/blob/main/{nb}"
    assert plat.binder_url() == f"https://mybinder.org/v2/gh/{slug}/HEAD?labpath=notebooks%2F{nb.split('/')[1]}"
    assert plat.colab_url(ROOT / nb) == plat.colab_url(nb)  # absolute paths inside the checkout work too
    line = plat.badge_markdown(nb)
    assert "Open In Colab" in line and "Open in Kaggle" in line and "mybinder" not in line
    assert plat.binder_url(nb) in plat.badge_markdown(nb, binder=True)
    with pytest.raises(ValueError):
        plat.colab_url("../elsewhere/x.ipynb")


# --------------------------------------------------------------------------------------------------
# The setup cell, executed under simulated platforms
# --------------------------------------------------------------------------------------------------

RECORDER = """\
import json, os, sys
with open(os.environ["TOOLS_LOG"], "a") as log:
    log.write(json.dumps(["{tool}", *sys.argv[1:]]) + "\\n")
"""


@pytest.fixture
def sandbox(tmp_path):
    """A working directory with a stand-in clone (only requirements.txt), fake torch/pip modules and a fake git.

    The fakes append their arguments to tools.log; fake torch reports CUDA when FAKE_CUDA=1.
    """
    (tmp_path / "sdpo-course").mkdir()
    (tmp_path / "sdpo-course" / "requirements.txt").write_text((ROOT / "requirements.txt").read_text())
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(
        "import os\nclass cuda:\n    is_available = staticmethod(lambda: os.environ.get('FAKE_CUDA') == '1')\n"
        "with open(os.environ['TOOLS_LOG'] + '.torch', 'w') as f:  # what CUDA would see when torch starts\n"
        "    f.write(os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'))\n")
    (fake / "pip").mkdir()
    (fake / "pip" / "__init__.py").write_text("")
    (fake / "pip" / "__main__.py").write_text(RECORDER.format(tool="pip"))
    (tmp_path / "bin").mkdir()
    git = tmp_path / "bin" / "git"
    git.write_text(f"#!{sys.executable}\n" + RECORDER.format(tool="git"))
    git.chmod(0o755)
    return tmp_path


def with_platform_torchao(sandbox, version="0.10.0"):
    """Make the sandbox look like Colab's image, which ships torchao (0.10.0 on Colab's published list)."""
    info = sandbox / "fake" / f"torchao-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torchao\nVersion: {version}\n")


def run_cell(sandbox, source, platform=None, dry_run=True, cuda=False, cwd=None, env_extra=None, check=True):
    env = {k: v for k, v in os.environ.items()
           if k not in PLATFORM_VARS and k not in ("SDPO_SETUP_DRY_RUN", "CUDA_VISIBLE_DEVICES", "SDPO_COURSE_REPO")}
    env.update(SIMULATED.get(platform, {}), FAKE_CUDA="1" if cuda else "0", TMPDIR=str(sandbox),
               TOOLS_LOG=str(sandbox / "tools.log"), PYTHONPATH=str(sandbox / "fake"),
               PATH=f"{sandbox / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    if dry_run:
        env["SDPO_SETUP_DRY_RUN"] = "1"
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", source + "\nprint('sys.path[0] =', sys.path[0])"], cwd=cwd or sandbox,
                         env=env, capture_output=True, text=True, timeout=120)
    if not check:
        return out
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1].startswith("sys.path[0] = ")
    return lines[:-1], lines[-1].removeprefix("sys.path[0] = ")


def check_plan(commands, sandbox, unsloth_expected, torchao_expected=False, repo=None):
    """The commands a hosted setup runs: clone, one pip resolve under constraints, the repo without deps."""
    assert len(commands) == 3, commands
    clone, install, editable = commands
    assert clone[:2] == ["git", "clone"] and (repo or plat.repo_url()) in clone and clone[-1] == "sdpo-course"
    assert install[:2] == ["pip", "install"], install
    args = install[2:]
    assert args[:3] == ["-q", "-c", str(sandbox / "sdpo-keep.txt")]
    requirements = args[3:]
    names = [r.split("==")[0] for r in requirements]
    for kept in KEEP:  # what the platform imported already is never installed, so never upgraded
        assert kept not in names, f"the setup cell would install {kept}: {install}"
    assert {n for n in names if n not in ("unsloth", "torchao")} == set(RUNTIME)
    for req in requirements:  # every one exact, and the pin of requirements.txt (unsloth: the verified release)
        assert req == pinned(req.split("==")[0]), f"{req} is not the pin of requirements.txt"
    assert ("unsloth" in names) == unsloth_expected
    assert ("torchao" in names) == torchao_expected
    assert editable == ["pip", "install", "-q", "--no-deps", "-e", "sdpo-course"]
    constraints = (sandbox / "sdpo-keep.txt").read_text().split()
    assert {c.split("==")[0] for c in constraints} <= set(KEEP)
    assert any(c.startswith("torch==") for c in constraints)  # this environment has torch: it is held fixed
    assert any(c.startswith("numpy==") for c in constraints)


@pytest.mark.parametrize("platform", ["colab", "kaggle"])
@pytest.mark.parametrize("unsloth, cuda", [(False, False), (False, True), (True, False), (True, True)])
def test_hosted_setup_dry_run(sandbox, platform, unsloth, cuda):
    printed, path0 = run_cell(sandbox, setup_cell_source(unsloth=unsloth), platform, cuda=cuda)
    commands = [shlex.split(line)[1:] for line in printed if line.startswith("$ ")]
    commands = [["pip", *c[3:]] if c[1:3] == ["-m", "pip"] else c for c in commands]  # python -m pip ...
    check_plan(commands, sandbox, unsloth_expected=unsloth and cuda)
    summary = [line for line in printed if not line.startswith("$ ")]
    assert len(summary) == 1 and summary[0].startswith(f"{platform} run: installed {pinned('transformers')}")
    assert "| kept torch==" in summary[0]
    assert Path(path0) == (sandbox / "sdpo-course").resolve()
    assert not (sandbox / "tools.log").exists(), "a dry run must not run git or pip"


@pytest.mark.parametrize("unsloth", [False, True])
def test_hosted_setup_runs_the_same_commands(sandbox, unsloth):
    """Without the dry-run switch the cell really calls git and pip (fakes here) with the planned arguments."""
    printed, _ = run_cell(sandbox, setup_cell_source(unsloth=unsloth), "colab", dry_run=False, cuda=True)
    logged = [json.loads(line) for line in (sandbox / "tools.log").read_text().splitlines()]
    check_plan(logged, sandbox, unsloth_expected=unsloth)
    assert printed[0].startswith("colab run: installed")


def test_hosted_setup_skips_an_existing_clone(sandbox):
    (sandbox / "sdpo-course" / ".git").mkdir()
    printed, _ = run_cell(sandbox, setup_cell_source(), "kaggle")
    assert not any(line.startswith("$ git") for line in printed)
    assert sum(line.startswith("$ ") for line in printed) == 2


@pytest.mark.parametrize("unsloth", [False, True])
def test_platform_torchao_is_replaced_by_the_pinned_one(sandbox, unsloth):
    """Colab ships torchao 0.10; peft 0.21 raises ImportError at the first LoRA layer unless torchao >= 0.16."""
    with_platform_torchao(sandbox)
    printed, _ = run_cell(sandbox, setup_cell_source(unsloth=unsloth), "colab", cuda=True)
    commands = [shlex.split(line)[1:] for line in printed if line.startswith("$ ")]
    commands = [["pip", *c[3:]] if c[1:3] == ["-m", "pip"] else c for c in commands]
    check_plan(commands, sandbox, unsloth_expected=unsloth, torchao_expected=True)
    from packaging.version import Version
    assert Version(pinned("torchao").split("==")[1]) >= Version("0.16"), "peft 0.21 refuses torchao < 0.16"


@pytest.mark.parametrize("platform", ["colab", "kaggle", None])
@pytest.mark.parametrize("preset, visible", [(None, "0"), ("1", "1"), ("0,1", "0"), ("1,0", "1")])
def test_one_gpu_is_visible_before_torch_starts(sandbox, platform, preset, visible):
    """Kaggle's "GPU T4 x2": TRL's GRPOTrainer raises when one process sees several GPUs. The cell makes GPU 0
    (or the first one listed) the only one, before its own `import torch` and before any later cell's."""
    (sandbox / "notebooks").mkdir()
    source = setup_cell_source(unsloth=True) + "\nprint('visible', os.environ['CUDA_VISIBLE_DEVICES'])"
    printed, _ = run_cell(sandbox, source, platform, cuda=True, cwd=sandbox / "notebooks" if platform is None else None,
                          env_extra={"CUDA_VISIBLE_DEVICES": preset} if preset else None)
    assert printed[-1] == f"visible {visible}"
    if platform:  # the Unsloth cell imports torch on a platform: CUDA already saw one GPU
        assert (sandbox / "tools.log.torch").read_text() == visible
    for source in (setup_cell_source(), setup_cell_source(unsloth=True)):
        lines = source.splitlines()
        first_torch = next((i for i, line in enumerate(lines) if "import torch" in line), len(lines))
        assert any("CUDA_VISIBLE_DEVICES" in line for line in lines[:first_torch])


@pytest.mark.parametrize("tool, failing", [("git", "fatal: unable to access 'https://github.com/': Could not resolve "
                                                   "host: github.com"),
                                           ("pip", "ERROR: No matching distribution found for trl==1.15.0")])
def test_a_failing_tool_shows_its_own_reason(sandbox, tool, failing):
    """On Colab a bare CalledProcessError hides why git or pip failed; the cell raises with their message."""
    script = sandbox / "bin" / "git" if tool == "git" else sandbox / "fake" / "pip" / "__main__.py"
    script.write_text(("" if tool == "pip" else f"#!{sys.executable}\n") +
                      f"import sys\nsys.stderr.write({failing!r} + '\\n')\nsys.exit(1)\n")
    if tool == "pip":
        (sandbox / "sdpo-course" / ".git").mkdir()  # already cloned: pip is the first tool to run
    out = run_cell(sandbox, setup_cell_source(), "kaggle", dry_run=False, check=False)
    assert out.returncode != 0
    assert "RuntimeError" in out.stderr and failing in out.stderr, out.stderr
    assert "CalledProcessError" not in out.stderr


def test_a_fork_or_a_local_clone_is_one_variable_away(sandbox):
    """SDPO_COURSE_REPO (a fork's URL, or a local path: the platform rehearsal) is what the cell clones; a fork
    that edits pyproject's Repository URL gets its own URL baked into the cell by sync_setup_cells."""
    printed, _ = run_cell(sandbox, setup_cell_source(), "colab", env_extra={"SDPO_COURSE_REPO": "/srv/my-clone"})
    commands = [shlex.split(line)[1:] for line in printed if line.startswith("$ ")]
    assert commands[0] == ["git", "clone", "-q", "--depth=1", "/srv/my-clone", "sdpo-course"]
    fork = "https://github.com/someone/sdpo-course"
    printed, _ = run_cell(sandbox, setup_cell_source(url=fork), "colab")
    assert [shlex.split(line)[1:] for line in printed if line.startswith("$ ")][0][-2] == fork


@pytest.mark.parametrize("unsloth", [False, True])
@pytest.mark.parametrize("dry_run", [False, True])
def test_local_setup_does_nothing_and_says_so(sandbox, unsloth, dry_run):
    (sandbox / "notebooks").mkdir()
    printed, path0 = run_cell(sandbox, setup_cell_source(unsloth=unsloth), None, dry_run=dry_run, cuda=True,
                              cwd=sandbox / "notebooks")
    assert printed == [LOCAL_MESSAGE]  # exactly what nb00's saved output holds (nbval compares it)
    assert Path(path0) == sandbox.resolve()
    assert not (sandbox / "tools.log").exists()


def test_setup_cell_template():
    plain, with_unsloth = setup_cell_source(), setup_cell_source(unsloth=True)
    for source in (plain, with_unsloth):
        compile(source, "<setup cell>", "exec")
        assert plat.repo_url() in source
        assert len(source.splitlines()) <= 36 and max(map(len, source.splitlines())) <= 120
    assert "unsloth" not in plain.lower()
    assert "torch.cuda.is_available()" in with_unsloth and "torch.cuda" not in plain
    assert not any(line.startswith(("!", "%")) for line in plain.splitlines())  # plain Python: runs anywhere


# --------------------------------------------------------------------------------------------------
# The notebooks carry the template and their badges (drift), and every link points somewhere real
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_setup_template(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == setup_cell_source(unsloth=wants_unsloth(path)), \
        f"{path.name}: the first code cell drifted from scripts/notebook_cells.py: run scripts/sync_setup_cells.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_opens_collapsed(path):
    """A learner's first sight is the lesson: Colab folds a `cellView: form` cell to its `# @title` line, JupyterLab
    and VS Code hide a `source_hidden` one."""
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert first.source.startswith("# @title "), "Colab shows a form cell's title; without one it shows the code"
    assert first.metadata.get("cellView") == "form"
    assert first.metadata.get("jupyter", {}).get("source_hidden") is True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_its_badges(path):
    nb = nbformat.read(path, as_version=4)
    assert synced(nb, path) == [], f"{path.name} is out of date: run scripts/sync_setup_cells.py"
    first_markdown = next(c for c in nb.cells if c.cell_type == "markdown")
    assert first_markdown.source.splitlines()[-1] == plat.badge_markdown(f"notebooks/{path.name}")


def markdown_sources():
    yield "README.md", ROOT, (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "markdown":
                yield f"{path.name} cell {i}", path.parent, cell.source


LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def check_repo_url(url, where):
    """A URL into this course's repository names the configured repository and an existing file."""
    slug = plat.repo_slug()
    parsed = urlparse(url)
    if parsed.netloc == "colab.research.google.com" and parsed.path.startswith("/github/"):
        found = re.fullmatch(r"/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/(.+)", parsed.path)
        assert found, f"{where}: malformed Colab link {url}"
        assert found[1] == slug and found[2] == plat.BRANCH, f"{where}: {url} is not {slug}@{plat.BRANCH}"
        target = found[3]
    elif parsed.netloc in ("kaggle.com", "www.kaggle.com") and parsed.path == "/kernels/welcome":
        src = parse_qs(parsed.query)["src"][0]
        assert src.startswith(f"{plat.repo_url()}/blob/{plat.BRANCH}/"), f"{where}: {url} is not {slug}"
        target = src.removeprefix(f"{plat.repo_url()}/blob/{plat.BRANCH}/")
    elif parsed.netloc == "mybinder.org" and parsed.path.startswith("/v2/gh/"):
        assert parsed.path.startswith(f"/v2/gh/{slug}/"), f"{where}: {url} is not {slug}"
        labpath = parse_qs(parsed.query).get("labpath")
        assert labpath, f"{where}: {url} opens no notebook (labpath=...)"
        target = unquote(labpath[0])
    elif parsed.netloc == "github.com" and parsed.path.lower().startswith(f"/{slug.lower()}/"):
        found = re.fullmatch(rf"/{re.escape(slug)}/(?:blob|tree)/{plat.BRANCH}/(.+)", parsed.path)
        if not found:
            return True  # the repository page itself, issues, ...
        target = found[1]
    else:
        return False  # somewhere else entirely
    assert (ROOT / target).exists(), f"{where}: {url} points to {target}, which does not exist"
    if "colab" in parsed.netloc or "kaggle" in parsed.netloc or "mybinder" in parsed.netloc:
        assert target.startswith("notebooks/") and target.endswith(".ipynb"), f"{where}: {url} is no notebook"
    return True


def test_every_badge_and_relative_link_resolves():
    checked = 0
    for where, base, text in markdown_sources():
        for url in LINK.findall(text):
            if url.startswith("#") or url.startswith("mailto:"):
                continue
            if re.match(r"[a-z]+://", url):
                checked += check_repo_url(url, where)
            else:
                target = unquote(url.split("#")[0])
                assert (base / target).exists(), f"{where}: relative link {url} points nowhere"
                checked += 1
    assert checked >= len(NOTEBOOKS) * 2  # at least every notebook's own two badges


def test_platform_hosts_match_the_badges():
    """Badge hosts are spelled one way, so the link check above recognises every one of them."""
    line = plat.badge_markdown("notebooks/00_setup_and_baseline.ipynb", binder=True)
    urls = LINK.findall(line)
    assert sum(check_repo_url(u, "badge_markdown") for u in urls) == 3  # the badge images are elsewhere


def test_binder_post_build():
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK), "binder/postBuild must be executable (chmod +x), or Binder ignores it"
    assert post.read_text().startswith("#!")
    assert "prepare_model" in post.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_ask_the_platforms_for_a_gpu(path):
    """Opened from a badge, a notebook without this metadata starts on a CPU runtime (and on Kaggle offline)."""
    meta = nbformat.read(path, as_version=4).metadata
    assert meta.get("accelerator") == "GPU" and meta.get("colab", {}).get("gpuType") == "T4"
    kaggle = meta.get("kaggle", {})
    assert kaggle.get("isGpuEnabled") is True and kaggle.get("isInternetEnabled") is True


# --------------------------------------------------------------------------------------------------
# How much memory a session may use (Binder: 2 GB), which picks the low-memory profile
# --------------------------------------------------------------------------------------------------

def fake_cgroup(tmp_path, v2=None, v1=None):
    if v2 is not None:
        (tmp_path / "memory.max").write_text(f"{v2}\n")
    if v1 is not None:
        (tmp_path / "memory").mkdir()
        (tmp_path / "memory" / "memory.limit_in_bytes").write_text(f"{v1}\n")
    return tmp_path


def test_memory_limit_is_the_smallest_of_cgroup_jupyterhub_and_ram(tmp_path):
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert plat.memory_limit_bytes({}, fake_cgroup(tmp_path / "none")) == ram
    assert plat.memory_limit_bytes({"MEM_LIMIT": "2147483648"}, tmp_path / "none") == 2**31  # Binder's JupyterHub
    (tmp_path / "v2").mkdir()
    assert plat.memory_limit_bytes({}, fake_cgroup(tmp_path / "v2", v2=2**30)) == 2**30
    (tmp_path / "v2max").mkdir()
    assert plat.memory_limit_bytes({}, fake_cgroup(tmp_path / "v2max", v2="max")) == ram
    (tmp_path / "v1").mkdir()
    assert plat.memory_limit_bytes({"MEM_LIMIT": "3000000000"}, fake_cgroup(tmp_path / "v1", v1=2**31)) == 2**31
    (tmp_path / "v1huge").mkdir()
    assert plat.memory_limit_bytes({}, fake_cgroup(tmp_path / "v1huge", v1=9223372036854771712)) == ram


def test_a_small_session_gets_the_lora_profile(monkeypatch):
    from sdpo_lite.course import recipes as course

    monkeypatch.setenv("SDPO_MODEL", "smollm2-135m")
    monkeypatch.setattr(plat, "memory_limit_bytes", lambda *a, **k: 2**31)  # Binder
    for task in ("addition", "code", "parity"):
        profile = course.choose_profile(task=task)
        assert profile.name == "lowmem" and profile.lora_rank, task
    monkeypatch.setattr(plat, "memory_limit_bytes", lambda *a, **k: 24 * 2**30)
    assert course.choose_profile().name == "cpu" and course.choose_profile().lora_rank is None
    monkeypatch.setattr(plat, "memory_limit_bytes", lambda *a, **k: None)  # unknown: assume enough
    assert course.choose_profile().name == "cpu"
