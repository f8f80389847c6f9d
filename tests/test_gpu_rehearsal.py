"""scripts/gpu_rehearsal.py's arithmetic: notebook time at the profile's real number of steps, labelled an estimate.
(The whole script runs on a CPU with `--dry-run`; on a GPU it has not run yet: docs/gpu.md.)"""
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import gpu_rehearsal as gr  # noqa: E402


def test_extrapolation_uses_the_steps_after_the_first():
    report = {"runs": [{"step_seconds": [10.0, 12.0, 14.0], "steps": 3},  # warm-up 10 s, then 2 s a step
                       {"step_seconds": [5.0], "steps": 1}]}  # one step: its own time is all there is
    assert gr.extrapolated(100.0, report, 100) == pytest.approx(100.0 + 2.0 * 97 + 5.0 * 99)
    assert gr.extrapolated(100.0, {"runs": []}, 100) == 100.0


def test_the_kernel_startup_cuts_the_profile_and_remembers_its_real_steps(monkeypatch):
    import json
    import os

    import sdpo_lite.course.recipes as recipes

    monkeypatch.setattr(recipes, "PROFILES", dict(recipes.PROFILES))
    monkeypatch.setattr(recipes, "TASK_OVERRIDES", {k: dict(v) for k, v in recipes.TASK_OVERRIDES.items()})
    monkeypatch.setitem(os.environ, "SDPO_REHEARSAL_STEPS", "3")
    monkeypatch.setitem(os.environ, "SDPO_REHEARSAL_PROFILE", "gpu")
    monkeypatch.setitem(os.environ, "SDPO_REHEARSAL_BYTES", str(gr.T4_BYTES))
    exec(gr.STARTUP, {})
    real = json.loads(os.environ.pop("SDPO_REHEARSAL_REAL_STEPS"))
    assert real["addition"] == 100 and real["code"] == 40 and real["parity"] == 100
    assert recipes.choose_profile("gpu", task="code").steps == 3 == recipes.choose_profile("gpu").steps
