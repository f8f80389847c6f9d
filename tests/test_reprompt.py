"""Reprompting: who gets which demonstration, the teacher message, thinking, truncation, and the config checks."""
import ast
import math
import re

import pytest
from conftest import shared_path

from sdpo_lite.config import SDPOConfig
from sdpo_lite.course.models import load_model
from sdpo_lite.reprompt import (build_teacher_message, choose_demonstrations, demonstration_text, left_pad,
                                plan_teachers, render_teacher_prompt, strip_thinking, teacher_conversation,
                                tokenize_teacher_prompts)


# The official teacher-prompt texts and defaults as ../shared/notes/sdpo-reference.md states them (lasgroup/SDPO;
# TRL and sdpo-rl use the same texts), with the official placeholder names. Copied here, NOT imported from
# sdpo_lite.config, so the tests below compare our constants with an independent source;
# test_reference_notes_say_what_this_file_copied checks these copies against the notes themselves.
OFFICIAL_REPROMPT = "{prompt}{solution}{feedback}\n\nCorrectly solve the original question.\n"
OFFICIAL_SOLUTION = "\nCorrect solution:\n\n{successful_previous_attempt}\n\n"
OFFICIAL_FEEDBACK = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback_raw}\n\n"
OFFICIAL_DEFAULTS = {  # field name here: official value ("Official defaults (actor.yaml)" and max_reprompt_len)
    "alpha": 0.5, "distillation_topk": 100, "distillation_add_tail": True, "ema_tau": 0.05, "is_clip": 2.0,
    "success_threshold": 0.5, "dont_reprompt_on_self_success": True, "thinking_tag": "think",
    "include_feedback": True, "feedback_only_without_solution": True, "max_reprompt_length": 10240,
}


def official_message(prompt, demonstration, feedback):
    """The official construction: each section filled, or "" when absent, then the outer template."""
    solution = "" if demonstration is None else OFFICIAL_SOLUTION.format(successful_previous_attempt=demonstration)
    fb = "" if feedback is None else OFFICIAL_FEEDBACK.format(feedback_raw=feedback)
    return OFFICIAL_REPROMPT.format(prompt=prompt, solution=solution, feedback=fb)


@pytest.fixture(scope="module")
def tok():
    return load_model("tiny", precision="fp32", device="cpu")[1]


def test_first_successful_peer_of_the_same_group():
    groups = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert choose_demonstrations(groups, scores, success_threshold=0.5) == [1, 3, 1, 1, None, None, None, None]


def test_own_success_never_serves_as_its_own_demonstration():
    groups, scores = [0, 0, 0], [0.0, 1.0, 0.0]  # a lone success
    assert choose_demonstrations(groups, scores, success_threshold=0.5) == [1, None, 1]
    assert choose_demonstrations(groups, scores, success_threshold=0.5,
                                 dont_reprompt_on_self_success=False) == [1, 1, 1]


def test_raw_rewards_and_threshold_decide_success_nan_never_does():
    groups, scores = [0, 0, 0, 0], [0.4, 0.5, math.nan, 0.49]
    assert choose_demonstrations(groups, scores, success_threshold=0.5) == [1, None, 1, 1]
    # A group where everybody failed: GRPO's advantages would still call some rollouts "good"; SDPO must not.
    assert choose_demonstrations([0, 0], [0.1, 0.2], success_threshold=0.5) == [None, None]


def test_strip_thinking_across_lines():
    text = "<think>step 1\nstep 2</think>The answer is 4."
    assert strip_thinking(text) == ("The answer is 4.", True)
    assert strip_thinking("no tags") == ("no tags", False)
    assert strip_thinking(text, None) == (text, False)
    assert strip_thinking("<reason>x</reason>y", "reason") == ("y", True)


