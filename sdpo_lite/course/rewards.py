"""Reward functions that return a score *and* feedback, ready for TRL's ``reward_funcs``.

SDPO learns from feedback: the teacher sees "Test failed: add(1, 2) expected 3, got 0", not just
0.0. So each function here returns, per completion, ``{"score": float, "feedback": str}``. The
SDPO trainer unwraps these (scores go to TRL, feedback goes to the teacher prompt).

TRL calls a reward function as ``f(prompts=..., completions=..., completion_ids=...,
**dataset_columns, trainer_state=..., log_extra=..., log_metric=...)``: every dataset column arrives
as a list with one entry per completion, and there are extra keyword arguments we do not need,
hence ``**kwargs`` everywhere. Completions are strings for plain-text datasets and lists of chat
messages (``[{"role": "assistant", "content": "..."}]``) for conversational ones;
:func:`completion_text` handles both.

The feedback strings are built only from the completion, the prompt and the dataset's tests, and
the sandboxed child gets an empty environment, so the trainer's environment variables (API keys,
tokens) can never leak into feedback and from there into a training prompt.
"""
from __future__ import annotations

import json
import re

from sdpo_lite.course.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, run_batch
from sdpo_lite.course.tasks import (addition_answer, completion_text, extract_code, parity_answer, parity_words,
                                    split_thinking)
from sdpo_lite.reprompt import last_user_text

__all__ = [
    "completion_text",
    "extract_code",
    "code_execution_reward",
    "addition_reward",
    "addition_reward_rich",
    "make_addition_reward",
    "make_addition_format_reward",
]

MAX_FEEDBACK_CHARS = 400


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _per_sample(value, n: int, name: str) -> list:
    """A dataset column is one entry per completion; a single value is broadcast to all."""
    if isinstance(value, (list, tuple)) and len(value) == n and not (
        name == "tests" and value and all(isinstance(v, dict) and "args" in v for v in value)
    ):
        return list(value)
    if value is None:
        raise ValueError(f"code_execution_reward needs the dataset column {name!r}")
    return [value] * n


