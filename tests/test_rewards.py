"""Reward functions: exact feedback texts, TRL-style calls, chat completions, addition feedback."""
from __future__ import annotations

import json

import pytest

from sdpo_lite.course.rewards import (addition_reward, addition_reward_rich, code_execution_reward, completion_text,
                                      extract_code)

ADD_PROMPT = "Write a Python function add(a, b) that returns the sum of a and b."
ADD_TESTS = [{"args": [1, 2], "expected": 3}, {"args": [10, -4], "expected": 6}, {"args": [0, 0], "expected": 0}]


def code_reward(completion, tests=ADD_TESTS, entry_point="add", **kw):
    return code_execution_reward([ADD_PROMPT], [completion], entry_point=[entry_point], tests=[tests], **kw)[0]


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def test_completion_text_handles_strings_and_chat_messages():
    assert completion_text("hi") == "hi"
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]) == "hi"
    assert completion_text({"role": "assistant", "content": "hi"}) == "hi"


def test_extract_code_takes_the_first_fenced_block():
    text = "Here you go:\n```python\ndef f():\n    return 1\n```\nand a test:\n```python\nprint(f())\n```"
    assert extract_code(text) == "def f():\n    return 1\n"
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1\n"
    assert extract_code("```py\nx = 1") == "x = 1\n"  # an unclosed fence (token limit) still counts
    assert extract_code("<think>```python\nbad\n```</think>```python\ngood\n```") == "good\n"


# ------------------------------------------------------------------------------------------------
# Code execution reward
# ------------------------------------------------------------------------------------------------
def test_correct_solution_in_markdown():
    r = code_reward("Sure!\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds the numbers.")
    assert r == {"score": 1.0, "feedback": "All 3 tests passed."}


def test_wrong_answer_feedback_is_exact():
    r = code_reward("def add(a, b):\n    return 0\n")
    assert r["score"] == 0.0
    assert r["feedback"] == ("Test failed: add(1, 2) expected 3, got 0\n"
                             "Test failed: add(10, -4) expected 6, got 0\n"
                             "1/3 tests passed.")


def test_at_most_two_failures_are_listed():
    r = code_reward("def add(a, b):\n    return None\n", tests=ADD_TESTS + [{"args": [5, 5], "expected": 10}])
    assert r["feedback"] == ("Test failed: add(1, 2) expected 3, got None\n"
                             "Test failed: add(10, -4) expected 6, got None\n"
                             "(2 more tests failed)\n"
                             "0/4 tests passed.")


def test_exception_names_the_line():
    code = "def div(a, b):\n    # plain division\n    return a / b\n"
    tests = [{"args": [6, 3], "expected": 2.0}, {"args": [1, 0], "expected": None}]
    r = code_reward(code, tests=tests, entry_point="div")
    assert r["score"] == 0.0
    assert r["feedback"] == ("Test failed: div(1, 0) raised ZeroDivisionError: division by zero (line 3: return a / b)\n"
                             "1/2 tests passed.")


def test_syntax_error():
    r = code_reward("```python\ndef add(a, b)\n    return a + b\n```")
    assert r == {"score": 0.0, "feedback": "SyntaxError: expected ':' (line 1: def add(a, b))\n0/3 tests passed."}


def test_timeout():
    r = code_reward("def add(a, b):\n    while True:\n        pass\n", timeout=1)
    assert r == {"score": 0.0, "feedback": "Timed out after 1 s while running add(1, 2).\n0/3 tests passed."}


def test_missing_function_and_no_code():
    r = code_reward("def plus(a, b):\n    return a + b\n")
    assert r == {"score": 0.0, "feedback": "`add` was not defined.\n0/3 tests passed."}
    r = code_reward("   ")
    assert r == {"score": 0.0, "feedback": "No code found in the answer.\n0/3 tests passed."}


def test_printing_is_fine():
    r = code_reward("def add(a, b):\n    print('adding', a, b)\n    return a + b\nprint('loaded')\n")
    assert r["score"] == 1.0


def test_chat_completions_json_tests_and_trl_kwargs():
    metrics = []
    completions = [[{"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"}],
                   [{"role": "assistant", "content": "def add(a, b):\n    return a * b\n"}]]
    out = code_execution_reward(
        prompts=[[{"role": "user", "content": ADD_PROMPT}]] * 2,
        completions=completions,
        completion_ids=[[1], [2]],
        entry_point=["add", "add"],
        tests=[json.dumps(ADD_TESTS)] * 2,  # datasets often store tests as JSON text
        uid=["a", "b"],
        trainer_state=None,
        log_extra=None,
        log_metric=lambda name, value: metrics.append((name, value)),
    )
    assert [o["score"] for o in out] == [1.0, 0.0]
    assert out[1]["feedback"].startswith("Test failed: add(1, 2) expected 3, got 2")
    assert metrics == [("code/pass_fraction", (1.0 + 1 / 3) / 2)]


