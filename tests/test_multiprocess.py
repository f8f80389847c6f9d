"""Two processes must give the same step as one process on the same global batch (groups span processes).

The script tests/scripts/one_step.py fixes the "generations" by each rollout's global index and uses SGD, so
equal weights after the step mean equal gradients. With 8 generations per prompt and 4 rollouts per process,
every group is split across the two processes: choosing demonstrations locally would change the teacher prompts.
Launched with torchrun (torch.distributed.run, what `accelerate launch` runs under the hood for multi-process);
accelerate's launcher on a CPU-only machine falls back to a single process.
"""
import os
import socket
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

SCRIPT = ROOT / "tests" / "scripts" / "one_step.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, tmp_path, name, launcher=()):
    out = tmp_path / f"{name}.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, str(SCRIPT), str(out), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    single = run(["8", "1"], tmp_path, "single", launcher=(sys.executable,))
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(free_port()))
    double = run(["4", "1"], tmp_path, "double", launcher=torchrun)
    accum = run(["4", "2"], tmp_path, "accum", launcher=(sys.executable,))
    assert single["frac_with_teacher"] > 0  # distillation really ran
    for other in (double, accum):
        assert other["loss"] == pytest.approx(single["loss"], rel=1e-5)
        for k, v in single["state"].items():
            torch.testing.assert_close(other["state"][k], v, atol=1e-7, rtol=1e-5)
