"""The course's exercises: one check per exercise, and reference solutions kept out of the notebooks.

A notebook cell holds the learner's stub (it raises NotImplementedError); the next cell calls
`check("higher_lower", higher_lower_reward)`. A check never raises, so "Run all" goes on past an unsolved exercise:
it prints either what is still wrong (the first failing case, with what was expected) or "passed", and returns
True/False. `show_solution("higher_lower")` prints the reference solution for a learner who is stuck;
tests/test_exercises.py checks that every check fails on its stub and passes on its solution.
"""
from __future__ import annotations

import inspect
from typing import Callable

from sdpo_lite.course import solutions


class NotYet(AssertionError):
    """A check's case that the learner's function does not meet yet (the message says what was expected)."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise NotYet(message)


# ----------------------------------------------------------------------------------------------------------------
# Notebook 01: feedback that says "too high" / "too low", never the sum
# ----------------------------------------------------------------------------------------------------------------
def check_higher_lower(reward) -> str:
    from sdpo_lite.rewards import split_reward_outputs

    prompts = [[{"role": "user", "content": "What is 23 + 45? Answer with just the number."}]] * 5
    completions = ["23 + 45 = 70", "68 minus 8 is 60", "68", "I am not sure",
                   [{"role": "assistant", "content": "The sum is 69."}]]  # TRL's conversational form
    scores, feedback = split_reward_outputs(reward(prompts, completions, expected=[68] * 5), 5, "your reward")
    _expect(scores == [0.0, 0.0, 1.0, 0.0, 0.0], f"scores {scores}: expected [0, 0, 1, 0, 0] (1 only for '68'; the "
            "last number in the completion is the answer, as addition_answer reads it)")
    _expect(all(isinstance(f, str) and f for f in feedback), f"feedback {feedback}: give every completion a sentence")
    _expect("high" in feedback[0].lower() and "high" in feedback[4].lower(),
            f"'23 + 45 = 70' and 'The sum is 69.' got {feedback[0]!r} and {feedback[4]!r}: say 'too high'")
    _expect("low" in feedback[1].lower(), f"'68 minus 8 is 60' got {feedback[1]!r}: say 'too low'")
    leaks = [f for i, f in enumerate(feedback) if i != 2 and "68" in f]
    _expect(not leaks, f"{leaks}: the hint must not contain the sum itself (then it is the rich feedback again)")
    _expect("high" not in feedback[3].lower() and "low" not in feedback[3].lower(),
            f"'I am not sure' got {feedback[3]!r}: with no number there is nothing to call too high or too low")
    return f"feedback: {feedback}"


# ----------------------------------------------------------------------------------------------------------------
# Notebook 02: the demonstration a teacher sees, without the peer's thinking
# ----------------------------------------------------------------------------------------------------------------
THINKING_CASES = [
    ("<think>347 ends in 7, an odd digit.</think> odd", "odd"),
    ("<think>Last digit 4.\nFour is even.</think>\neven", "even"),  # a block across lines
    ("The answer is even.", "The answer is even."),  # no block: the whole reply is the demonstration
    ("<think>first</think>even<think>second</think>", "even"),  # every block goes
    ("<think>347 is a big number", "<think>347 is a big number"),  # unclosed: not a block, left as it is
]


def check_without_thinking(without_thinking) -> str:
    for text, expected in THINKING_CASES:
        got = without_thinking(text)
        _expect(got == expected, f"without_thinking({text!r}) returned {got!r}, expected {expected!r}")
    return f"{len(THINKING_CASES)} demonstrations stripped as the trainer strips them (reprompt.strip_thinking)"


# ----------------------------------------------------------------------------------------------------------------
# Notebook 03: terser feedback from the same executed tests
# ----------------------------------------------------------------------------------------------------------------
def check_terse(terse_reward) -> str:
    from sdpo_lite.course.rewards import code_execution_reward

    tests = [{"args": [[1, 2, 3]], "expected": 6}, {"args": [[]], "expected": 0},
             {"args": [[-5, 5, -2]], "expected": -2}]
    attempts = ["def sum_list(xs):\n    return sum(xs)", "def sum_list(xs):\n    return xs[-1] if xs else 0",
                "def sum_list(xs):\n    return len(xs)", "def sum_list(xs):\n    return sum(xs"]
    attempts = [f"```python\n{a}\n```" for a in attempts]
    columns = dict(entry_point=["sum_list"] * 4, tests=[tests] * 4, timeout=2)
    full = code_execution_reward(None, attempts, **columns)
    terse = terse_reward(None, attempts, **columns)
    _expect(isinstance(terse, list) and len(terse) == len(attempts),
            f"returned {terse!r}: one {{'score', 'feedback'}} dict per completion")
    _expect([o["score"] for o in terse] == [o["score"] for o in full],
            f"scores {[o['score'] for o in terse]}, expected the full reward's {[o['score'] for o in full]}")
    for o, f in zip(terse, full):
        first = f["feedback"].splitlines()[0]
        _expect(o["feedback"] == first, f"feedback {o['feedback']!r}: expected the first line only, {first!r}")
    return f"feedback, one line each: {[o['feedback'] for o in terse]}"


CHECKS: dict[str, tuple[Callable, Callable]] = {
    "higher_lower": (check_higher_lower, solutions.higher_lower_reward),
    "without_thinking": (check_without_thinking, solutions.without_thinking),
    "terse": (check_terse, solutions.terse_reward),
}


def check(name: str, answer) -> bool:
    """Run exercise `name`'s check on the learner's `answer`; print what passed or what is still wrong."""
    if name not in CHECKS:
        raise ValueError(f"no exercise {name!r}; the exercises are {sorted(CHECKS)}")
    try:
        detail = CHECKS[name][0](answer)
    except NotImplementedError:
        print(f"Not solved yet: {getattr(answer, '__name__', name)} still raises NotImplementedError. Fill it in above "
              f"and run this cell again (stuck? show_solution({name!r})).")
        return False
    except NotYet as wrong:
        print(f"Not yet: {wrong}")
        return False
    except Exception as error:  # the learner's code crashed: say where, do not stop "Run all"
        print(f"Not yet: your function raised {type(error).__name__}: {error}")
        return False
    print(f"Passed: {detail}")
    return True


def show_solution(name: str) -> None:
    """Print the reference solution of exercise `name`."""
    if name not in CHECKS:
        raise ValueError(f"no exercise {name!r}; the exercises are {sorted(CHECKS)}")
    print(inspect.getsource(CHECKS[name][1]))