def test_feedback_is_short_and_leaks_no_environment(monkeypatch):
    monkeypatch.setenv("SDPO_REWARD_SECRET", "s3cr3t-value")
    code = "import os\ndef add(a, b):\n    raise ValueError(str(dict(os.environ)) * 100)\n"
    r = code_reward(code)
    assert r["score"] == 0.0 and "s3cr3t" not in r["feedback"] and len(r["feedback"]) <= 400


def test_memory_limit_feedback():
    r = code_reward("def add(a, b):\n    x = bytearray(8 * 1024 ** 3)\n    return a + b\n", memory_mb=256)
    assert r == {"score": 0.0, "feedback": "Memory limit exceeded (256 MB) while running add(1, 2).\n0/3 tests passed."}


# ------------------------------------------------------------------------------------------------
# Addition
# ------------------------------------------------------------------------------------------------
ADDITION_PROMPT = "What is 23 + 45? Answer with just the number."


def test_addition_plain():
    out = addition_reward([ADDITION_PROMPT] * 3, ["68", "The answer is 67.", "no idea"], expected=[68, 68, 68])
    assert out == [{"score": 1.0, "feedback": "Correct!"}, {"score": 0.0, "feedback": "Wrong."},
                   {"score": 0.0, "feedback": "Wrong."}]


def test_addition_rich():
    out = addition_reward_rich([ADDITION_PROMPT] * 3, ["23 + 45 = 68", "67", "no idea"], expected=[68, 68, 68])
    assert out == [{"score": 1.0, "feedback": "Correct!"},
                   {"score": 0.0, "feedback": "Wrong: 23 + 45 = 68, you wrote 67"},
                   {"score": 0.0, "feedback": "Wrong: 23 + 45 = 68, your answer had no number"}]


def test_addition_format_feedback_never_gives_the_sum():
    """The official math environment's kind: truncation and format, nothing for a success, never the answer."""
    from sdpo_lite.course.rewards import make_addition_format_reward

    reward = make_addition_format_reward(max_tokens=4)
    completions = ["68", "23 + 45 is", "The answer is 67.", "no idea"]
    out = reward(prompts=[ADDITION_PROMPT] * 4, completions=completions, expected=[68] * 4,
                 completion_ids=[[1], [1, 2, 3, 4], [1, 2], [1, 2, 3]])
    assert [o["score"] for o in out] == [1.0, 0.0, 0.0, 0.0] and reward.__name__ == "addition_reward_format"
    assert out[0]["feedback"] is None
    assert "cut off" in out[1]["feedback"] and "no number" in out[3]["feedback"] and out[2]["feedback"] == "Wrong answer."
    assert not any("68" in (o["feedback"] or "") for o in out)


def test_addition_format_feedback_with_sum_adds_the_notice_to_the_rich_text():
    from sdpo_lite.course.rewards import make_addition_format_reward

    reward = make_addition_format_reward(max_tokens=4, wrong="sum")
    out = reward(prompts=[ADDITION_PROMPT] * 4, completions=["68", "23 + 45 is", "The answer is 67.", "no idea"],
                 expected=[68] * 4, completion_ids=[[1], [1, 2, 3, 4], [1, 2], [1, 2, 3]])
    assert reward.__name__ == "addition_reward_format_sum" and out[0] == {"score": 1.0, "feedback": None}
    assert out[1]["feedback"] == ("Wrong: 23 + 45 = 68, you wrote 45. Your reply was cut off at the length limit "
                                  "before it ended. Reply with just the number.")
    assert out[2]["feedback"] == "Wrong: 23 + 45 = 68, you wrote 67"
    assert out[3]["feedback"].startswith("Wrong: 23 + 45 = 68, your answer had no number. Your reply had no number")


def test_addition_format_feedback_direction_says_too_high_or_low_never_the_sum():
    from sdpo_lite.course.rewards import make_addition_format_reward

    reward = make_addition_format_reward(max_tokens=4, wrong="direction")
    out = reward(prompts=[ADDITION_PROMPT] * 4, completions=["68", "It is 70.", "The answer is 67.", "23 + 45 is"],
                 expected=[68] * 4, completion_ids=[[1], [1, 2], [1, 2], [1, 2, 3, 4]])
    assert [o["feedback"] for o in out[:3]] == [None, "Your answer 70 is too high.", "Your answer 67 is too low."]
    assert "cut off" in out[3]["feedback"] and reward.__name__ == "addition_reward_format_direction"
    assert not any("68" in (o["feedback"] or "") for o in out)
    with pytest.raises(ValueError, match="choose one of"):
        make_addition_format_reward(max_tokens=4, wrong="sums")


def test_addition_chat_format_last_integer_and_names():
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": ADDITION_PROMPT}]
    completion = [{"role": "assistant", "content": "23 + 45 is -3"}]
    out = addition_reward_rich(prompts=[prompt], completions=[completion], expected=["68"], completion_ids=[[0]])
    assert out == [{"score": 0.0, "feedback": "Wrong: 23 + 45 = 68, you wrote -3"}]
    assert addition_reward.__name__ == "addition_reward"
    assert addition_reward_rich.__name__ == "addition_reward_rich"
