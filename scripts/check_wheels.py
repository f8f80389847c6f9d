#!/usr/bin/env python3
"""Check that every exact pin in requirements.txt has a wheel for another platform's Python (default: Colab's 3.13).

Why: the notebooks run on Colab (Python 3.13), Kaggle and Binder, not only on the Python 3.11 of this machine and CI.
`pip install` here only ever resolves for its own interpreter, so a pin whose release has no wheel for the
notebook's Python (only an sdist, or wheels up to cp312) goes unnoticed until a student's setup cell fails or spends
minutes compiling. This script asks pip itself, pin by pin, whether it would install a binary or pure-Python wheel for
the target Python version and platform: pip's own finder decides (wheel tags, Requires-Python, yanked releases).

    python scripts/check_wheels.py                         # every pin, for CPython 3.13 on manylinux x86_64
    python scripts/check_wheels.py --python-version 3.12   # ... for 3.12
    python scripts/check_wheels.py torchao==0.17.0 unsloth==2026.10.9   # the pins plus these

It reads every section of requirements.txt (above and below the "installed with --no-deps" marker) with
install_env.read_pins, the reader the installer uses. It prints one line per pin and exits 1 if any has no wheel.

How, without downloading wheels: each pin runs
    pip install --dry-run --ignore-installed --no-deps --only-binary=:all: --python-version X --platform ... --target T
and the script stops pip at the line where it names the file it chose ("Downloading torch-2.13.0-cp313-...whl",
"Using cached ...", "Processing /local/file.whl"): that line is the answer. Letting pip finish would download the
whole wheel (527 MB for torch) unless the index advertises PEP 658 metadata, and `pip index versions` cannot stand in:
it ignores --only-binary, so an sdist-only release looks available. Details:
- --platform is taken literally (manylinux_2_28_x86_64 does not imply manylinux_2_17_x86_64), so every manylinux tag
  that a glibc-2.28 machine accepts is passed, as pip does for its own interpreter.
- PIP_CONSTRAINT is set to /dev/null for the pip it runs: a machine's constraint file (this one caps torch at the
  versions it has on disk) says nothing about what the index holds.
- pip's temporary files go to a directory that is removed afterwards, also when pip was stopped.
Standard library only.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from install_env import ROOT, read_pins, read_platform_pins  # noqa: E402

DEFAULT_PYTHON = "3.13"  # Colab's runtime (../shared/platforms/colab-gpu-pip-freeze.txt)
DEFAULT_PLATFORM = "manylinux_2_28_x86_64"
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}  # PEP 599/571/513 names
PIN = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:\[[^\]]*\])?==([0-9][^\s;,]*)")
MANYLINUX = re.compile(r"manylinux_2_(\d+)_(\w+)")
# pip names the file it picked on one of these lines, before fetching it
CHOSEN = re.compile(r"^\s*(?:Downloading|Using cached|Processing)\s+(\S+)")
NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (\S+) \(from versions: (.*)\)")
PIN_TIMEOUT_S = 300


def pins_to_check(pins_file, extra=()):
    """Every pin of the file (read_pins' sections, then the platform-only ones) and the extra ones; each once."""
    sections = [*read_pins(Path(pins_file)), read_platform_pins(Path(pins_file))]
    pins = list(dict.fromkeys([pin for section in sections for pin in section] + list(extra)))
    bad = [p for p in pins if not PIN.fullmatch(p)]
    if bad:
        raise ValueError(f"not an exact pin (name==version): {', '.join(bad)}")
    return pins


def platform_tags(platforms):
    """The --platform values pip needs: each manylinux_2_N tag, then every older one down to 2_5, with legacy names.

    pip expands only the legacy manylinux2014/2010 names; manylinux_2_28_x86_64 alone would miss wheels tagged
    manylinux_2_17 / manylinux2014, which most projects publish. Other platforms pass through unchanged.
    """
    tags = []
    for platform in platforms:
        m = MANYLINUX.fullmatch(platform)
        if not m:
            tags.append(platform)
            continue
        glibc_minor, arch = int(m[1]), m[2]
        for minor in range(glibc_minor, 4, -1):
            tags.append(f"manylinux_2_{minor}_{arch}")
            if minor in LEGACY_MANYLINUX:
                tags.append(f"{LEGACY_MANYLINUX[minor]}_{arch}")
    return list(dict.fromkeys(tags))


def pip_command(pin, python_version, platforms, target, python=sys.executable):
    """The pip call that shows which wheel pip would install for `pin` on the target Python and platforms."""
    return [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--only-binary=:all:",
            "--python-version", python_version, *[f"--platform={p}" for p in platforms], "--target", target,
            "--progress-bar", "off", "--disable-pip-version-check", "--no-input", pin]


def pip_env(tmp):
    """The environment for that pip: no constraint file, temporary files under `tmp`."""
    return dict(os.environ, PIP_CONSTRAINT=os.devnull, TMPDIR=tmp)


def verdict(lines):
    """(True, wheel file name) or (False, reason), read from pip's output; stops reading at the first decisive line."""
    seen = []
    for line in lines:
        m = CHOSEN.match(line)
        if m:
            name = unquote(m[1].rsplit("/", 1)[-1]).removesuffix(".metadata")
            if name.endswith(".whl"):
                return True, name
            return False, f"pip chose {name}, which is not a wheel"
        seen.append(line.strip())
    for line in seen:
        m = NO_VERSION.search(line)
        if m:
            versions = [v.strip() for v in m[2].split(",")]
            if versions == ["none"]:
                return False, "no wheel of any version (sdist only, other platforms or Pythons, or no such project)"
            return False, f"no wheel of this version; newest versions with one: {', '.join(versions[-3:])}"
    for line in seen:
        if line.startswith("Would install"):  # finished without naming a file (not seen with pip 23-26)
            return True, line.removeprefix("Would install").strip()
    errors = [line for line in seen if line.startswith("ERROR:")]
    return False, (errors or [line for line in seen if line] or ["pip printed nothing"])[-1]


def check_pin(pin, python_version, platforms, timeout=PIN_TIMEOUT_S):
    """Run pip for one pin, stop it once it has chosen a file, return verdict()."""
    with tempfile.TemporaryDirectory(prefix="check-wheels-") as tmp:
        cmd = pip_command(pin, python_version, platforms, target=os.path.join(tmp, "target"))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=pip_env(tmp))
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            ok, detail = verdict(proc.stdout)
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()  # the answer is in: don't let it download the wheel
            proc.wait()
            proc.stdout.close()
        if not ok and proc.returncode < 0 and detail == "pip printed nothing":
            detail = f"pip gave no answer within {timeout} s"
        return ok, detail


