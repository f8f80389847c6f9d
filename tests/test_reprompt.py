"""Reprompting: who gets which demonstration, the teacher message, thinking, truncation, and the config checks."""
import math

import pytest

from sdpo_lite.config import SDPOConfig
from sdpo_lite.models import load_model
from sdpo_lite.reprompt import (build_teacher_message, choose_demonstrations, demonstration_text, left_pad,
                                plan_teachers, render_teacher_prompt, strip_thinking, teacher_conversation,
                                tokenize_teacher_prompts)


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
    message, spans = build_teacher_message("What is 2+2?", "4", "Wrong: you wrote 5", c)
    assert message == ("What is 2+2?\nCorrect solution:\n\n4\n\n\nThe following is feedback from your unsuccessful "
                       "earlier attempt:\n\nWrong: you wrote 5\n\n\n\nCorrectly solve the original question.\n")
    assert message[slice(*spans["demonstration"])] == "4"
    assert message[slice(*spans["feedback"])] == "Wrong: you wrote 5"
    assert spans["demonstration"][1] < spans["feedback"][0]
    only_prompt, spans = build_teacher_message("Q", None, None, c)
    assert only_prompt == "Q\n\nCorrectly solve the original question.\n" and spans == {}


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
    ({"token_level": True, "alpha": 0.5}, "alpha=1.0"), ({"thinking_tag": "<think>"}, "thinking_tag"),
    ({"max_reprompt_length": 0}, "max_reprompt_length"),
])
def test_config_errors_name_the_field_and_the_fix(kwargs, needle):
    with pytest.raises(ValueError, match="Invalid SDPOConfig") as err:
        SDPOConfig(**kwargs)
    assert needle in str(err.value)


def test_config_defaults_follow_the_official_code():
    c = SDPOConfig()
    assert (c.alpha, c.distillation_topk, c.distillation_add_tail, c.ema_tau, c.is_clip, c.success_threshold) == (
        0.5, 100, True, 0.05, 2.0, 0.5)
    assert c.dont_reprompt_on_self_success and c.include_feedback and c.feedback_only_without_solution
    assert c.thinking_tag == "think" and c.grpo_weight == 0.0 and c.teacher_mode == "ema"