def test_thinking_tags_that_are_special_tokens_survive_decoding(tok):
    """skip_special_tokens=True would delete <think> and </think> and leave the thinking in the demonstration."""
    assert tok.convert_tokens_to_ids("<think>") in tok.all_special_ids
    ids = tok("<think>secret plan</think>The answer is 7", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    naive = tok.decode(ids, skip_special_tokens=True)
    assert "secret plan" in naive and "<think>" not in naive  # the trap
    demo = demonstration_text(ids, tok, "think")
    assert demo == "<think>secret plan</think>The answer is 7"
    assert strip_thinking(demo, "think")[0] == "The answer is 7"


def test_official_template_order_and_spans():
    c = SDPOConfig()
    for demo, fb in [("4", "Wrong: you wrote 5"), ("4", None), (None, "Wrong: {x} stays literal"), (None, None)]:
        assert build_teacher_message("What is 2+2?", demo, fb, c)[0] == official_message("What is 2+2?", demo, fb)
    message, spans = build_teacher_message("What is 2+2?", "4", "Wrong: you wrote 5", c)
    assert message == ("What is 2+2?\nCorrect solution:\n\n4\n\n\nThe following is feedback from your unsuccessful "
                       "earlier attempt:\n\nWrong: you wrote 5\n\n\n\nCorrectly solve the original question.\n")
    assert message[slice(*spans["demonstration"])] == "4"
    assert message[slice(*spans["feedback"])] == "Wrong: you wrote 5"
    assert spans["demonstration"][1] < spans["feedback"][0]
    only_prompt, spans = build_teacher_message("Q", None, None, c)
    assert only_prompt == "Q\n\nCorrectly solve the original question.\n" and spans == {}


def test_default_templates_are_the_official_texts():
    """Our templates are the official ones with our placeholder names ({demonstration}, {feedback})."""
    c = SDPOConfig()
    assert c.teacher_prompt_template == OFFICIAL_REPROMPT.replace("{solution}", "{demonstration}")
    assert c.solution_template == OFFICIAL_SOLUTION.replace("{successful_previous_attempt}", "{demonstration}")
    assert c.feedback_template == OFFICIAL_FEEDBACK.replace("{feedback_raw}", "{feedback}")


def test_reference_notes_say_what_this_file_copied():
    """The copies above are the reference's own words (skipped, with the reason, where ../shared is absent)."""
    notes = shared_path("notes", "sdpo-reference.md").read_text()
    texts = {}
    for name in ("reprompt", "solution", "feedback"):
        m = re.search(rf"^- {name}: `(\".*\")`$", notes, flags=re.MULTILINE)
        assert m, f"the reference no longer states the official {name} template"
        texts[name] = ast.literal_eval(m.group(1))
    assert (texts["reprompt"], texts["solution"], texts["feedback"]) == (
        OFFICIAL_REPROMPT, OFFICIAL_SOLUTION, OFFICIAL_FEEDBACK)
    flat = " ".join(notes.split())
    m = re.search(r"Official defaults \(actor\.yaml\): alpha ([\d.]+), topk (\d+), tail (on|off), EMA rate ([\d.]+)"
                  r".*?, is_clip ([\d.]+), threshold ([\d.]+), dont_reprompt_on_self_success (on|off), remove_thinking "
                  r"(on|off), include feedback (on|off), feedback only without solution (on|off)\.", flat)
    assert m, "the reference no longer lists the official defaults in the expected form"
    alpha, topk, tail, ema, clip, threshold, no_self, thinking, feedback, fb_only = m.groups()
    stated = {"alpha": float(alpha), "distillation_topk": int(topk), "distillation_add_tail": tail == "on",
              "ema_tau": float(ema), "is_clip": float(clip), "success_threshold": float(threshold),
              "dont_reprompt_on_self_success": no_self == "on", "thinking_tag": "think" if thinking == "on" else None,
              "include_feedback": feedback == "on", "feedback_only_without_solution": fb_only == "on"}
    m = re.search(r"`max_reprompt_len` \(official (\d+)\)", flat)
    assert m, "the reference no longer states the official max_reprompt_len"
    stated["max_reprompt_length"] = int(m.group(1))
    assert stated == OFFICIAL_DEFAULTS


def test_custom_template():
    c = SDPOConfig(teacher_prompt_template="Hint: {feedback}|{demonstration}|Question: {prompt}",
                   solution_template="[{demonstration}]", feedback_template="<{feedback}>")
    message, spans = build_teacher_message("Q?", "D", "F", c)
    assert message == "Hint: <F>|[D]|Question: Q?"
    assert message[slice(*spans["feedback"])] == "F" and message[slice(*spans["demonstration"])] == "D"


def test_feedback_rules():
    prompts, demos = ["Q"] * 3, ["a0", "a1", "a2"]
    feedbacks = ["fb0", None, "  "]
    groups, scores = [0, 0, 0], [0.0, 1.0, 0.0]
    plans = plan_teachers(prompts, demos, feedbacks, SDPOConfig(), groups=groups, scores=scores)
    # official: feedback only without a solution; rollout 1 is the lone success, so it gets feedback-less nothing
    assert [(p["demo_used"], p["feedback_used"]) for p in plans] == [(True, False), (False, False), (True, False)]
    assert plans[1]["teacher_message"] is None  # neither demo nor feedback: no teacher, masked out of the loss
    both = plan_teachers(prompts, demos, feedbacks, SDPOConfig(feedback_only_without_solution=False),
                         groups=groups, scores=scores)
    assert (both[0]["demo_used"], both[0]["feedback_used"]) == (True, True)
    failed = plan_teachers(prompts, demos, feedbacks, SDPOConfig(), groups=groups, scores=[0.0] * 3)
    assert [(p["demo_used"], p["feedback_used"]) for p in failed] == [(False, True), (False, False), (False, False)]
    off = plan_teachers(prompts, demos, feedbacks, SDPOConfig(include_feedback=False), groups=groups, scores=[0.0] * 3)
    assert all(p["teacher_message"] is None for p in off)
    none = plan_teachers(prompts, demos, feedbacks, SDPOConfig(reprompt_teacher=False), groups=groups, scores=scores)
    assert all(p["teacher_message"] is None for p in none)


def test_feedback_of_a_successful_rollout_never_reaches_a_teacher():
    """Feedback is "from your unsuccessful earlier attempt": it is read only for rollouts that failed (raw score below
    the threshold, or unscorable). A success's "Correct!" is recorded as ignored and shown to no teacher."""
    prompts, demos = ["Q"] * 7, [f"d{i}" for i in range(7)]
    groups = [0, 0, 1, 1, 2, 2, 2]
    scores = [1.0, 0.0, math.nan, 0.2, 0.5, 1.0, 0.9]
    feedbacks = ["Correct!", "wrong: 5", "could not parse", "too small", "Correct!", None, "   "]
    plans = plan_teachers(prompts, demos, feedbacks, SDPOConfig(), groups=groups, scores=scores)
    # group 0: the lone success has no peer to learn from and its feedback is ignored, so it gets no teacher
    assert plans[0]["teacher_message"] is None
    assert (plans[0]["demo_used"], plans[0]["feedback_used"], plans[0]["feedback_ignored"]) == (False, False, True)
    # ... while the failure in the same group gets the success as its demonstration (feedback only without one)
    assert (plans[1]["demo_index"], plans[1]["feedback_used"], plans[1]["feedback_ignored"]) == (0, False, False)
    # group 1: nobody succeeded; the unscorable (NaN) rollout and the low score both read their feedback
    for i in (2, 3):
        assert plans[i]["demo_used"] is False and plans[i]["feedback_used"] and not plans[i]["feedback_ignored"]
        assert plans[i]["teacher_message"] == official_message("Q", None, feedbacks[i])
    # group 2: a score exactly at the threshold is a success; only non-empty feedback counts as ignored
    assert (plans[4]["demo_index"], plans[4]["feedback_used"], plans[4]["feedback_ignored"]) == (5, False, True)
    assert [plans[i]["feedback_ignored"] for i in (5, 6)] == [False, False]
    assert not any("Correct!" in (p["teacher_message"] or "") for p in plans)

    both = plan_teachers(prompts, demos, feedbacks, SDPOConfig(feedback_only_without_solution=False),
                         groups=groups, scores=scores)
    assert both[0]["teacher_message"] is None and both[0]["feedback_ignored"]
    assert both[1]["teacher_message"] == official_message("Q", "d0", "wrong: 5")  # a failure: demo AND feedback
    assert both[4]["teacher_message"] == official_message("Q", "d5", None)  # a success: the demo only
    assert (both[4]["feedback_used"], both[4]["feedback_ignored"]) == (False, True)
    self_demo = plan_teachers(prompts, demos, feedbacks, SDPOConfig(dont_reprompt_on_self_success=False,
                              feedback_only_without_solution=False), groups=groups, scores=scores)
    assert self_demo[0]["teacher_message"] == official_message("Q", "d0", None)  # its own answer, never "Correct!"
    assert (self_demo[0]["feedback_used"], self_demo[0]["feedback_ignored"]) == (False, True)


def test_conversational_prompt_keeps_system_and_earlier_turns(tok):
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
              {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "What is 2+2?"}]
    conv = teacher_conversation(prompt, "NEW")
    assert conv[:3] == prompt[:3] and conv[3] == {"role": "user", "content": "NEW"}
    text = render_teacher_prompt(prompt, "NEW", tok)
    assert text.endswith("<|im_start|>user\nNEW<|im_end|>\n<|im_start|>assistant\n")
    assert "Be brief." in text and render_teacher_prompt("plain", "NEW", tok) == "NEW"


