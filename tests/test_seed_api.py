"""Code written for the API the course mirrors (the sdpo-trainer examples, PyPI sdpo-rl) runs with only the import
changed; where sdpo_lite deliberately differs, the error or warning says what to write instead (docs/porting.md).

The reference README is not copied here: these are our own snippets using the same API forms (configuration value
forms, the two reward-function shapes, a custom teacher template, a dataset with extra columns, and sdpo-rl's
`last_feedback` reward classes).
"""
import functools
import logging
import types
import warnings

import pytest
from conftest import tiny_trainer

from sdpo_lite import SDPOConfig
from sdpo_lite.reprompt import build_teacher_message, strip_thinking

# A custom teacher prompt in the form the examples README teaches: labels of its own in front of each placeholder.
LABELLED = ("Task: {prompt}\nPrevious attempt feedback: {feedback}\nExample solution: {demonstration}\n"
            "Your improved solution:")
RAW_SECTIONS = {"solution_template": "{demonstration}", "feedback_template": "{feedback}"}


def sdpo_config_as_the_examples_write_it(**overrides):
    kwargs = dict(enabled=True, alpha=0.5, distillation_topk=100, teacher_mode="ema", ema_tau=0.05,
                  ema_update_every=1, is_coef=0.0, is_clip=2.0, reprompt_teacher=True, thinking_tag="<think>")
    kwargs.update(overrides)
    return SDPOConfig(**kwargs)


# ----------------------------------------------------------------------------------------------------------------
# SDPOConfig value forms
# ----------------------------------------------------------------------------------------------------------------
def test_the_examples_sdpo_config_runs_as_written():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and says nothing
        c = sdpo_config_as_the_examples_write_it()
    assert c.thinking_tag == "think" and c.is_coef is False and c.is_clip == 2.0
    assert strip_thinking("<think>plan</think>42", c.thinking_tag) == ("42", True)


@pytest.mark.parametrize("given, stored", [(0, False), (0.0, False), (1, True), (1.0, True), (True, True),
                                           (False, False)])
def test_is_coef_takes_bools_and_zero_or_one(given, stored):
    assert SDPOConfig(is_coef=given).is_coef is stored


@pytest.mark.parametrize("given", [0.5, 2, -1.0, "0", None])
def test_any_other_is_coef_is_an_error_that_says_what_it_means(given):
    with pytest.raises(ValueError, match="is_coef") as err:
        SDPOConfig(is_coef=given)
    assert "not a coefficient" in str(err.value) and "is_coef=False" in str(err.value)


@pytest.mark.parametrize("given, stored", [("<think>", "think"), ("think", "think"), (" <reason> ", "reason"),
                                           ("<my_tag2>", "my_tag2"), (None, None)])
def test_thinking_tag_takes_the_name_or_the_bracketed_tag(given, stored):
    assert SDPOConfig(thinking_tag=given).thinking_tag == stored


@pytest.mark.parametrize("given, fix", [("</think>", "thinking_tag='think' (or '<think>')"), ("<think", "'think'"),
                                        ("think>", "'think'"), ("", "'think'"), ("<>", "'think'"),
                                        ("<a b>", "'think'"), (True, "'think'")])
def test_malformed_thinking_tags_name_the_fix(given, fix):
    with pytest.raises(ValueError, match="thinking_tag") as err:
        SDPOConfig(thinking_tag=given)
    assert fix in str(err.value)


@pytest.mark.parametrize("kwargs, fix", [
    ({"teacher_update_rate": 0.05}, "ema_tau"), ({"success_reward_threshold": 1.0}, "success_threshold"),
    ({"remove_thinking_from_demonstration": True}, 'thinking_tag="think"'),
    ({"include_environment_feedback": True}, "include_feedback"),
    ({"environment_feedback_only_without_solution": True}, "feedback_only_without_solution"),
    ({"reprompt_template": "{prompt}"}, "teacher_prompt_template"),
    ({"full_logit_distillation": False}, "token_level=True"),
    ({"apply_chat_template_kwargs": {}}, "chat_template_kwargs"),
])
def test_sdpo_rl_field_names_get_the_name_to_write(kwargs, fix):
    with pytest.raises(TypeError, match="sdpo-rl") as err:
        SDPOConfig(**kwargs)
    assert fix in str(err.value)


