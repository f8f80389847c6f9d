"""benchmarks/test_time.py: saved searches -> the README's table, paired differences and figure."""
import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import test_time  # noqa: E402


def line(method, question, batches, lr=None, seed=0):
    return json.dumps({"method": method, "question": question, "seed": seed, "lr": lr, "batches": batches,
                       "attempts": [""] * sum(map(len, batches)), "feedback": [None] * sum(map(len, batches)),
                       "seconds": 1.0})


def test_report_reads_the_latest_line_and_the_chosen_learning_rate(tmp_path, capsys):
    F, T = False, True
    results = tmp_path / "searches.jsonl"
    results.write_text("\n".join([
        line("best-of-k", "a", [[T] + [F] * 7]), line("best-of-k", "b", [[F] * 8]),
        line("test-time SDPO", "a", [[F, F], [F, F]], lr=1e-4), line("test-time SDPO", "b", [[F, F], [F, F]], lr=1e-4),
        line("test-time SDPO", "a", [[F, T]], lr=1e-5), line("test-time SDPO", "b", [[F, F], [F, F]], lr=1e-5),
        line("test-time SDPO", "b", [[F, F], [T, F]], lr=1e-5),  # a rerun of (b, seed 0, 1e-5): this line wins
    ]) + "\n")
    figure = tmp_path / "curves.png"
    test_time.main(["report", "--results", str(results), "--figure", str(figure), "--lr", "1e-5"])
    out = capsys.readouterr().out
    assert "test-time SDPO at lr 1e-05 (saved rates: 1e-05, 0.0001)" in out
    # the budget is the shortest unsolved search among those reported: best-of-k's b, 8 attempts (lr 1e-4's
    # unsolved 4-attempt searches are not reported)
    assert "| test-time SDPO | 2 | 2 | 25% " in out  # within 1: a's batch of two holds one success (1/2), b: 0
    assert "test-time SDPO minus best-of-k, found within 8: +50%" in out and figure.exists()
    assert len(test_time.load(results)) == 6