def main(argv=None, check=check_pin):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("extra", nargs="*", metavar="NAME==VERSION", help="pins to check as well")
    parser.add_argument("--pins", default=ROOT / "requirements.txt", type=Path, help="pin file (requirements.txt)")
    parser.add_argument("--python-version", default=DEFAULT_PYTHON, help=f"target Python (default {DEFAULT_PYTHON})")
    parser.add_argument("--platform", action="append", help=f"target platform (default {DEFAULT_PLATFORM}); "
                        "older manylinux tags are added")
    parser.add_argument("--jobs", type=int, default=4, help="pins checked at once (default 4)")
    args = parser.parse_args(argv)
    try:
        pins = pins_to_check(args.pins, args.extra)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    platforms = platform_tags(args.platform or [DEFAULT_PLATFORM])
    print(f"wheels for Python {args.python_version} on {platforms[0]} (+{len(platforms) - 1} older tags), "
          f"{len(pins)} pins", flush=True)
    start = time.monotonic()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(lambda pin: check(pin, args.python_version, platforms), pins))
    width = max(len(p) for p in pins)
    for pin, (ok, detail) in zip(pins, results):
        print(f"{'found' if ok else 'MISSING':8} {pin:{width}}  {detail}")
    missing = sum(not ok for ok, _ in results)
    print(f"{len(pins) - missing} found, {missing} missing ({time.monotonic() - start:.1f} s)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