def _clip(text: str, limit: int = MAX_FEEDBACK_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _log(log_metric, name: str, value: float) -> None:
    if callable(log_metric):
        try:
            log_metric(name, value)
        except Exception:  # noqa: BLE001 - logging must never break a training step
            pass


# ----------------------------------------------------------------------------------------------
# Code execution
# ----------------------------------------------------------------------------------------------
def code_execution_reward(prompts, completions, entry_point=None, tests=None, *, timeout: float = DEFAULT_TIMEOUT,
                          memory_mb: int = DEFAULT_MEMORY_MB, log_metric=None, **kwargs) -> list[dict]:
    """1.0 when the completion's code passes every test, else 0.0, with specific feedback.

    ``entry_point`` and ``tests`` are dataset columns (one entry per completion); ``tests`` entries
    are lists of ``{"args": [...], "expected": ...}`` or that list as a JSON string (Arrow cannot
    store a column whose ``expected`` is sometimes an int and sometimes a list, so datasets often
    keep tests as JSON text). Completions run in parallel, each in its own sandboxed process
    (see :mod:`sdpo_lite.course.sandbox`).

    Feedback examples: "All 3 tests passed."; "Test failed: add(1, 2) expected 3, got 0\\n1/3 tests
    passed."; "Timed out after 4 s while running add(1, 2).\\n0/3 tests passed.".
    """
    n = len(completions)
    entry_points = _per_sample(entry_point, n, "entry_point")
    test_lists = _per_sample(tests, n, "tests")
    jobs = []
    for completion, ep, ts in zip(completions, entry_points, test_lists):
        if isinstance(ts, str):
            ts = json.loads(ts)
        jobs.append((extract_code(completion_text(completion)), str(ep), ts))
    results = run_batch(jobs, timeout=timeout, memory_mb=memory_mb)
    out = []
    for (code, _ep, _ts), res in zip(jobs, results):
        if not code.strip():
            feedback = f"No code found in the answer.\n0/{res.total} tests passed."
        else:
            feedback = res.message
        out.append({"score": res.score, "feedback": _clip(feedback)})
    if results:
        _log(log_metric, "code/pass_fraction", sum(r.pass_fraction for r in results) / len(results))
    return out


# ----------------------------------------------------------------------------------------------
# Addition
# ----------------------------------------------------------------------------------------------
_OPERANDS = re.compile(r"(-?\d+)\s*\+\s*(-?\d+)")


def _addition_feedback(prompt, answer: int | None, expected: int, rich: bool, show_reply: bool = False) -> str:
    if answer == expected:
        return "Correct!"
    if not rich:
        return "Wrong."
    ops = _OPERANDS.search(last_user_text(prompt))
    truth = f"{ops.group(1)} + {ops.group(2)} = {expected}" if ops else f"the answer is {expected}"
    wrote = "your answer had no number" if answer is None else f"you wrote {answer}"
    reply = f". A correct reply is just: {expected}" if show_reply else ""
    return f"Wrong: {truth}, {wrote}{reply}"


def make_addition_reward(rich: bool = False, show_reply: bool = False):
    """An addition reward; ``rich=True`` gives feedback with the right sum, plain gives "Wrong.".

    ``show_reply=True`` (with rich) also shows what a correct reply looks like ("A correct reply is just: 68"), so
    the teacher learns the format as well as the digits.
    """

    def reward(prompts, completions, expected=None, log_metric=None, **kwargs) -> list[dict]:
        if expected is None:
            raise ValueError("addition reward needs the dataset column 'expected'")
        targets = _per_sample(expected, len(completions), "expected")
        prompt_list = _per_sample(prompts, len(completions), "prompts") if prompts is not None else [""] * len(completions)
        out = []
        for prompt, completion, target in zip(prompt_list, completions, targets):
            answer = addition_answer(completion_text(completion))  # the same checker as evaluation
            target = int(target)
            out.append({"score": 1.0 if answer == target else 0.0,
                        "feedback": _addition_feedback(prompt, answer, target, rich, show_reply)})
        if out:
            _log(log_metric, "addition/accuracy", sum(r["score"] for r in out) / len(out))
        return out

    reward.__name__ = reward.__qualname__ = ("addition_reward_reply" if rich and show_reply else
                                             "addition_reward_rich" if rich else "addition_reward")
    reward.__doc__ = (
        f"Addition reward ({'rich' if rich else 'plain'} feedback): 1.0 when the last integer in the "
        "completion equals `expected`. Feedback: " + ("'Wrong: 23 + 45 = 68, you wrote 67'." if rich else "'Correct!' / 'Wrong.'.")
    )
    return reward


WRONG_NUMBER_FEEDBACK = ("plain", "sum", "direction")


def make_addition_format_reward(max_tokens: int, wrong: str = "plain"):
    """An addition reward with the official math environment's kind of feedback: about the attempt, never the sum.

    A correct reply gets no feedback; a reply cut off at `max_tokens` (the completion budget) is told so; one with
    no number is told the required format; a wrong number is told only that it is wrong. Truncation is read from
    TRL's `completion_ids` column: a completion of `max_tokens` tokens ended at the limit, not by choice.

    `wrong` says what a wrong attempt is told about its number:
    - "plain": nothing more ("Wrong answer.");
    - "sum": the rich feedback's sum in front ("Wrong: 23 + 45 = 68, you wrote 67. Your reply was cut off ..."), so
      the teacher knows both the digits and that the reply must be short (what separates GRPO from SDPO at a
      16-token budget);
    - "direction": whether the number is too high or too low, never the sum ("Your answer 67 is too low."): the
      feedback of notebook 04, where a method that is told the answer would just copy it.
    """
    if wrong not in WRONG_NUMBER_FEEDBACK:
        raise ValueError(f"wrong={wrong!r}; choose one of {WRONG_NUMBER_FEEDBACK}")

    def reward(prompts, completions, expected=None, completion_ids=None, log_metric=None, **kwargs) -> list[dict]:
        if expected is None:
            raise ValueError("addition reward needs the dataset column 'expected'")
        targets = _per_sample(expected, len(completions), "expected")
        prompt_list = _per_sample(prompts, len(completions), "prompts") if prompts is not None else [""] * len(completions)
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [0] * len(completions)
        out = []
        for prompt, completion, target, length in zip(prompt_list, completions, targets, lengths):
            answer = addition_answer(completion_text(completion))
            feedback = _format_feedback(answer, int(target), length >= max_tokens)
            if wrong == "sum" and feedback is not None:
                told = _addition_feedback(prompt, answer, int(target), rich=True)
                feedback = told if feedback == _WRONG_ANSWER else f"{told}. {feedback}"
            elif wrong == "direction" and feedback == _WRONG_ANSWER:
                feedback = f"Your answer {answer} is too {'high' if answer > int(target) else 'low'}."
            out.append({"score": 1.0 if answer == int(target) else 0.0, "feedback": feedback})
        if out:
            _log(log_metric, "addition/accuracy", sum(r["score"] for r in out) / len(out))
        return out

    reward.__name__ = reward.__qualname__ = "addition_reward_format" + ("" if wrong == "plain" else f"_{wrong}")
    return reward


_WRONG_ANSWER = "Wrong answer."


def _format_feedback(answer: int | None, expected: int, truncated: bool) -> str | None:
    if answer == expected:
        return None
    if truncated:
        return "Your reply was cut off at the length limit before it ended. Reply with just the number."
    if answer is None:
        return "Your reply had no number. Reply with just the number."
    return _WRONG_ANSWER


addition_reward = make_addition_reward(rich=False)
addition_reward_rich = make_addition_reward(rich=True)
addition_reward_reply = make_addition_reward(rich=True, show_reply=True)


# ----------------------------------------------------------------------------------------------
# Parity (even or odd, thinking inside <think></think>)
# ----------------------------------------------------------------------------------------------
__all__ += ["parity_reward"]

_FIRST_INT = re.compile(r"-?\d+")


def _parity_truth(number: int | None, target: str) -> str:
    """ "347 is odd (its last digit, 7, is odd)", or just "the answer is odd" when the number is unknown."""
    if number is None:
        return f"the answer is {target}"
    return f"{number} is {target} (its last digit, {abs(number) % 10}, is {target})"


def _parity_feedback(text: str, number: int | None, target: str) -> str:
    thinking, after = split_thinking(text)
    answer = parity_answer(text)
    truth = _parity_truth(number, target)
    if answer == target:
        verdict = f"Correct: {truth}."
    elif after is None:
        verdict = f"No answer: the <think> block was never closed with </think>, so nothing was read. Here {truth}."
    elif len(parity_words(text)) == 2:
        verdict = f"No answer: you wrote both even and odd; commit to one word. Here {truth}."
    elif answer is None:
        verdict = f"No answer: end with one word, even or odd, after </think>. Here {truth}."
    else:
        verdict = f"Wrong: {truth}; you answered {answer}."
    if thinking is None:
        verdict += " Your reply had no <think>...</think> block: think inside the tags, then answer."
    return verdict


def parity_reward(prompts, completions, expected=None, number=None, log_metric=None, **kwargs) -> list[dict]:
    """1.0 when the word after ``</think>`` is the right parity, else 0.0; the feedback says what went wrong.

    The score judges only the answer, with the same tolerant checker as evaluation (``check_parity``), so a model
    that never writes a think block is not stuck at zero. The feedback also reports the format, for the teacher:
    "Wrong: 347 is odd (its last digit, 7, is odd); you answered even. Your reply had no <think>...</think> block:
    think inside the tags, then answer." ``number`` (a dataset column) names the number; without it the first
    integer of the prompt is used.
    """
    if expected is None:
        raise ValueError("parity_reward needs the dataset column 'expected'")
    n = len(completions)
    targets = [str(t).strip().lower() for t in _per_sample(expected, n, "expected")]
    prompt_list = _per_sample(prompts, n, "prompts") if prompts is not None else [""] * n
    if number is not None:
        numbers = [int(x) for x in _per_sample(number, n, "number")]
    else:
        numbers = [int(m[0]) if (m := _FIRST_INT.search(last_user_text(p))) else None for p in prompt_list]
    out = []
    for completion, target, num in zip(completions, targets, numbers):
        text = completion_text(completion)
        out.append({"score": 1.0 if parity_answer(text) == target else 0.0,
                    "feedback": _parity_feedback(text, num, target)})
    if out:
        _log(log_metric, "parity/accuracy", sum(r["score"] for r in out) / n)
    return out
