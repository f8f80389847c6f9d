"""benchmarks/regimes.py: the map's bookkeeping (which runs a cell needs, paired differences, verdicts) and one
tiny end-to-end run that writes rows and a report."""
import json
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import regimes  # noqa: E402


def rows_from(after: dict) -> dict:
    """{(cell, method, seed): accuracy} -> rows as `regimes.load` returns them."""
    return {key: {"kind": "run", "after": value, "eval_tokens": 24, "step_seconds": [], "success": [],
                  "seconds": 200.0 if key[1] == "grpo" else 300.0 + 10 * key[2]} for key, value in after.items()}


def test_cells_grpo_cannot_see_reuse_the_base_grpo_runs():
    assert regimes.planned(["fb-plain", "tokens32"], ["grpo", "sdpo"], [0, 1]) == [
        ("base", "grpo", 0), ("base", "grpo", 1), ("fb-plain", "sdpo", 0), ("fb-plain", "sdpo", 1),
        ("tokens32", "grpo", 0), ("tokens32", "grpo", 1), ("tokens32", "sdpo", 0), ("tokens32", "sdpo", 1)]
    assert all(c.grpo_sees_it for c in regimes.CELLS.values() if c.factor in ("difficulty", "budget", "learning rate"))
    assert not any(c.grpo_sees_it for c in regimes.CELLS.values() if c.factor in ("feedback", "teacher", "alpha"))


def test_paired_differences_and_their_verdicts():
    rows = rows_from({("base", "grpo", s): 0.5 for s in range(5)}
                     | {("fb-plain", "sdpo", s): 0.5 - 0.1 - 0.01 * s for s in range(5)}
                     | {("fb-reply", "sdpo", s): 0.5 + (0.05 if s % 2 else -0.05) for s in range(5)})
    mean, half, n = regimes.paired_difference(rows, "fb-plain", "sdpo")
    assert n == 5 and mean == pytest.approx(-0.12) and 0 < half < 0.12
    assert regimes.verdict(mean, half, n) == "worse than GRPO"
    assert regimes.verdict(*regimes.paired_difference(rows, "fb-reply", "sdpo")) == "no measurable difference"
    assert regimes.verdict(0.2, float("nan"), 1) == "1 seed(s): no interval yet"
    assert regimes.paired_difference(rows, "alpha0", "sdpo")[2] == 0
    assert '| feedback | "Wrong." | - | 50.0% ± 0.0% (n=5) | 38.0% ±' in regimes.table(rows)  # no baseline yet
    rows[regimes.before_key("addition", 24)] = {"kind": "before", "after": 0.142}
    table = regimes.table(rows)
    assert '| feedback | "Wrong." | 14.2% | 50.0% ± 0.0% (n=5) | 38.0% ±' in table and "worse than GRPO" in table
    wrong = next(line for line in table.splitlines() if '"Wrong."' in line)
    assert wrong.endswith("| 200 / 320 / - |"), "mean training seconds: GRPO's from the base cell, SDPO's own"


@pytest.mark.slow
def test_a_tiny_run_writes_rows_and_a_report(tmp_path, capsys):
    results = tmp_path / "runs.jsonl"
    common = ["--results", str(results)]
    regimes.main(["run", "--cells", "fb-format", "--methods", "grpo", "sdpo", "--seeds", "0", "--steps", "1",
                  "--profile", "tiny", *common])
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["cell"], r["method"]) for r in lines] == [("before", "before"), ("base", "grpo"), ("fb-format", "sdpo")]
    run = lines[2]
    assert run["profile"] == "tiny" and len(run["success"]) == len(run["step_seconds"]) == 1 and run["commit"]
    assert run["with_teacher"] and lines[1]["with_teacher"] == []
    regimes.main(["run", "--cells", "fb-format", "--methods", "sdpo", "--seeds", "0", "--profile", "tiny", *common])
    assert len(results.read_text().splitlines()) == 3  # saved runs are not run again
    regimes.main(["report", "--figure", str(tmp_path / "map.png"), *common])
    out = capsys.readouterr().out
    assert "| feedback | format/truncation" in out and (tmp_path / "map.png").stat().st_size > 10_000


def test_the_readme_quotes_the_regime_table_of_the_saved_runs():
    """The README's map is `regimes.py report`'s table of benchmarks/results/regimes.jsonl, not a retyped copy: a
    new saved run fails this test until the README shows it."""
    table = regimes.table(regimes.load(regimes.RESULTS))
    readme = (ROOT / "README.md").read_text()
    assert table in readme, "paste the table printed by `python benchmarks/regimes.py report` into the README"


def test_report_writes_the_table_between_the_markers_only(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(f"intro\n{regimes.TABLE_START}\nold table\n{regimes.TABLE_END}\noutro\n")
    regimes.write_table(page, "| new |")
    assert page.read_text() == f"intro\n{regimes.TABLE_START}\n| new |\n{regimes.TABLE_END}\noutro\n"
    page.write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        regimes.write_table(page, "| new |")


def test_the_readme_summary_quotes_the_five_seed_cells():
    """The README's "In short" states four paired differences: each must be the saved one, with its verdict."""
    rows = regimes.load(regimes.RESULTS)
    readme = " ".join((ROOT / "README.md").read_text().split())
    short = readme[readme.index("**In short**"):][:1200]

    def quoted(cell, method, points=""):
        mean, half, n = regimes.paired_difference(rows, cell, method)
        assert n == 5, (cell, method)
        return f"{100 * mean:+.1f}{points} ± {100 * half:.1f}", regimes.verdict(mean, half, n)

    text, verdict = quoted("base", "sdpo", " points")
    assert f"pure SDPO is **worse** than GRPO ({text})" in short and verdict == "worse than GRPO"
    text, verdict = quoted("base", "blend")
    assert f"shows **no measurable difference** ({text})" in short and verdict == "no measurable difference"
    text, verdict = quoted("digits3", "sdpo")
    assert f"pure SDPO is **better** ({text})" in short and verdict == "better than GRPO"
    text, verdict = quoted("digits3", "blend")
    assert f"the blend more so ({text})" in short and verdict == "better than GRPO"