def test_conversational_prompt_needs_a_chat_template(tok):
    import copy
    bare = copy.deepcopy(tok)
    bare.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        render_teacher_prompt([{"role": "user", "content": "Q"}], "NEW", bare)


def test_truncation_sides(tok):
    text = "one two three four five six seven eight nine ten"
    full = tok(text, add_special_tokens=False)["input_ids"]
    (left,), (cut,) = tokenize_teacher_prompts([text], tok, max_length=4, truncation="left")
    (right,), _ = tokenize_teacher_prompts([text], tok, max_length=4, truncation="right")
    assert cut and left == full[-4:] and right == full[:4]
    (same,), (cut,) = tokenize_teacher_prompts([text], tok, max_length=1000)
    assert not cut and same == full


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids == [[5, 6, 7], [0, 0, 8]] and mask == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("kwargs, needle", [
    ({"alpha": 1.5}, "alpha"), ({"distillation_topk": 0}, "distillation_topk"), ({"grpo_weight": -0.1}, "grpo_weight"),
    ({"teacher_mode": "slow"}, "teacher_mode"), ({"ema_tau": 2.0}, "ema_tau"), ({"ema_update_every": 0}, "ema_update"),
    ({"is_clip": 0.0}, "is_clip"), ({"teacher_prompt_template": "no placeholder"}, "{prompt}"),
    ({"feedback_template": "x"}, "{feedback}"), ({"reprompt_truncation": "middle"}, "reprompt_truncation"),
    ({"token_level": True, "alpha": 0.5}, "alpha=1.0"), ({"thinking_tag": "</think>"}, "thinking_tag"),
    ({"max_reprompt_length": 0}, "max_reprompt_length"),
])
def test_config_errors_name_the_field_and_the_fix(kwargs, needle):
    with pytest.raises(ValueError, match="Invalid SDPOConfig") as err:
        SDPOConfig(**kwargs)
    assert needle in str(err.value)


def test_config_defaults_follow_the_official_code():
    c = SDPOConfig()
    assert {name: getattr(c, name) for name in OFFICIAL_DEFAULTS} == OFFICIAL_DEFAULTS
    # Our own choices, documented in SDPOConfig: pure SDPO, an EMA teacher, truncation keeps the END (official: start).
    assert c.grpo_weight == 0.0 and c.teacher_mode == "ema" and c.reprompt_truncation == "left"


def test_a_success_with_no_text_never_demonstrates():
    """mask_truncated_completions masks a truncated answer out entirely: its (empty) text must not become a
    demonstration, even when the reward scored it a success; the next successful peer demonstrates instead."""
    plans = plan_teachers(["Q"] * 4, ["", "  ", "d2", "d3"], [None] * 4, SDPOConfig(), groups=[0] * 4,
                          scores=[1.0, 1.0, 1.0, 0.0])
    assert [p["demo_index"] for p in plans] == [2, 2, None, 2]
    assert all("Correct solution:\n\n\n" not in (p["teacher_message"] or "") for p in plans)
