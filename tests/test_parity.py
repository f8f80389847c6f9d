"""The loss against reference vectors computed by the official SDPO code (../shared/parity)."""
import subprocess
import sys

from conftest import ROOT, shared_path


def test_official_parity_vectors():
    script = shared_path("parity", "check_loss.py")
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0 and last.endswith(" 0 failed"), run.stdout + run.stderr
    assert last == "17 passed, 0 failed" or int(last.split()[0]) >= 17, last