def test_sdpo_rl_values_get_the_value_to_write():
    with pytest.raises(ValueError, match="teacher_mode='ema'"):
        SDPOConfig(teacher_mode="lora_ema")
    with pytest.raises(ValueError) as err:
        SDPOConfig(teacher_prompt_template="{prompt}{solution}{feedback}",
                   solution_template="\nSolution:\n{successful_previous_attempt}\n", feedback_template="{feedback_raw}")
    msg = str(err.value)
    assert "{solution}; write {demonstration}" in msg and "{successful_previous_attempt}; write {demonstration}" in msg
    assert "{feedback_raw}; write {feedback}" in msg


# ----------------------------------------------------------------------------------------------------------------
# A custom teacher template
# ----------------------------------------------------------------------------------------------------------------
def test_a_self_labelled_template_with_default_sections_warns_once_with_the_fix():
    with pytest.warns(UserWarning) as record:
        c = SDPOConfig(teacher_prompt_template=LABELLED)
    assert len(record) == 1
    msg = str(record[0].message)
    assert 'solution_template="{demonstration}"' in msg and 'feedback_template="{feedback}"' in msg
    assert record[0].filename == __file__  # points at the line that built the config
    # Ignoring the warning still runs: no placeholder left over, both labels present (the double label it warns of).
    message, spans = build_teacher_message("What is 2+2?", None, "Wrong: you wrote 5", c)
    assert "{" not in message and "None" not in message
    assert "Previous attempt feedback: \nThe following is feedback" in message
    assert message[slice(*spans["feedback"])] == "Wrong: you wrote 5"


