"""Real runs get interrupted: N steps straight must equal k steps + resume + N - k steps, teacher included.

Also: what `save_model` writes is the student alone (what a user loads for inference), and each checkpoint holds the
teacher where a resume finds it.
"""
import json
import os

import pytest
import torch
from conftest import tiny_trainer
from peft import LoraConfig, get_peft_model
from safetensors import safe_open

from sdpo_lite import SDPOConfig
from sdpo_lite.course.models import load_model
from sdpo_lite.trainer import TEACHER_FILE

N, K = 4, 2  # 4 prompts x 4 generations, batch 4: one prompt per step, one epoch in N steps


def half_reward(prompts, completions, **kwargs):
    """Even rollouts succeed, odd ones fail with feedback: every step has teachers (demos and feedback)."""
    return [{"score": 1.0} if i % 2 == 0 else {"score": 0.0, "feedback": f"Wrong, attempt {i}."}
            for i in range(len(completions))]


def _model(lora: bool):
    model, tok = load_model("tiny", precision="fp32", device="cpu")
    if lora:
        torch.manual_seed(1)
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 lora_dropout=0.0))
    return model, tok


def _trainer(out, lora, ema_tau=0.3):
    # A large EMA rate and learning rate make the teacher and the student move visibly in 4 steps.
    return tiny_trainer(half_reward, model=_model(lora), output_dir=str(out), max_steps=N, save_strategy="steps",
                        save_steps=K, learning_rate=5e-2, sdpo=SDPOConfig(distillation_topk=20, ema_tau=ema_tau))


def _student(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.named_parameters() if v.requires_grad}


def _optimiser(trainer):
    state = trainer.optimizer.state_dict()["state"]
    return {(i, k): v.clone() for i, s in state.items() for k, v in s.items() if torch.is_tensor(v)}


def _losses(trainer):
    return {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}


def _assert_close(a: dict, b: dict, what: str):
    assert a.keys() == b.keys(), what
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=lambda m: f"{what} {key}: {m}")


@pytest.mark.parametrize("lora", [False, True], ids=["full-copy-teacher", "lora-adapter-teacher"])
def test_resume_equals_a_straight_run(tmp_path, lora):
    straight = _trainer(tmp_path / "straight", lora)
    straight.train()
    assert straight.teacher.updates == N

    resumed = _trainer(tmp_path / "resumed", lora)
    resumed.train(resume_from_checkpoint=str(tmp_path / "straight" / f"checkpoint-{K}"))

    _assert_close(_student(resumed), _student(straight), "student")
    _assert_close(resumed.teacher.state_dict(), straight.teacher.state_dict(), "teacher")
    _assert_close(_optimiser(resumed), _optimiser(straight), "optimiser")
    assert resumed.teacher.updates == N
    straight_losses, resumed_losses = _losses(straight), _losses(resumed)
    assert set(range(K + 1, N + 1)) <= resumed_losses.keys()
    for step in range(K + 1, N + 1):
        assert resumed_losses[step] == pytest.approx(straight_losses[step], rel=1e-4, abs=1e-6)
    # The teacher really moved away from the student and from its start: the comparison above is not vacuous.
    fresh = _trainer(tmp_path / "fresh", lora)
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(straight.teacher.state_dict().values(),
                                                          fresh.teacher.state_dict().values()))


@pytest.mark.parametrize("lora", [False, True], ids=["full-copy-teacher", "lora-adapter-teacher"])
def test_saved_model_is_the_student_and_checkpoints_hold_the_teacher(tmp_path, lora):
    trainer = _trainer(tmp_path / "run", lora)
    trainer.train()
    checkpoint = tmp_path / "run" / f"checkpoint-{K}"
    with safe_open(str(checkpoint / TEACHER_FILE), framework="pt") as f:
        assert f.metadata()["teacher_mode"] == "ema" and int(f.metadata()["updates"]) == K
        assert sorted(f.keys()) == sorted(trainer.teacher.state_dict())

    final = tmp_path / "final"
    trainer.save_model(str(final))
    files = sorted(os.listdir(final))
    assert TEACHER_FILE not in files
    if lora:
        assert not (final / "sdpo_teacher").exists(), files  # no teacher adapter beside the student
        with safe_open(str(final / "adapter_model.safetensors"), framework="pt") as f:
            keys = list(f.keys())
        assert keys and not any("sdpo_teacher" in k for k in keys)
        assert list(json.loads((final / "adapter_config.json").read_text())["target_modules"])
    else:
        assert "model.safetensors" in files


def test_lora_checkpoint_restores_the_trained_student_adapter(tmp_path):
    """The reported bug: the student's lora_B came back at its fresh initialisation (zeros) after a resume."""
    trainer = _trainer(tmp_path / "run", lora=True)
    trainer.train()
    trained = {k: v for k, v in _student(trainer).items() if "lora_B" in k}
    assert all(v.abs().max() > 0 for v in trained.values())

    other = _trainer(tmp_path / "other", lora=True)
    other._load_from_checkpoint(str(tmp_path / "run" / f"checkpoint-{N}"))
    _assert_close({k: v for k, v in _student(other).items() if "lora_B" in k}, trained, "student lora_B")
    _assert_close(other.teacher.state_dict(), trainer.teacher.state_dict(), "teacher")


def test_checkpoint_without_teacher_restarts_it_from_the_resumed_student(tmp_path, caplog):
    trainer = _trainer(tmp_path / "run", lora=False)
    trainer.train()
    checkpoint = tmp_path / "run" / f"checkpoint-{N}"
    (checkpoint / TEACHER_FILE).unlink()
    other = _trainer(tmp_path / "other", lora=False)
    with caplog.at_level("WARNING"):
        other._load_from_checkpoint(str(checkpoint))
    assert TEACHER_FILE in caplog.text and "restarts" in caplog.text
    student = dict(other.model.named_parameters())
    teacher = dict(other.teacher.module.named_parameters())
    assert all(torch.equal(teacher[k], student[k]) for k in teacher)


def test_resume_refuses_a_checkpoint_of_another_teacher_mode(tmp_path):
    trainer = _trainer(tmp_path / "run", lora=False)
    trainer.train()
    frozen = tiny_trainer(half_reward, model=_model(False), output_dir=str(tmp_path / "f"),
                          sdpo=SDPOConfig(distillation_topk=20, teacher_mode="frozen"))
    with pytest.raises(ValueError, match="teacher_mode"):
        frozen._load_from_checkpoint(str(tmp_path / "run" / f"checkpoint-{N}"))
