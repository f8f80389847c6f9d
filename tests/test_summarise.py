"""benchmarks/summarise.py: the 95% t-interval and the paired verdict that README tables quote."""
import json
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import summarise  # noqa: E402


def test_t_interval_matches_a_hand_computation():
    mean, half = summarise.interval([1.0, 2.0, 3.0])  # sd 1, n 3, t(2) = 4.303
    assert mean == 2.0 and half == pytest.approx(4.303 / 3 ** 0.5)
    assert summarise.t975(11) == summarise.T975[10]  # between tabulated values: the more conservative one


def test_paired_verdicts(tmp_path, capsys):
    rows = [{"method": m, "lr": 1e-5, "seed": s, "after": a} for m, s, a in
            [("grpo", 0, 0.60), ("grpo", 1, 0.62), ("grpo", 2, 0.55), ("sdpo", 0, 0.38), ("sdpo", 1, 0.43),
             ("sdpo", 2, 0.29), ("blend", 0, 0.62), ("blend", 1, 0.74), ("blend", 2, 0.54)]]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"rows": rows}))
    sys.argv = ["summarise.py", str(path), "--baseline", "grpo"]
    summarise.main()
    out = capsys.readouterr().out
    assert "| sdpo (lr 1e-05) | 0, 1, 2 |" in out and out.split("| sdpo (lr 1e-05)")[1].split("\n")[0].endswith("lower |")
    assert "| blend (lr 1e-05) | 0, 1, 2 |" in out and "no measurable difference" in out.split("| blend (lr 1e-05)")[1]
