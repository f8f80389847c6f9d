"""The parity task (even or odd, thinking inside <think></think>): files, checker, reward, thinking-free teachers.

Not to be confused with tests/test_parity.py, which checks our loss against the official implementation.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re

import pytest
from conftest import ROOT

from sdpo_lite import SDPOConfig
from sdpo_lite.course.tasks import TASKS, check_parity, load_task, parity_answer, task_path
from sdpo_lite.reprompt import split_thinking
from sdpo_lite.course.rewards import parity_reward

PROMPT = re.compile(r"Is (\d{3}) even or odd\? Think inside <think></think>, then answer with one word: even or odd\.")


# ------------------------------------------------------------------------------------------------
# The committed files
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split, size", [("train", 64), ("heldout", 100)])
def test_parity_splits(split, size):
    ds = load_task("parity", split)
    assert len(ds) == size and ds.column_names == ["uid", "prompt", "number", "expected"]
    assert len(set(ds["uid"])) == size
    for row in ds:
        assert int(PROMPT.fullmatch(row["prompt"])[1]) == row["number"]
        assert row["expected"] == ("even" if row["number"] % 2 == 0 else "odd")
    assert ds["expected"].count("even") == size // 2  # always answering "even" scores exactly 50%


def test_parity_numbers_are_distinct_across_splits():
    train, heldout = (set(load_task("parity", s)["number"]) for s in ("train", "heldout"))
    assert len(train) == 64 and len(heldout) == 100 and not train & heldout


def make_parity():
    spec = importlib.util.spec_from_file_location("make_parity", ROOT / "data" / "make_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_files_match_the_generator():
    module = make_parity()
    for split, rows in module.make_splits().items():
        assert task_path("parity", split).read_text(encoding="utf-8") == module.render(rows)
    assert module.make_splits(seed=1) != module.make_splits()  # the seed matters


def test_data_readme_has_the_files_checksums():
    readme = (ROOT / "data" / "README.md").read_text()
    for split in ("train", "heldout"):
        digest = hashlib.sha256(task_path("parity", split).read_bytes()).hexdigest()
        assert re.search(rf"`{split}\.jsonl`\s+`{digest}`", readme), f"data/README.md: stale sha256 of parity {split}"


# ------------------------------------------------------------------------------------------------
# Reading the answer
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, answer", [
    ("<think>347 ends in 7, an odd digit.</think> odd", "odd"),
    ("<think>is it even? 7 is odd</think>\n\nEven.", "even"),  # only what follows </think> counts
    ('The answer is "Odd".', "odd"),  # no think block: the whole reply, any case
    ("Even or odd: 876 is indeed even.", "even"),
    ("Even or odd: 876", None),  # an echo of the question is no answer
    ("<think>876 ends in 6, so even", None),  # never closed: still thinking, no answer
    ("<think>x</think>", None),
    ("1. 543 is even.\n2. 543 is odd.", None),  # hedging is no answer (else RL learns to list both)
    ("Odd. Definitely odd!", "odd"),
    ("uneven oddity", None),  # whole words only
    ("", None),
])
def test_parity_answer(text, answer):
    assert parity_answer(text) == answer
    assert check_parity(text, "odd") == (answer == "odd")


def test_split_thinking():
    assert split_thinking("<think>a</think> b") == ("a", " b")
    assert split_thinking("<think>a</think><think>c</think> d") == ("c", " d")
    assert split_thinking("plain") == (None, "plain")
    assert split_thinking("<think>unfinished") == ("unfinished", None)


def test_parity_is_registered():
    spec = TASKS["parity"]
    assert spec.checker is check_parity and spec.fields["expected"] is str and spec.fields["number"] is int


# ------------------------------------------------------------------------------------------------
# The reward and its feedback
# ------------------------------------------------------------------------------------------------
def test_parity_reward_scores_like_the_checker_and_explains():
    completions = ["<think>347 ends in 7, odd</think> odd", "The answer is even.", "<think>hmm, 347 is",
                   "<think>ok</think> yes", [{"role": "assistant", "content": "Odd."}], "347 is even. 347 is odd."]
    logged = {}
    out = parity_reward(["Is 347 even or odd?"] * 6, completions, expected=["odd"] * 6,
                        log_metric=lambda k, v: logged.update({k: v}))
    assert [o["score"] for o in out] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    fb = [o["feedback"] for o in out]
    assert fb[0] == "Correct: 347 is odd (its last digit, 7, is odd)."
    assert fb[1].startswith("Wrong: 347 is odd (its last digit, 7, is odd); you answered even.")
    assert "no <think>...</think> block" in fb[1] and "no <think>" not in fb[0]
    assert "never closed with </think>" in fb[2] and "347 is odd" in fb[2]
    assert "end with one word, even or odd, after </think>" in fb[3]
    assert fb[4].startswith("Correct") and "no <think>...</think> block" in fb[4]
    assert fb[5].startswith("No answer: you wrote both even and odd; commit to one word.")
    assert logged == {"parity/accuracy": pytest.approx(2 / 6)}


def test_parity_reward_takes_the_number_column_or_the_prompt():
    chat = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is 12 even or odd?"}]]
    assert "12 is even (its last digit, 2, is even)" in parity_reward(chat, ["odd"], expected=["even"])[0]["feedback"]
    by_column = parity_reward(["no number here"], ["odd"], expected=["even"], number=[48])[0]["feedback"]
    assert "48 is even (its last digit, 8, is even)" in by_column
    unknown = parity_reward(["no number here"], ["odd"], expected=["even"])[0]["feedback"]
    assert "the answer is even" in unknown
    with pytest.raises(ValueError, match="expected"):
        parity_reward(["Is 1 even or odd?"], ["odd"])


def test_parity_reward_feedback_reaches_sdpo_unchanged():
    from sdpo_lite.rewards import split_reward_outputs

    out = parity_reward(["Is 5 even or odd?"] * 2, ["even", "odd"], expected=["odd", "odd"])
    scores, feedback = split_reward_outputs(out, 2, "parity_reward")
    assert scores == [0.0, 1.0] and feedback == [o["feedback"] for o in out]


# ------------------------------------------------------------------------------------------------
# Demonstrations lose their thinking (SDPOConfig.thinking_tag), as notebook 02 shows
# ------------------------------------------------------------------------------------------------
def preview(config):
    from sdpo_lite.course.models import load_model
    from sdpo_lite.course.rollouts import teacher_records

    _, tokenizer = load_model("tiny", precision="fp32", device="cpu", verbose=False)
    completions = ["<think>347 ends in 7, an odd digit.</think> odd", "The answer is even."]
    out = parity_reward(["Is 347 even or odd?"] * 2, completions, expected=["odd", "odd"])
    return teacher_records([{"role": "user", "content": "Is 347 even or odd?"}], completions, [o["score"] for o in out],
                           [o["feedback"] for o in out], tokenizer, config)


def test_demonstrations_drop_the_thinking():
    success, failure = preview(SDPOConfig(thinking_tag="think"))
    # a lone success never demonstrates to itself, and its feedback ("Correct: odd") is never shown to a teacher
    assert not success.demo_used and not success.feedback_used and success.feedback_ignored
    assert success.teacher_prompt is None
    assert failure.demo_used and failure.thinking_stripped and not failure.feedback_used
    demo = failure.teacher_message[slice(*failure.spans["demonstration"])]
    assert demo == "odd" and "ends in 7" not in failure.teacher_prompt
    assert failure.teacher_prompt.index("Is 347") < failure.teacher_prompt.index("Correct solution")


def test_thinking_tag_none_keeps_it():
    _, failure = preview(SDPOConfig(thinking_tag=None))
    assert not failure.thinking_stripped and "<think>347 ends in 7" in failure.teacher_prompt
