#!/usr/bin/env python3
"""Create .venv and install the pinned environment from requirements.txt, in the order that keeps it sane.

1. torch alone, first: a plain `torch` (or anything that asks for it) could otherwise pull a multi-GB CUDA build.
   Which torch build is decided before pip runs, and said (see "torch build" below).
2. everything else above the "no-deps" marker, with pip's resolver (exact pins).
3. the packages below the marker with --no-deps (we want a file they ship, not their dependencies).
4. this repository, editable, without touching the pins.
Idempotent: a stamp file records the hash of requirements.txt + pyproject.toml; a second run does nothing.
Standard library only. Needs python3 >= 3.11 (trl 1.15 requires it); an older one stops with that message.
`--dry-run` prints the torch decision and the pip commands without creating or installing anything.

torch build. On Linux x86_64, PyPI's torch is the CUDA build (the torch wheel plus nvidia-* wheels, roughly 4 GB
to download); PyTorch's CPU-only wheels (about 200 MB, versions like 2.13.0+cpu) live on their own index. When pip
sees both, an `==2.13.0` pin picks 2.13.0+cpu (the local label sorts higher).
- torch in .venv already satisfies the pin: nothing is installed, no probe.
- SDPO_TORCH=cpu: torch's own step gets `--extra-index-url https://download.pytorch.org/whl/cpu` (extra, not
  --index-url, so torch's dependencies still come from PyPI or your mirror).
- SDPO_TORCH=cuda or SDPO_TORCH=default: pip's ordinary choice, no probe (CUDA on Linux x86_64; CPU-only on macOS,
  Windows and aarch64, where PyPI has nothing else).
- unset, Linux x86_64, no NVIDIA GPU (no /proc/driver/nvidia/version, no nvidia-smi on PATH): a HEAD request to the
  CPU index, at most PROBE_TIMEOUT seconds; if it answers, the CPU build; if not, a notice before pip starts
  (which build comes, how big, and the command for the CPU build).
- unset, NVIDIA GPU: the CUDA build, said in one line. Unset elsewhere: PyPI's build, nothing special to say.
The choice is not part of the stamp's fingerprint: it describes this machine, not the pins, and putting it there
would mean probing the network on every `make run`. SDPO_TORCH therefore matters when torch gets installed (a
fresh .venv or a new torch pin); to switch the build of an existing .venv, delete .venv and run `make setup` again.
"""
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
import venv
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".sdpo-installed"
MARKER = "# >>> installed with --no-deps"
PLATFORM_MARKER = "# >>> platform only"  # what follows is for the Colab/Kaggle setup cell, never .venv
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT = 5.0
NVIDIA_PROC = Path("/proc/driver/nvidia/version")
CHOICES = ("cpu", "cuda", "default")
CUDA_SIZE = "roughly 4 GB to download (the torch wheel plus nvidia-* CUDA wheels)"


class TorchPlan(NamedTuple):
    """What torch's install step does: whether it runs, its extra pip arguments, what to tell the user first."""
    install: bool
    pip_args: tuple = ()
    message: str = ""


def read_pins(path=ROOT / "requirements.txt"):
    """Return (resolved pins, no-deps pins) as lists of 'name==version' strings (the platform-only pins: neither)."""
    main, nodeps = [], []
    target = main
    for line in path.read_text().splitlines():
        if line.startswith(PLATFORM_MARKER):
            break
        if line.startswith(MARKER):
            target = nodeps
        line = line.split("#", 1)[0].strip()
        if line:
            target.append(line)
    return main, nodeps


def read_platform_pins(path=ROOT / "requirements.txt"):
    """The platform-only pins ('# name==version' lines after PLATFORM_MARKER): what the notebook setup cell adds
    on Colab/Kaggle where they apply. Commented out so that no `pip install -r` ever takes them."""
    text = path.read_text()
    section = text.split(PLATFORM_MARKER, 1)[1] if PLATFORM_MARKER in text else ""
    return re.findall(r"^#\s*([A-Za-z0-9_.-]+==\S+)", section, re.M)


def fingerprint():
    """Hash of the files that say what to install (not of the torch build: see the module docstring)."""
    h = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def pip(*args, dry_run=False):
    """Run pip in .venv, echoing the command first so a log shows what was installed and how."""
    cmd = [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd[3:]), *(["(dry run: not run)"] if dry_run else []), flush=True)
    if not dry_run:
        subprocess.run(cmd, check=True)


def installed_torch():
    """torch's version in .venv, or None; read from its metadata, because importing torch takes seconds."""
    for site in VENV.glob("lib/python*/site-packages"):
        for dist in importlib.metadata.distributions(name="torch", path=[str(site)]):
            return dist.version
    return None


def satisfies(installed, pin):
    """Does an installed version meet an exact pin? 2.13.0+cpu meets ==2.13.0 (PEP 440: the local label is ignored
    when the pin has none)."""
    want = pin.split("==", 1)[1]
    return installed is not None and (installed == want or ("+" not in want and installed.split("+")[0] == want))


def pypi_torch_is_cuda():
    """PyPI ships the CUDA build only for Linux x86_64; elsewhere its torch is CPU-only (or Apple's MPS) already."""
    return sys.platform.startswith("linux") and platform.machine() == "x86_64"


