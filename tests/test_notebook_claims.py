"""The prose of a notebook's summary against the numbers its own saved outputs recorded.

A summary that says "best-of-k found an answer with probability 61%" must be true of the run saved beside it:
when a rerun changes the numbers, these tests fail until the sentence is rewritten. The numbers are read from the
`key = value` lines that `record_result` prints into the saved outputs.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RECORDED = re.compile(r"^(\w+) = (\S+)$", re.MULTILINE)


def recorded(notebook: dict) -> dict[str, float]:
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            for key, value in RECORDED.findall("".join(output.get("text", ""))):
                values[key] = float(value)
    return values


def cell_text(notebook: dict, cell_id: str) -> str:
    cell = next(c for c in notebook["cells"] if c.get("id") == cell_id)
    return " ".join("".join(cell["source"]).split())  # one line: sentences wrap across the source's lines


def printed(notebook: dict, cell_id: str) -> str:
    cell = next(c for c in notebook["cells"] if c.get("id") == cell_id)
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))


@pytest.fixture(scope="module")
def nb04():
    notebook = json.loads((NOTEBOOKS / "04_test_time_sdpo.ipynb").read_text())
    return recorded(notebook), cell_text(notebook, "nb04-21"), printed(notebook, "nb04-16")


def test_notebook_04_summary_states_the_discovery_numbers_it_measured(nb04):
    values, summary, _ = nb04
    bok, sdpo, multi = (values[f"found_within_24_{m}"] for m in ("best_of_k", "test_time_SDPO", "multi_turn"))
    assert bok > sdpo and bok > multi, "the summary says no method found answers more often than best-of-k"
    assert (f"best-of-k found an answer within 24 attempts with probability {bok:.0%}, test-time SDPO {sdpo:.0%} "
            f"and multi-turn retry {multi:.0%}") in summary


@pytest.mark.parametrize("method, verdict", [("test-time SDPO", "no measurable difference"), ("multi-turn", "worse")])
def test_notebook_04_summary_states_the_paired_differences_and_their_verdicts(nb04, method, verdict):
    _, summary, output = nb04
    found = re.search(rf"{method} minus best-of-k, found within 24: ([+-]\d+)% \[95% interval ([+-]\d+)% to "
                      r"([+-]\d+)%\]", output)
    diff, low, high = map(int, found.groups())
    assert (low < 0 < high) == (verdict == "no measurable difference") and (high < 0) == (verdict == "worse")
    if method == "test-time SDPO":
        assert f"SDPO minus best-of-k is {diff:+d} points (95% interval {low:+d} to {high:+d}): {verdict}" in summary
    else:
        assert f"Multi-turn retry is {verdict} ({diff:+d} points, {low:+d} to {high:+d})" in summary


def test_notebook_04_summary_on_when_sdpo_found_its_answers(nb04):
    values, summary, _ = nb04
    assert values["sdpo_found_after_an_update"] == 2
    assert values["found_within_24_test_time_SDPO"] == pytest.approx(3 / 6, abs=1e-4)  # three discoveries of six
    assert "Two of its three discoveries came after at least one update" in summary


def test_notebook_04_summary_on_the_feedback_probe_and_what_the_updates_did(nb04):
    values, summary, _ = nb04
    low, high = values["probe_mean_change_too_low"], values["probe_mean_change_too_high"]
    assert low < 0 and high < 0, "the summary says the feedback lowered the right digit's probability"
    assert f"mean change {low:.3f} and {high:.3f}" in summary
    first, last = values["sdpo_answers_with_a_number_first_step"], values["sdpo_answers_with_a_number_last_step"]
    assert last < first
    assert f"fell from {first:.0%} in the first step to {last:.0%} in the last" in summary


# ----------------------------------------------------------------------------------------------------------------
# Notebook 01 quotes the regime map's base cell (its own setting, five seeds): the numbers must be the saved ones
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_cell():
    import sys

    sys.path.insert(0, str(NOTEBOOKS.parent / "benchmarks"))
    import regimes

    rows = regimes.load(regimes.RESULTS)
    per_method = {m: [rows[k]["after"] for k in sorted(rows) if k[0] == "base" and k[1] == m] for m in regimes.METHODS}
    return regimes, rows, per_method


def test_notebook_01_quotes_the_base_cell_of_the_regime_map(base_cell):
    regimes, rows, per_method = base_cell
    text = cell_text(json.loads((NOTEBOOKS / "01_basic_sdpo.ipynb").read_text()), "nb01-21")
    for method, name in (("grpo", "GRPO"), ("sdpo", "pure SDPO")):
        values = per_method[method]
        mean, half = regimes.interval(values)
        assert f"**{mean:.1%} ± {100 * half:.1f}** with {name}" in text, (method, mean, half)
        assert " / ".join(f"{100 * v:.1f}" for v in values) + "%" in text
        assert f"seeds 0-{len(values) - 1}" in text or method == "sdpo"
    diff, half, n = regimes.paired_difference(rows, "base", "sdpo")
    assert f"pure SDPO minus GRPO is **{100 * diff:+.1f} points ± {100 * half:.1f}**" in text
    assert regimes.verdict(diff, half, n) == "worse than GRPO" and "worse than GRPO here" in text
    assert (all(rows[("base", "sdpo", s)]["after"] < rows[("base", "grpo", s)]["after"] for s in range(n))
            == ("on every one of the five seeds" in text)) and n == 5
    blend = per_method["blend"]
    if len(blend) < 3:
        assert f"The blend has two seeds so far ({100 * blend[0]:.1f} and {100 * blend[1]:.1f}%)" in text
    else:
        mean, half = regimes.interval(blend)
        seeds = " / ".join(f"{100 * v:.1f}" for v in blend)
        assert f"The blend reaches **{mean:.1%} ± {100 * half:.1f}** (" + seeds in text
        diff, half, n = regimes.paired_difference(rows, "base", "blend")
        quoted = f"**{100 * diff:+.1f} points ± {100 * half:.1f}**: {regimes.verdict(diff, half, n)}"
        assert "blend minus GRPO is " + quoted in text
        over = [rows[("base", "blend", s)]["after"] - rows[("base", "sdpo", s)]["after"] for s in range(n)]
        mean, half = regimes.interval(over)
        assert f"it ends {100 * mean:.1f} points ± {100 * half:.1f} above pure SDPO" in text


def test_notebook_01_summary_states_the_base_cell_difference(base_cell):
    regimes, rows, _ = base_cell
    summary = cell_text(json.loads((NOTEBOOKS / "01_basic_sdpo.ipynb").read_text()), "nb01-31")
    diff, half, n = regimes.paired_difference(rows, "base", "sdpo")
    assert f"pure SDPO is worse than GRPO: {100 * diff:+.1f} points ± {100 * half:.1f} over five seeds" in summary
    assert n == 5


# ----------------------------------------------------------------------------------------------------------------
# Notebooks 00, 02 and 03: the sentences that quote a number printed above them
# ----------------------------------------------------------------------------------------------------------------
def load(name: str) -> dict:
    return json.loads((NOTEBOOKS / name).read_text())


def test_notebook_00_conclusion_quotes_its_baseline():
    notebook = load("00_setup_and_baseline.ipynb")
    correct, n = map(int, re.search(r"addition/heldout: (\d+)/(\d+) correct", printed(notebook, "nb00-10")).groups())
    assert recorded(notebook)["baseline_accuracy"] == pytest.approx(correct / n, abs=1e-4)
    assert f"({correct} of {n};" in cell_text(notebook, "nb00-13")


def answers(text: str) -> dict:
    """The answer counts of one parity evaluation line: "... | answers: {'even': 86, 'odd': 0, None: 14} | ..."."""
    counts = re.search(r"answers: \{'even': (\d+), 'odd': (\d+), None: (\d+)\}", text).groups()
    return dict(zip(("even", "odd", "none"), map(int, counts)))


def gib(text: str, when: str) -> float:
    return float(re.search(rf"{when}: process RSS ([\d.]+) GiB", text)[1])


def test_notebook_02_reading_of_its_run_quotes_the_run():
    notebook = load("02_sdpo_with_unsloth.ipynb")
    text, values = cell_text(notebook, "nb02-20"), recorded(notebook)
    before, after = answers(printed(notebook, "nb02-15")), answers(printed(notebook, "nb02-19"))
    assert (f'answered "even" to {before["even"]} of the 100 numbers and gave no answer to the other {before["none"]}: '
            f'{values["parity_heldout_before"]:.0%}') in text and before["odd"] == 0
    assert (f'"odd" {after["odd"]} times and "even" {after["even"]} times: {values["parity_heldout_after_blend"]:.0%}'
            in text) and after["none"] == 0, "'it answers every number'"
    loaded, trained = gib(printed(notebook, "nb02-09"), "after loading"), printed(notebook, "nb02-17")
    assert (f"about {loaded:.1f} GiB after loading to about {gib(trained, 'before training'):.1f} GiB after the first "
            f"evaluation and {gib(trained, 'after training'):.1f} GiB after training") in text


def test_notebook_03_summary_quotes_the_teachers_probabilities():
    """Section 4 prints, for each teacher, the row of the wrong token ' <': the student's and the teacher's top-3."""
    notebook = load("03_sdpo_rich_feedback.ipynb")
    blocks = printed(notebook, "nb03-13").split("\nteacher with ")[1:]
    fix = {}
    for block in blocks:
        name, row = block.split(":", 1)[0], next(line for line in block.splitlines() if line.strip().startswith("' <'"))
        student, teacher = row.split("|")[1:3]
        fix[name] = (float(re.search(r"' >=':([\d.]+)", student)[1]), float(re.search(r"' >=':([\d.]+)", teacher)[1]))
    assert len({s for s, _ in fix.values()}) == 1, "one student, three teachers"
    student, peer = fix["feedback"][0], "peer's solution"
    assert (f"the fix `>=` went from {student:.2f} to {fix['feedback'][1]:.2f} with the test feedback, to "
            f"{fix[peer][1]:.2f} with a peer's solution and to {fix['both'][1]:.2f} "
            "with both") in cell_text(notebook, "nb03-26")


def test_notebook_01_reads_the_sparse_reward_cell_as_saved(base_cell):
    regimes, rows, _ = base_cell
    notebook = load("01_basic_sdpo.ipynb")
    text, summary = cell_text(notebook, "nb01-61"), cell_text(notebook, "nb01-31")
    runs = {m: [rows[("digits3", m, s)] for s in range(5)] for m in ("grpo", "sdpo")}
    for method, name in (("grpo", "GRPO ends at"), ("sdpo", "pure SDPO at")):
        mean, half = regimes.interval([r["after"] for r in runs[method]])
        assert f"{name} **{mean:.1%} ± {100 * half:.1f}**" in text, (method, mean, half)
    diff, half, n = regimes.paired_difference(rows, "digits3", "sdpo")
    assert n == 5 and regimes.verdict(diff, half, n) == "better than GRPO"
    assert f"**{100 * diff:+.1f} points ± {100 * half:.1f}: better than GRPO**" in text
    assert f"+{100 * diff:.1f} points ± {100 * half:.1f}" in summary
    silent = [r for r in runs["grpo"] if not any(r["success"])]
    assert "In three of GRPO's five runs not one of the 192 rollouts was correct" in text and len(silent) == 3
    before = rows[regimes.before_key("addition3", runs["grpo"][0]["eval_tokens"])]["after"]
    assert f"answers {before:.1%} of the held-out problems" in text
    assert all(r["after"] == before for r in silent), "no correct rollout: zero advantages, no update"
    assert not any(runs["sdpo"][2]["success"]) and runs["sdpo"][2]["after"] > before, "seed 2 improved, no success"
    blend = [rows[("digits3", "blend", s)]["after"] for s in range(5)]
    mean, half = regimes.interval(blend)
    assert f"**{mean:.1%} ± {100 * half:.1f}** (" + " / ".join(f"{100 * v:.1f}" for v in blend) + "%)" in text
    diff, half, n = regimes.paired_difference(rows, "digits3", "blend")
    assert regimes.verdict(diff, half, n) == "better than GRPO" and n == 5
    assert f"blend minus GRPO **{100 * diff:+.1f} points ± {100 * half:.1f}: better than GRPO**" in text
    assert f"(+{100 * diff:.1f} points ± {100 * half:.1f} over GRPO)" in summary
    over = regimes.interval([b - r["after"] for b, r in zip(blend, runs["sdpo"])])
    assert f"{100 * over[0]:.1f} points ± {100 * over[1]:.1f} above pure SDPO" in text and over[0] > over[1]
    assert {round(120 * a) for a in (blend[2], runs["sdpo"][2]["after"], runs["grpo"][2]["after"])} == {7}, "seed 2"
    assert "Seed 2 is where every method ended at 5.8%" in text
    seconds = [sum(r["seconds"] for r in runs[m]) / 5 for m in ("grpo", "sdpo")]
    assert abs(seconds[1] - seconds[0]) < 0.1 * seconds[0], "'about the same training time per run'"
