"""The notebooks' exercises: each check fails on the stub a learner starts from and on plausible wrong answers, and
passes on the reference solution (sdpo_lite.course.solutions)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sdpo_lite.course import exercises, solutions
from sdpo_lite.course.rewards import addition_reward_rich

SOURCES = Path(__file__).resolve().parent.parent / "notebooks" / "src"
# exercise -> (notebook source, the stub cell's id, the function it defines, the check cell's id)
NOTEBOOK_EXERCISES = {
    "higher_lower": ("01_basic_sdpo.py", "nb01-29", "higher_lower_reward", "nb01-30"),
    "without_thinking": ("02_sdpo_with_unsloth.py", "nb02-26", "without_thinking", "nb02-27"),
    "terse": ("03_sdpo_rich_feedback.py", "nb03-24", "terse_reward", "nb03-25"),
}


def cell_source(notebook: str, cell_id: str) -> str:
    text = (SOURCES / notebook).read_text()
    match = re.search(rf'^# %%[^\n]*id="{cell_id}"[^\n]*\n(.*?)(?=^# %%|\Z)', text, flags=re.DOTALL | re.MULTILINE)
    assert match, f"cell {cell_id} not found in {notebook}"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(exercises.CHECKS))
def test_the_check_passes_on_the_reference_solution(name, capsys):
    assert exercises.check(name, exercises.CHECKS[name][1]) is True
    assert capsys.readouterr().out.startswith("Passed:")


@pytest.mark.parametrize("name", sorted(NOTEBOOK_EXERCISES))
def test_the_notebook_stub_fails_its_own_check_cell(name, capsys):
    notebook, stub_id, function, check_id = NOTEBOOK_EXERCISES[name]
    from sdpo_lite.course.rewards import code_execution_reward

    namespace: dict = {"code_execution_reward": code_execution_reward}  # imported by an earlier cell of notebook 03
    exec(cell_source(notebook, stub_id), namespace)  # the learner's starting point, as the notebook has it
    stub = namespace[function]
    check_cell = cell_source(notebook, check_id)
    assert f"check(\"{name}\", {function})" in check_cell, "the check cell checks this exercise's function"
    assert exercises.check(name, stub) is False
    out = capsys.readouterr().out
    assert "Not solved yet" in out and f"show_solution({name!r})" in out, out


def test_higher_lower_check_refuses_feedback_that_gives_the_sum_away(capsys):
    assert exercises.check("higher_lower", addition_reward_rich) is False  # "Wrong: 23 + 45 = 68, ..."
    assert "Not yet" in capsys.readouterr().out


def test_higher_lower_check_refuses_a_hint_that_also_names_the_sum(capsys):
    def leaky(prompts, completions, expected, **kwargs):
        outs = solutions.higher_lower_reward(prompts, completions, expected)
        return [{**o, "feedback": o["feedback"] + f" The sum is {e}." if o["score"] == 0 else o["feedback"]}
                for o, e in zip(outs, expected)]

    assert exercises.check("higher_lower", leaky) is False
    assert "must not contain the sum" in capsys.readouterr().out


def test_higher_lower_check_refuses_the_wrong_direction(capsys):
    def backwards(prompts, completions, expected, **kwargs):
        outs = solutions.higher_lower_reward(prompts, completions, expected)
        swap = {"high": "low", "low": "high"}
        return [{**o, "feedback": re.sub("high|low", lambda m: swap[m.group()], o["feedback"])} for o in outs]

    assert exercises.check("higher_lower", backwards) is False
    assert "too high" in capsys.readouterr().out


def test_higher_lower_check_refuses_scores_from_the_first_number(capsys):
    def first_number(prompts, completions, expected, **kwargs):
        texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
        firsts = [int(m.group()) if (m := re.search(r"\d+", t)) else None for t in texts]
        return [{"score": float(a == e), "feedback": "Wrong."} for a, e in zip(firsts, expected)]

    assert exercises.check("higher_lower", first_number) is False
    assert "scores" in capsys.readouterr().out


def test_without_thinking_check_refuses_a_greedy_pattern_and_a_missing_strip(capsys):
    greedy = lambda text: re.sub(r"<think>.*</think>", "", text, flags=re.DOTALL).strip()  # eats the answer between
    no_dotall = lambda text: re.sub(r"<think>.*?</think>", "", text).strip()  # misses blocks across lines
    for wrong in (greedy, no_dotall, str.strip):
        assert exercises.check("without_thinking", wrong) is False
    assert capsys.readouterr().out.count("Not yet") == 3


def test_without_thinking_solution_matches_the_trainer(capsys):
    from sdpo_lite.reprompt import strip_thinking

    for text, expected in exercises.THINKING_CASES:
        assert strip_thinking(text, "think")[0] == expected == solutions.without_thinking(text)


def test_terse_check_refuses_the_full_feedback_and_changed_scores(capsys):
    from sdpo_lite.course.rewards import code_execution_reward

    def all_pass(prompts, completions, **columns):
        return [{"score": 1.0, "feedback": o["feedback"].splitlines()[0]}
                for o in code_execution_reward(prompts, completions, **columns)]

    assert exercises.check("terse", code_execution_reward) is False  # two lines: the failure and the count
    assert exercises.check("terse", all_pass) is False
    assert capsys.readouterr().out.count("Not yet") == 2


def test_a_crashing_answer_is_reported_not_raised(capsys):
    assert exercises.check("higher_lower", lambda *a, **k: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(ValueError, match="higher_lower"):
        exercises.check("nope", print)
    with pytest.raises(ValueError, match="terse"):
        exercises.show_solution("nope")


def test_show_solution_prints_the_reference_code(capsys):
    exercises.show_solution("without_thinking")
    assert "def without_thinking" in capsys.readouterr().out