@pytest.mark.parametrize("kwargs", [
    {},  # the official default template
    {"teacher_prompt_template": LABELLED, **RAW_SECTIONS},  # the fix the warning names
    {"teacher_prompt_template": "Task: {prompt}\n{feedback}{demonstration}Your improved solution:",
     "feedback_template": "Previous attempt feedback: {feedback}\n",
     "solution_template": "Example solution: {demonstration}\n"},
    {"teacher_prompt_template": "{prompt}\n\n{demonstration}{feedback}\nNow answer again."},  # sections unlabelled
])
def test_templates_without_a_double_label_do_not_warn(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SDPOConfig(**kwargs)


def test_only_the_labelled_section_is_named():
    with pytest.warns(UserWarning) as record:
        SDPOConfig(teacher_prompt_template=LABELLED, feedback_template="{feedback}")
    msg = str(record[0].message)
    assert 'solution_template="{demonstration}"' in msg and 'feedback_template="' not in msg.split("Or move")[0]


def test_the_labelled_template_with_raw_sections_renders_each_case():
    c = SDPOConfig(teacher_prompt_template=LABELLED, **RAW_SECTIONS)
    fb_only, spans = build_teacher_message("Add 2 and 2.", None, "Test failed: expected 4, got 5", c)
    assert fb_only == ("Task: Add 2 and 2.\nPrevious attempt feedback: Test failed: expected 4, got 5\n"
                       "Example solution: \nYour improved solution:")  # no demo: the label stays, empty, as written
    assert fb_only[slice(*spans["feedback"])] == "Test failed: expected 4, got 5" and "demonstration" not in spans
    demo_only, spans = build_teacher_message("Add 2 and 2.", "4", None, c)
    assert demo_only == ("Task: Add 2 and 2.\nPrevious attempt feedback: \nExample solution: 4\n"
                         "Your improved solution:")
    # The form the warning recommends: a missing section disappears together with its label.
    better = SDPOConfig(teacher_prompt_template="Task: {prompt}\n{feedback}{demonstration}Your improved solution:",
                        feedback_template="Previous attempt feedback: {feedback}\n",
                        solution_template="Example solution: {demonstration}\n")
    assert build_teacher_message("Add 2 and 2.", None, "off by one", better)[0] == (
        "Task: Add 2 and 2.\nPrevious attempt feedback: off by one\nYour improved solution:")


# ----------------------------------------------------------------------------------------------------------------
# Reward functions: dicts (native) and sdpo-rl's `last_feedback` attribute
# ----------------------------------------------------------------------------------------------------------------
class LastFeedbackReward:
    """sdpo-rl's form: plain float scores returned, feedback set on the instance during the call."""

    def __init__(self, feedback=None):
        self.last_feedback = []
        self._feedback = feedback

    def __call__(self, prompts, completions, **kwargs):
        self.last_feedback = self._feedback(completions) if self._feedback else [
            "" if c == "ok" else f"wrong: {c}" for c in completions]
        return [float(c == "ok") for c in completions]


def wrap(reward):
    """The wrapped reward and what it handed on: `kept.feedback` is the last call's feedback list."""
    from sdpo_lite.rewards import capture_feedback

    kept = types.SimpleNamespace(feedback=None)
    return kept, capture_feedback(reward, lambda feedback: setattr(kept, "feedback", feedback))


def call(wrapped, completions):
    return wrapped(prompts=["p"] * len(completions), completions=completions, completion_ids=[[1]] * len(completions))


def test_last_feedback_of_a_callable_instance_is_used_and_reported_once(caplog):
    reward = LastFeedbackReward()
    trainer, wrapped = wrap(reward)
    assert wrapped.__name__ == "LastFeedbackReward" and not hasattr(wrapped, "last_feedback")  # no stale snapshot
    with caplog.at_level(logging.WARNING, logger="sdpo_lite.rewards"):
        assert call(wrapped, ["ok", "no"]) == [1.0, 0.0]
        assert trainer.feedback == ["", "wrong: no"]
        assert call(wrapped, ["x", "ok", "y"]) == [0.0, 1.0, 0.0]
        assert trainer.feedback == ["wrong: x", "", "wrong: y"]
    told = [r.getMessage() for r in caplog.records if "last_feedback" in r.getMessage()]
    assert len(told) == 1 and "'score': float, 'feedback': str" in told[0]


def test_last_feedback_on_a_plain_function_and_a_partial():
    def scored(prompts, completions, bonus=0.0, **kwargs):
        scored.last_feedback = [None if c == "ok" else "nope" for c in completions]
        return [float(c == "ok") + bonus for c in completions]

    trainer, wrapped = wrap(functools.partial(scored, bonus=0.5))
    assert wrapped.__name__ == "scored"
    assert call(wrapped, ["ok", "no"]) == [1.5, 0.5] and trainer.feedback == [None, "nope"]


def test_dicts_win_and_an_empty_last_feedback_means_none(caplog):
    class Both:
        last_feedback = ["from the attribute"]

        def __call__(self, prompts, completions, **kwargs):
            return [{"score": 0.0, "feedback": "from the dict"}]

    trainer, wrapped = wrap(Both())
    call(wrapped, ["a"])
    assert trainer.feedback == ["from the dict"]
    with caplog.at_level(logging.WARNING, logger="sdpo_lite.rewards"):
        trainer, wrapped = wrap(LastFeedbackReward(feedback=lambda completions: []))  # declared, never filled
        assert call(wrapped, ["ok", "no"]) == [1.0, 0.0] and trainer.feedback == [None, None]
    assert not [r for r in caplog.records if "last_feedback" in r.getMessage()]


@pytest.mark.parametrize("feedback, error, needle", [
    (lambda c: ["one"], ValueError, "has 1 entries for 2 completions"),
    (lambda c: ["a", "b", "c"], ValueError, "has 3 entries for 2 completions"),
    (lambda c: ["a", 3], TypeError, "last_feedback[1] is a int"),
    (lambda c: "a string", TypeError, "last_feedback is a str"),
])
def test_a_malformed_last_feedback_names_the_fix(feedback, error, needle):
    _, wrapped = wrap(LastFeedbackReward(feedback=feedback))
    with pytest.raises(error) as err:
        call(wrapped, ["ok", "no"])
    msg = str(err.value)
    assert needle in msg and "LastFeedbackReward.last_feedback" in msg and "one string (or None) per completion" in msg
    assert "{'score': float, 'feedback': str}" in msg


def test_async_callable_instances_are_left_to_trl():
    class AsyncReward:
        async def __call__(self, prompts, completions, **kwargs):
            return [1.0] * len(completions)

    reward = AsyncReward()
    assert wrap(reward)[1] is reward


# ----------------------------------------------------------------------------------------------------------------
# End to end on the tiny model: the examples' configuration, reward shapes, template and dataset
# ----------------------------------------------------------------------------------------------------------------
def readme_dataset():
    """The examples' dataset shape: uid, a plain-string prompt, an expected answer. Odd tasks are never solvable, so
    their groups fail throughout and their teachers must get the feedback (no successful peer to demonstrate)."""
    from datasets import Dataset

    return Dataset.from_list([{"uid": f"task_{i}", "prompt": f"Task {i}: write anything.",
                               "expected": "impossible" if i % 2 else "even"} for i in range(4)])


def run_output(completion: str) -> str:
    """Our stand-in for executing a completion: the parity of its length."""
    return "even" if len(completion) % 2 == 0 else "odd"


def pattern_1(seen):
    def reward_fn(prompts, completions, **kwargs):  # simple scoring, dict per completion
        seen.append(kwargs)
        results = []
        for prompt, completion, expected in zip(prompts, completions, kwargs["expected"]):
            if run_output(completion) == expected:
                results.append({"score": 1.0, "feedback": "Correct!"})
            else:
                results.append({"score": 0.0, "feedback": "Wrong."})
        return results
    return reward_fn


def pattern_2(seen):
    def reward_fn(prompts, completions, expected, **kwargs):  # rich feedback, with exceptions turned into feedback
        seen.append({"expected": expected, **kwargs})
        results = []
        for completion, want in zip(completions, expected):
            try:
                output = run_output(completion)
                if want == "impossible" and len(completion) % 3 == 0:
                    raise RuntimeError(f"cannot run {len(completion)} characters")
                if output == want:
                    results.append({"score": 1.0, "feedback": "All tests passed!"})
                else:
                    results.append({"score": 0.0, "feedback": f"Test failed: expected {want}, got {output}"})
            except Exception as e:
                results.append({"score": 0.0, "feedback": f"Error: {type(e).__name__}: {e}"})
        return results
    return reward_fn


def sdpo_rl_class(seen):
    class CodeReward:  # sdpo-rl's form: floats returned, feedback on self.last_feedback, "" for a success
        def __init__(self):
            self.last_feedback = []

        def __call__(self, prompts, completions, expected, **kwargs):
            seen.append({"expected": expected, **kwargs})
            self.last_feedback = []
            scores = []
            for completion, want in zip(completions, expected):
                ok = run_output(completion) == want
                scores.append(1.0 if ok else 0.0)
                self.last_feedback.append("" if ok else f"Test failed: expected {want}, got {run_output(completion)}")
            return scores
    return CodeReward()


@pytest.fixture(scope="module")
def tiny_model():
    from sdpo_lite.course.models import load_model

    return load_model("tiny", precision="fp32", device="cpu")


@pytest.mark.parametrize("make_reward, template", [
    (pattern_1, "as written"),  # the examples' template as written: warns, still runs
    (pattern_2, "raw sections"),  # ... with the fix the warning names
    (sdpo_rl_class, "default"),
])
def test_the_examples_train_on_the_tiny_model(tiny_model, make_reward, template, caplog):
    seen = []
    if template == "as written":
        with pytest.warns(UserWarning, match="solution_template"):
            sdpo = sdpo_config_as_the_examples_write_it(distillation_topk=20, teacher_prompt_template=LABELLED)
    elif template == "raw sections":
        sdpo = sdpo_config_as_the_examples_write_it(distillation_topk=20, teacher_prompt_template=LABELLED,
                                                    **RAW_SECTIONS)
    else:
        sdpo = sdpo_config_as_the_examples_write_it(distillation_topk=20)
    # The examples' GRPOConfig fields (bf16, the batch split, sampling, remove_unused_columns); one optimiser step.
    trainer = tiny_trainer(make_reward(seen), sdpo=sdpo, dataset=readme_dataset(), model=tiny_model, max_steps=1,
                           num_generations=4, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                           temperature=0.7, top_p=0.95, num_train_epochs=1, learning_rate=1e-5, bf16=True,
                           remove_unused_columns=False)
    with caplog.at_level(logging.WARNING, logger="sdpo_lite.trainer"):
        trainer.train()

    # Extra dataset columns reach the reward function as kwargs, one value per completion.
    assert seen and all(len(k["uid"]) == len(k["expected"]) == 8 for k in seen)
    assert all(e == ("impossible" if int(u.split("_")[1]) % 2 else "even")
               for k in seen for u, e in zip(k["uid"], k["expected"]))
    rollouts = trainer.last_rollouts
    assert len(rollouts) == 8 and any(r.score == 0.0 for r in rollouts)
    fed = [r for r in rollouts if r.feedback_used]
    assert fed, "no failed rollout's teacher got its feedback"
    for r in fed:
        assert r.score < sdpo.success_threshold and r.feedback in r.teacher_prompt
        if template == "raw sections":  # the raw feedback, after the template's own label only
            assert f"Previous attempt feedback: {r.feedback}\n" in r.teacher_prompt
            assert "The following is feedback" not in r.teacher_prompt
        if template == "as written":
            assert "Task: " in r.teacher_prompt and "Your improved solution:" in r.teacher_prompt
    # Successes' feedback ("Correct!", "All tests passed!") is never shown to a teacher.
    assert not any(("Correct!" in (r.teacher_prompt or "")) or ("All tests passed" in (r.teacher_prompt or ""))
                   for r in rollouts)
    told = [r for r in caplog.records if "last_feedback" in r.getMessage()]
    assert len(told) == (1 if make_reward is sdpo_rl_class else 0)
    if make_reward is sdpo_rl_class:  # TRL names a class instance by its class, and so do our messages
        assert "rewards/CodeReward/mean" in trainer.state.log_history[0]
