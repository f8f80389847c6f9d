"""The code task end to end: committed files, Arrow-safe loading, the sandboxed checker, the notebook-03 recipes."""
import json
import math

import pytest

from sdpo_lite import SDPOConfig
from sdpo_lite.course.recipes import RunResult, choose_profile
from sdpo_lite.course.rollouts import rollout_group
from sdpo_lite.course.tasks import TASKS, check_code, load_task, read_rows, task_path, to_conversational
from sdpo_lite.course.evaluate import accuracy
from sdpo_lite.course.models import load_model


@pytest.mark.parametrize("split, size", [("train", 43), ("heldout", 17)])
def test_code_splits_load_with_tests_as_json_text(split, size):
    ds = load_task("code", split)
    raw = read_rows(task_path("code", split), TASKS["code"])
    assert len(ds) == size == len(raw)
    for row, original in zip(ds, raw):
        assert isinstance(row["tests"], str)  # Arrow needs one type per column; expected values mix int/list/str
        assert json.loads(row["tests"]) == original["tests"]  # ...and nothing is lost on the way
        assert len(original["tests"]) >= 3


def test_code_splits_do_not_share_functions():
    train = {r["entry_point"] for r in load_task("code", "train")}
    heldout = {r["entry_point"] for r in load_task("code", "heldout")}
    assert not train & heldout


def test_check_code_runs_the_tests_in_the_sandbox():
    row = next(r for r in load_task("code", "train") if r["entry_point"] == "sum_list")
    assert check_code("```python\ndef sum_list(xs):\n    return sum(xs)\n```", row)
    assert not check_code("```python\ndef sum_list(xs):\n    return len(xs)\n```", row)
    assert not check_code("import os\ndef sum_list(xs):\n    os.system('true')\n    return sum(xs)\n", row)


def test_accuracy_passes_the_whole_row_to_a_row_checker(monkeypatch):
    """answer_field=None: the checker gets the row (entry point + tests); the code task's checker is check_code."""
    model, tok = load_model("tiny", precision="fp32", device="cpu")
    seen = []
    spec = TASKS["code"]
    monkeypatch.setitem(TASKS, "code", type(spec)(**{**spec.__dict__, "checker": lambda c, row: seen.append(row) or True}))
    result = accuracy(model, tok, "code", "heldout", max_new_tokens=2, limit=3, progress=False)
    assert result.correct == 3 and [r["entry_point"] for r in seen] == [r["entry_point"] for r in
                                                                       list(load_task("code", "heldout"))[:3]]


def test_code_profile_and_unknown_names():
    cpu = choose_profile("cpu", task="code")
    assert cpu.max_completion_length > choose_profile("cpu").max_completion_length  # a function needs more tokens
    assert cpu.eval_tokens >= cpu.max_completion_length
    assert choose_profile("cpu", task="code", steps=2).steps == 2  # the user's override wins over the task's
    with pytest.raises(ValueError, match="TASK_OVERRIDES"):
        choose_profile("cpu", task="poetry")
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        choose_profile("laptop")


@pytest.mark.parametrize("label, key", [("SDPO", "sdpo"), ("blend (lambda=0.9)", "blend"),
                                        ("SDPO, no feedback", "sdpo_no_feedback"), ("SDPO + feedback", "sdpo_feedback")])
def test_run_keys_are_distinct_and_stable(label, key):
    assert RunResult(label).key == key


def test_rollout_group_plans_teachers_like_the_trainer():
    """Rollout 0 passes: every other rollout gets its solution; rollout 0 itself (a lone success) gets no teacher:
    never itself as a demonstration, and a success's feedback is not shown to a teacher."""
    model, tok = load_model("tiny", precision="fp32", device="cpu")
    row = to_conversational(load_task("code", "train"))[0]
    calls = []

    def reward(prompts, completions, entry_point, tests, **kw):
        calls.append((len(completions), entry_point[0], json.loads(tests[0])))
        return [{"score": 1.0 if i == 0 else 0.0, "feedback": f"feedback {i}"} for i in range(len(completions))]

    records = rollout_group(model, tok, row, reward, n=4, max_new_tokens=4, config=SDPOConfig())
    assert calls == [(4, row["entry_point"], json.loads(row["tests"]))]  # dataset columns reach the reward
    assert [r.score for r in records] == [1.0, 0.0, 0.0, 0.0]
    assert records[0].teacher_prompt is None and records[0].feedback_ignored and not records[0].feedback_used
    for r in records[1:]:
        assert r.demo_used and r.demo_index == 0 and not r.feedback_used  # official: feedback only without a solution
        assert records[0].completion.strip() in r.teacher_prompt and "<|im_start|>user" in r.teacher_prompt
    no_fb = rollout_group(model, tok, row, reward, n=4, max_new_tokens=4, config=SDPOConfig(include_feedback=False))
    assert no_fb[0].teacher_prompt is None and all(r.demo_used for r in no_fb[1:])
    assert all(not math.isnan(r.score) for r in records)


def test_grad_accum_splits_the_backward_not_the_generation_batch():
    """One optimiser step = one generation batch of prompts x generations, whatever grad_accum is."""
    from sdpo_lite.course.recipes import grpo_args

    for name in ("cpu", "gpu", "tiny"):
        profile = choose_profile(name, task="code")
        args = grpo_args(profile, "/tmp/sdpo_profile_test")
        assert args.generation_batch_size == profile.prompts_per_step * profile.num_generations
        assert args.per_device_train_batch_size * args.gradient_accumulation_steps == args.generation_batch_size
    assert grpo_args(choose_profile("gpu", task="code"), "/tmp/sdpo_profile_test").gradient_accumulation_steps == 8
    with pytest.raises(ValueError, match="grad_accum=3 must divide"):
        choose_profile("cpu", grad_accum=3)
