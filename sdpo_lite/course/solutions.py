"""Reference solutions of the notebooks' exercises (`exercises.show_solution(name)` prints one).

They live here, not in the notebooks, so a learner meets the stub first; the tests run every check on these.
"""
from __future__ import annotations

import re


def higher_lower_reward(prompts, completions, expected, **kwargs):
    """Notebook 01: score 1 for the right sum; feedback says only "too high" or "too low", never the sum."""
    from sdpo_lite.course.tasks import addition_answer, completion_text

    out = []
    for completion, target in zip(completions, expected):
        answer = addition_answer(completion_text(completion))
        if answer == target:
            out.append({"score": 1.0, "feedback": "Correct!"})
        elif answer is None:
            out.append({"score": 0.0, "feedback": "Your answer had no number."})
        else:
            out.append({"score": 0.0, "feedback": f"Wrong: {answer} is too {'high' if answer > target else 'low'}."})
    return out


def without_thinking(text: str) -> str:
    """Notebook 02: remove every closed <think>...</think> block (across lines), then surrounding whitespace."""
    return re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL).strip()


def terse_reward(prompts, completions, **columns):
    """Notebook 03: the same executed tests and scores, only the first line of each feedback."""
    from sdpo_lite.course.rewards import code_execution_reward

    outs = code_execution_reward(prompts, completions, **columns)
    return [{"score": o["score"], "feedback": o["feedback"].splitlines()[0]} for o in outs]
