"""The notebooks' recipes (sdpo_lite.course.recipes, reports, rollouts) on the tiny model: profiles, a training run,
the views and plots."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from sdpo_lite import SDPOConfig  # noqa: E402
from sdpo_lite.config import SDPOConfig as Config  # noqa: E402
from sdpo_lite.course.recipes import choose_profile, train_run  # noqa: E402
from sdpo_lite.course.reports import (draw_sdpo_data_flow, plot_comparison, print_next_token_views,  # noqa: E402
                                      print_rollouts, summarise_runs)
from sdpo_lite.course.rollouts import next_token_views  # noqa: E402
from sdpo_lite.course.models import load_model  # noqa: E402
from sdpo_lite.reprompt import build_teacher_message  # noqa: E402
from sdpo_lite.course.rewards import addition_reward_rich  # noqa: E402


def test_profiles(monkeypatch):
    monkeypatch.setenv("SDPO_MODEL", "tiny")
    assert choose_profile().name == "tiny"
    monkeypatch.setenv("SDPO_MODEL", "smollm2-135m")
    cpu = choose_profile(steps=3)
    assert cpu.name == "cpu" and cpu.steps == 3 and cpu.model_name == "smollm2-135m"
    assert "smollm2-135m" in cpu.describe()
    assert choose_profile("gpu").model_name == "Qwen/Qwen2.5-0.5B-Instruct"


def test_next_token_views_shows_both_sides(capsys):
    model, tok = load_model("tiny", precision="fp32", device="cpu")
    q = [{"role": "user", "content": "What is 2 + 3?"}]
    message = build_teacher_message("What is 2 + 3?", None, "Wrong: 2 + 3 = 5, you wrote 6", Config())[0]
    rows = next_token_views(model, tok, q, "2 + 3 = 6", message, k=3)
    assert len(rows) == len(tok("2 + 3 = 6", add_special_tokens=False)["input_ids"]) + 1  # + the end-of-turn token
    for r in rows:
        assert 0 <= r["p_student"] <= 1 and 0 <= r["p_teacher"] <= 1 and len(r["teacher_top"]) == 3
        assert r["student_top"][0][1] >= r["student_top"][1][1]
    assert model.training is False or model.training is True  # restored, whatever it was
    print_next_token_views(rows)
    assert "teacher top-3" in capsys.readouterr().out


@pytest.mark.slow
def test_train_run_and_reports(capsys):
    profile = choose_profile("tiny", steps=2)
    sdpo = train_run("SDPO", profile, addition_reward_rich, sdpo=SDPOConfig(distillation_topk=10),
                     learning_rate=1e-3, disable_tqdm=True, output_dir="/tmp/sdpo_course_test")
    grpo = train_run("GRPO", profile, addition_reward_rich, sdpo=SDPOConfig(enabled=False), disable_tqdm=True,
                     output_dir="/tmp/sdpo_course_test")
    assert not grpo.sdpo_enabled and sdpo.sdpo_enabled
    assert len(sdpo.history) == 2 and 0.0 <= sdpo.accuracy <= 1.0 and sdpo.seconds > 0
    assert len(sdpo.step_seconds) == 2 and 0 < sdpo.step_seconds[0] < sdpo.step_seconds[1] < sdpo.seconds
    assert sdpo.series("sdpo/frac_with_teacher") == [1.0, 1.0]  # rich feedback gives every rollout a teacher
    summarise_runs([sdpo, grpo], before=0.0)
    print_rollouts(sdpo.rollouts, limit=2)
    out = capsys.readouterr().out
    assert "heldout_after_sdpo" in out and "teacher read:" in out and "Wrong:" in out
    fig = plot_comparison([sdpo, grpo], before=0.0)
    assert len(fig.axes) == 2
    assert draw_sdpo_data_flow() is not None


@pytest.mark.slow
def test_a_finished_run_frees_what_it_was_not_asked_to_keep():
    """Notebooks compare several runs: each must not keep its optimiser (2x the weights) and teacher alive."""
    import gc

    from sdpo_lite.trainer import SDPOTrainer

    profile = choose_profile("tiny", steps=1)
    kept = {}
    for keep in ("records", "model", "all"):
        run = train_run("SDPO", profile, addition_reward_rich, sdpo=SDPOConfig(distillation_topk=10), keep=keep,
                        evaluate=False, disable_tqdm=True, log_every=None, output_dir="/tmp/sdpo_course_test")
        gc.collect()
        alive = sum(isinstance(o, SDPOTrainer) for o in gc.get_objects())
        kept[keep] = (alive, run.trainer is not None and run.trainer.optimizer is not None, run.model is not None)
        assert run.rollouts and run.history and run.sdpo_enabled  # the records outlive every choice
        del run
    assert kept == {"records": (0, False, False), "model": (1, False, True), "all": (1, True, True)}
    with pytest.raises(ValueError, match="'records'"):
        train_run("SDPO", profile, addition_reward_rich, sdpo=SDPOConfig(), keep="everything")


def test_train_run_needs_an_explicit_sdpo_config():
    """No silent GRPO: a run says what it trains (SDPOConfig(enabled=False) is GRPO)."""
    profile = choose_profile("tiny", steps=1)
    with pytest.raises(TypeError, match="sdpo"):
        train_run("SDPO", profile, addition_reward_rich)
    with pytest.raises(TypeError, match=r"SDPOConfig\(enabled=False\) for plain GRPO"):
        train_run("SDPO", profile, addition_reward_rich, sdpo=None)
    with pytest.raises(TypeError, match=r"no longer takes dataset, eval_task: task='...' names both"):
        train_run("SDPO", profile, addition_reward_rich, sdpo=SDPOConfig(), dataset=[], eval_task="code")


@pytest.mark.slow
def test_a_lora_profile_trains_adapters_on_a_frozen_base():
    """The lowmem profile (Binder's 2 GB): train_run puts LoRA on the fresh model; the teacher is an adapter."""
    profile = choose_profile("tiny", steps=1, lora_rank=4)
    run = train_run("SDPO", profile, addition_reward_rich, sdpo=SDPOConfig(distillation_topk=10), keep="model",
                    evaluate=False, disable_tqdm=True, log_every=None, output_dir="/tmp/sdpo_course_test")
    trainable = [n for n, p in run.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert run.trainer.teacher.uses_adapter and run.trainer.teacher.module is None  # no full-size teacher copy


def test_parity_profiles(monkeypatch):
    """Notebook 02's settings: choose_profile(task="parity") applies TASK_OVERRIDES["parity"], then yours."""
    monkeypatch.setenv("SDPO_MODEL", "smollm2-135m")
    cpu = choose_profile(task="parity")
    assert cpu.name == "cpu" and cpu.model_name == "smollm2-135m"
    assert cpu.max_completion_length == 24 and cpu.temperature == 0.7  # TASK_OVERRIDES["parity"]
    assert cpu.learning_rate == cpu.sdpo_learning_rate  # the profile line shows the rate that is used
    assert choose_profile(task="parity", steps=3).steps == 3
    gpu = choose_profile("gpu", task="parity")
    assert gpu.max_completion_length >= 256 and "not yet run on a GPU" in gpu.describe()
    monkeypatch.setenv("SDPO_MODEL", "tiny")
    assert choose_profile(task="parity").name == "tiny"


def test_print_before_after_shows_changed_problems_first(capsys):
    from sdpo_lite.course.evaluate import EvalResult
    from sdpo_lite.course.recipes import RunResult
    from sdpo_lite.course.reports import print_before_after

    before = EvalResult(0.5, 3, 1, [("1 + 1?", "2", 2, True), ("2 + 2?", "5", 4, False), ("3 + 3?", "7", 6, False)])
    grpo = RunResult("GRPO", examples=[("1 + 1?", "2", 2, True), ("2 + 2?", "5", 4, False), ("3 + 3?", "6", 6, True)])
    print_before_after(before, [grpo], limit=2)
    out = capsys.readouterr().out
    assert out.index("3 + 3?") < out.index("1 + 1?") and "2 + 2?" not in out  # the changed one first, 2 in all
    assert "GRPO    right  '6'" in out and "before  wrong  '7'" in out
    with pytest.raises(ValueError, match="same held-out problems"):
        print_before_after(before, [RunResult("short", examples=before.examples[:1])])


def test_training_notices_reach_the_cell_as_plain_lines_not_stderr(capsys):
    """A logging warning from the trainer goes to stderr, which notebooks draw as an error box; during a course run
    it is printed as a `note:` line instead, and the logger is restored afterwards."""
    import logging

    from sdpo_lite.course.recipes import notices_on_stdout

    log = logging.getLogger("sdpo_lite.trainer")
    with notices_on_stdout():
        log.warning("SDPO: no rollout in this batch has a teacher")
    captured = capsys.readouterr()
    assert "note: SDPO: no rollout in this batch has a teacher" in captured.out and "SDPO" not in captured.err
    assert logging.getLogger("sdpo_lite").propagate and not logging.getLogger("sdpo_lite").handlers
