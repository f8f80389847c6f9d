#!/usr/bin/env python3
"""Create .venv and install the pinned environment from requirements.txt, in the order that keeps it sane.

1. torch alone, first: a plain `torch` (or anything that asks for it) could otherwise pull a multi-GB CUDA build.
2. everything else above the "no-deps" marker, with pip's resolver (exact pins).
3. the packages below the marker with --no-deps (we want a file they ship, not their dependencies).
4. this repository, editable, without touching the pins.
Idempotent: a stamp file records the hash of requirements.txt + pyproject.toml; a second run does nothing.
Standard library only. Needs python3 >= 3.11 (trl 1.15 requires it); an older one stops with that message.
"""
import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".sdpo-installed"
MARKER = "# >>> installed with --no-deps"


def read_pins(path=ROOT / "requirements.txt"):
    """Return (resolved pins, no-deps pins) as lists of 'name==version' strings."""
    main, nodeps = [], []
    target = main
    for line in path.read_text().splitlines():
        if line.startswith(MARKER):
            target = nodeps
        line = line.split("#", 1)[0].strip()
        if line:
            target.append(line)
    return main, nodeps


def fingerprint():
    h = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def pip(*args):
    cmd = [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True)


def main():
    if sys.version_info < (3, 11):
        print(f"Python {sys.version.split()[0]} is too old: the pinned trl 1.15 needs Python 3.11 or newer. Run this "
              "with a newer python3 (e.g. `python3.11 scripts/install_env.py`).", file=sys.stderr)
        return 1
    if STAMP.exists() and STAMP.read_text() == fingerprint():
        print("environment up to date (.venv)")
        return
    if not PY.exists():
        print(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    main_pins, nodeps = read_pins()
    torch = [p for p in main_pins if p.startswith("torch==")]
    pip(*torch)
    pip(*[p for p in main_pins if p not in torch])
    if nodeps:
        pip("--no-deps", *nodeps)
    pip("--no-deps", "-e", str(ROOT))
    STAMP.write_text(fingerprint())
    print("environment ready (.venv)")


if __name__ == "__main__":
    sys.exit(main())