def has_nvidia_gpu():
    """The driver's /proc file or nvidia-smi: cheap, no CUDA library needed (there is none before torch)."""
    return NVIDIA_PROC.exists() or shutil.which("nvidia-smi") is not None


def cpu_index_reachable(url=CPU_INDEX + "/torch/", timeout=PROBE_TIMEOUT):
    """(reachable, why not): one HEAD request, bounded by `timeout` in all (DNS included, which a socket timeout does
    not cover), so a machine that cannot reach the index loses a few seconds, not pip's minutes of retries."""
    result = [False, f"no answer within {timeout:g} s"]

    def probe():
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as r:
                result[:] = [200 <= r.status < 300, f"HTTP {r.status}"]
        except Exception as e:  # any failure means "do not count on this index"
            result[:] = [False, str(getattr(e, "reason", e))]

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return tuple(result) if not worker.is_alive() else (False, f"no answer within {timeout:g} s")


def cpu_plan(why):
    """An extra index (not --index-url: torch's dependencies still come from PyPI or your mirror) for torch's step
    only; the later steps never see it."""
    return TorchPlan(True, ("--extra-index-url", CPU_INDEX), f"torch: CPU-only build from {CPU_INDEX} ({why})")


def unreachable_notice(pin, why):
    """The warning a GPU-less Linux user gets before pip may download the CUDA build: what, how big, how to avoid."""
    return (f"torch: NOTE no NVIDIA GPU here, and the CPU-only index {CPU_INDEX} did not answer ({why}).\n"
            f"  pip now installs {pin} from your usual indexes. From PyPI that is the CUDA build:\n"
            f"  {CUDA_SIZE}, useless without a GPU\n"
            "  (a +cpu wheel of that version in pip's find-links or mirror wins if there is one).\n"
            "  For the CPU build (about 200 MB) instead: press Ctrl-C now and, once that index is reachable, run\n"
            "      SDPO_TORCH=cpu make setup")


def decide_torch(pin, installed, choice=None):
    """The torch step's plan, decided before pip runs so the user hears about a multi-GB download in advance.
    choice is SDPO_TORCH's value (None or "" = decide from this machine)."""
    if satisfies(installed, pin):
        kept = f"; SDPO_TORCH={choice} applies only to a fresh .venv" if choice else ""
        return TorchPlan(False, (), f"torch {installed} already in .venv, kept{kept}")
    if choice == "cpu":
        return cpu_plan("SDPO_TORCH=cpu")
    if choice in ("cuda", "default"):
        return TorchPlan(True, (), f"torch: pip's default build (SDPO_TORCH={choice})")
    if not pypi_torch_is_cuda():
        return TorchPlan(True)
    if has_nvidia_gpu():
        return TorchPlan(True, (), f"torch: NVIDIA GPU found, so PyPI's CUDA build, {CUDA_SIZE}")
    reachable, why = cpu_index_reachable()
    if reachable:
        return cpu_plan("no NVIDIA GPU found; SDPO_TORCH=cuda for the CUDA build")
    return TorchPlan(True, (), unreachable_notice(pin, why))


def install_torch(pin, choice, dry_run=False):
    """Decide, say it, then install (or not): the message always comes before any pip output."""
    plan = decide_torch(pin, installed_torch(), choice)
    if plan.message:
        print(plan.message, flush=True)
    if plan.install:
        pip(*plan.pip_args, pin, dry_run=dry_run)
        if not dry_run:
            print(f"torch {installed_torch()} installed", flush=True)


def torch_choice(environ):
    """SDPO_TORCH, lower-cased; a typo stops the run rather than silently meaning "decide for me"."""
    choice = environ.get("SDPO_TORCH", "").strip().lower() or None
    if choice not in (None, *CHOICES):
        raise SystemExit(f"SDPO_TORCH={environ['SDPO_TORCH']!r}: use one of {', '.join(CHOICES)} (or leave it unset)")
    return choice


def main(argv=(), environ=None):
    if sys.version_info < (3, 11):
        print(f"Python {sys.version.split()[0]} is too old: the pinned trl 1.15 needs Python 3.11 or newer. Run this "
              "with a newer python3 (e.g. `python3.11 scripts/install_env.py`).", file=sys.stderr)
        return 1
    choice = torch_choice(os.environ if environ is None else environ)
    dry_run = "--dry-run" in argv
    if STAMP.exists() and STAMP.read_text() == fingerprint():
        print("environment up to date (.venv)")
        return
    if not PY.exists() and not dry_run:
        print(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    main_pins, nodeps = read_pins()
    torch = [p for p in main_pins if p.startswith("torch==")]
    for pin in torch:
        install_torch(pin, choice, dry_run)
    pip(*[p for p in main_pins if p not in torch], dry_run=dry_run)
    if nodeps:
        pip("--no-deps", *nodeps, dry_run=dry_run)
    pip("--no-deps", "-e", str(ROOT), dry_run=dry_run)
    if not dry_run:
        STAMP.write_text(fingerprint())
        print("environment ready (.venv)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
