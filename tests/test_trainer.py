"""SDPOTrainer end to end on the tiny model: feedback flow, GRPO equivalence, alignment, bad input."""
import logging

import pytest
import torch
from conftest import tiny_trainer
from datasets import Dataset
from trl import GRPOTrainer

from sdpo_lite import SDPOConfig
from sdpo_lite.course.models import load_model
from sdpo_lite.rewards import split_reward_outputs


def text_of(completion):
    return completion[0]["content"] if isinstance(completion, list) else completion


def feedback_reward(prompts, completions, answer, **kwargs):
    """Everyone fails, each with its own feedback: every rollout's teacher reads (only) its feedback."""
    return [{"score": 0.0, "feedback": f"FEEDBACK-{i}: expected {answer[i]}, got {len(text_of(c))} chars"}
            for i, c in enumerate(completions)]


def half_reward(prompts, completions, **kwargs):
    """Even rollouts succeed: every group has successful peers to demonstrate. Successes carry feedback too, which
    no teacher reads (feedback is for failed attempts only)."""
    return [{"score": float(i % 2 == 0), "feedback": f"FB-{i}"} for i in range(len(completions))]


def half_reward_floats(prompts, completions, **kwargs):
    """half_reward's scores as plain floats, for TRL's own GRPOTrainer (which rejects dicts)."""
    return [float(i % 2 == 0) for i in range(len(completions))]


def zero_reward(prompts, completions, **kwargs):
    return [0.0] * len(completions)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_feedback_reaches_the_teacher_verbatim():
    seen = []

    def reward(prompts, completions, answer, **kwargs):
        out = feedback_reward(prompts, completions, answer)
        seen.append([o["feedback"] for o in out])
        return out

    trainer = tiny_trainer(reward)
    trainer.train()
    assert len(trainer.last_rollouts) == 4
    for record, fb in zip(trainer.last_rollouts, seen[-1]):
        assert record.feedback == fb and record.feedback_used and not record.demo_used
        assert fb in record.teacher_prompt and record.teacher_message[slice(*record.spans["feedback"])] == fb
        assert record.teacher_prompt.index("What is") < record.teacher_prompt.index(fb) < record.teacher_prompt.index(
            "Correctly solve the original question.")
    logs = [h for h in trainer.state.log_history if "sdpo/frac_with_feedback" in h]
    assert len(logs) == 2 and all(h["sdpo/frac_with_feedback"] == 1.0 for h in logs)


def test_demonstration_then_feedback_in_template_order():
    trainer = tiny_trainer(half_reward, sdpo=SDPOConfig(distillation_topk=20, feedback_only_without_solution=False))
    trainer.train()
    for r in trainer.last_rollouts:
        assert r.demo_used and r.demo_index != trainer.last_rollouts.index(r)  # never itself
        if r.score == 1.0:  # a success's feedback is not shown: its teacher reads the other success's answer only
            assert not r.feedback_used and r.feedback_ignored and "feedback" not in r.spans
            assert r.feedback not in r.teacher_prompt and "unsuccessful earlier attempt" not in r.teacher_prompt
            continue
        assert r.feedback_used and not r.feedback_ignored
        d, f = r.spans["demonstration"], r.spans["feedback"]
        assert d[1] <= f[0]
        assert r.teacher_message[slice(*f)] == r.feedback
    successes = [r for r in trainer.last_rollouts if r.score == 1.0]
    assert len(successes) == 2 and all(r.demo_index % 2 == 0 for r in trainer.last_rollouts)


def test_a_successful_rollouts_feedback_never_reaches_its_teacher():
    """One success per group with feedback "Correct!": the teacher prompt says "unsuccessful earlier attempt", so that
    feedback is shown to no teacher; the failures still read their own feedback (and the success as a demo)."""
    def reward(prompts, completions, **kwargs):
        return [{"score": 1.0, "feedback": "Correct!"} if i % 4 == 0 else {"score": 0.0, "feedback": f"Wrong-{i}"}
                for i in range(len(completions))]

    trainer = tiny_trainer(reward, sdpo=SDPOConfig(distillation_topk=20, feedback_only_without_solution=False))
    trainer.train()
    rollouts = trainer.last_rollouts
    assert len(rollouts) == 4
    success = rollouts[0]
    assert success.score == 1.0 and success.feedback == "Correct!"  # recorded, for the learner to see ...
    assert success.feedback_ignored and not success.feedback_used  # ... but not used
    assert success.teacher_prompt is None  # a lone success: no peer to show and no feedback, so no teacher
    for r in rollouts[1:]:
        assert r.score == 0.0 and r.demo_index == 0 and r.feedback_used and not r.feedback_ignored
        assert r.feedback in r.teacher_prompt
    assert not any("Correct!" in (r.teacher_prompt or "") for r in rollouts)
    log = [h for h in trainer.state.log_history if "sdpo/frac_with_teacher" in h][-1]
    assert log["sdpo/frac_with_teacher"] == 0.75 and log["sdpo/frac_with_feedback"] == 0.75


def test_sdpo_changes_the_weights_and_logs_its_metrics():
    trainer = tiny_trainer(half_reward, learning_rate=0.1)
    before = weights(trainer.model)
    trainer.train()
    after = weights(trainer.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    log = [h for h in trainer.state.log_history if "sdpo/distill_loss" in h][-1]
    assert log["sdpo/distill_loss"] >= 0 and log["sdpo/frac_with_teacher"] == 1.0
    assert log["sdpo/success_rate"] == pytest.approx(0.5)
    assert trainer.teacher.updates == 2


def test_disabled_is_exactly_grpo():
    a = tiny_trainer(half_reward, sdpo=SDPOConfig(enabled=False), optim="sgd", learning_rate=1.0)
    a.train()
    b = tiny_trainer(half_reward_floats, trainer_cls=GRPOTrainer, optim="sgd", learning_rate=1.0)
    b.train()
    la = [h["loss"] for h in a.state.log_history if "loss" in h]
    lb = [h["loss"] for h in b.state.log_history if "loss" in h]
    assert la == lb
    wa, wb = weights(a.model), weights(b.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.teacher is None and a.last_rollouts  # still inspectable


def test_full_grpo_weight_reproduces_grpo_through_the_shared_student_pass():
    a = tiny_trainer(half_reward, sdpo=SDPOConfig(grpo_weight=1.0, distillation_topk=20), optim="sgd",
                    learning_rate=1.0)
    a.train()
    b = tiny_trainer(half_reward_floats, trainer_cls=GRPOTrainer, optim="sgd", learning_rate=1.0)
    b.train()
    la = [h["loss"] for h in a.state.log_history if "loss" in h]
    lb = [h["loss"] for h in b.state.log_history if "loss" in h]
    assert la == pytest.approx(lb, abs=1e-5)
    wa, wb = weights(a.model), weights(b.model)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_blend_trains():
    trainer = tiny_trainer(half_reward, sdpo=SDPOConfig(grpo_weight=0.5, distillation_topk=20))
    trainer.train()
    assert trainer.state.global_step == 2


def test_batch_without_any_teacher_still_trains_and_says_so_once(caplog):
    trainer = tiny_trainer(zero_reward, optim="sgd", learning_rate=1.0)
    before = weights(trainer.model)
    with caplog.at_level(logging.WARNING, logger="sdpo_lite.trainer"):
        trainer.train()
    assert trainer.state.global_step == 2
    assert all(torch.equal(before[k], v) for k, v in weights(trainer.model).items())  # zero loss, zero gradient
    assert sum("no rollout in this batch has a teacher" in r.message for r in caplog.records) == 1
    assert all(r.teacher_prompt is None for r in trainer.last_rollouts)


def test_accumulation_and_reused_rollouts():
    """num_iterations > 1 reuses rollouts: TRL then provides old log-probs and the importance weight applies."""
    trainer = tiny_trainer(half_reward, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                           num_iterations=2, max_steps=3)
    captured = []
    original = trainer._distillation

    def spy(student, inputs, sd_mask):
        captured.append(inputs.get("old_per_token_logps") is not None)
        return original(student, inputs, sd_mask)

    trainer._distillation = spy
    trainer.train()
    assert trainer.state.global_step == 3 and captured and all(captured)


def test_importance_weight_multiplies_the_distillation_loss(monkeypatch):
    """With old log-probs (reused rollouts) each token's divergence D is multiplied by w = min(exp(logp - logp_old),
    is_clip): the loss must be sum(D * w) / N, where is_clip=None and is_coef=False give sum(D) / N."""
    import dataclasses

    import sdpo_lite.trainer as trainer_module

    trainer = tiny_trainer(feedback_reward, max_steps=1)  # every rollout has a teacher: its own feedback
    batches = []
    compute_loss = trainer._compute_loss

    def keep_batch(model, inputs):
        batches.append(dict(inputs))
        return compute_loss(model, inputs)

    trainer._compute_loss = keep_batch
    trainer.train()  # TRL's own generation, scoring and teacher prompts build the batch
    inputs, model, config = batches[0], trainer.model, trainer.sdpo
    assert inputs.get("old_per_token_logps") is None  # on-policy (num_iterations=1): TRL computes none
    sd_mask = (inputs["completion_mask"].float() * inputs["sdpo_mask"][:, None]).double()
    assert sd_mask.sum() > 0
    with torch.no_grad():
        logp_y = trainer._student_pass(model, inputs).logp_y
    B, T = logp_y.shape
    pattern = torch.tensor([-1.0, 0.0, 0.4, 3.0])  # ratios e^-1, 1, e^0.4 and e^3 (clipped at 2)
    log_ratio = pattern[(torch.arange(B)[:, None] + torch.arange(T)) % 4]  # (B, T), varies along both axes
    reused = {**inputs, "old_per_token_logps": logp_y - log_ratio}

    divergences = []
    divergence_on_support = trainer_module.divergence_on_support

    def record(*args, **kwargs):
        out = divergence_on_support(*args, **kwargs)
        divergences.append(out.per_token.detach().double())
        return out

    monkeypatch.setattr(trainer_module, "divergence_on_support", record)

    def loss(batch, **changes):
        trainer.sdpo = dataclasses.replace(config, **changes)
        with torch.no_grad():
            return trainer._compute_loss(model, batch).item()

    plain = loss(reused, is_clip=None)  # no weight: sum(D) / N
    D = divergences[-1]
    assert (D * sd_mask).sum() > 0
    for clip in (2.0, 100.0):
        w = log_ratio.double().exp().clamp(max=clip)
        want = plain * (D * w * sd_mask).sum().item() / (D * sd_mask).sum().item()
        assert abs(want / plain - 1) > 0.05  # the weight makes a visible difference ...
        assert loss(reused, is_clip=clip) == pytest.approx(want, rel=1e-5)  # ... and it is exactly this one
    assert loss(reused, is_coef=False) == pytest.approx(plain, rel=1e-6)  # switched off: no weight
    assert loss(inputs) == pytest.approx(plain, rel=1e-6)  # no old log-probs: on-policy, w = 1


def test_plain_string_prompts():
    dataset = Dataset.from_list([{"prompt": f"{a} + {b} =", "answer": a + b} for a, b in [(1, 2), (3, 4)]])
    trainer = tiny_trainer(half_reward, dataset=dataset)
    trainer.train()
    r = trainer.last_rollouts[0]
    assert r.teacher_prompt.startswith(r.prompt) and "<|im_start|>" not in r.teacher_prompt


def test_teacher_alignment_does_not_depend_on_padding():
    """Teacher prompts of different lengths are left-padded; the completion logits must not change."""
    trainer = tiny_trainer(half_reward)
    tok = trainer.processing_class
    completion = tok("seven plus one", add_special_tokens=False)["input_ids"]
    short = tok("Q: 3+4?", add_special_tokens=False)["input_ids"]
    long = tok("A much longer teacher prompt with a correct solution: 3 + 4 = 7.", add_special_tokens=False)["input_ids"]
    width = len(long)
    rows = [[tok.pad_token_id] * (width - len(short)) + short, long]
    masks = [[0] * (width - len(short)) + [1] * len(short), [1] * width]
    ids = torch.tensor([r + completion for r in rows])
    att = torch.tensor([m + [1] * len(completion) for m in masks])
    hidden, head = trainer.teacher.hidden_states(ids, att)
    alone, _ = trainer.teacher.hidden_states(torch.tensor([short + completion]), torch.ones(1, len(short) + len(completion), dtype=torch.long))
    T = len(completion)
    torch.testing.assert_close(head(hidden[0, -T - 1:-1]), head(alone[0, -T - 1:-1]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("outputs, error", [
    ([1.0], "returned 1 results for 4 completions"),
    (["high"] * 4, "must be numbers"),
    ([float("nan")] * 4, "return None"),
    ([{"feedback": "x"}] * 4, 'without "score"'),
    ([{"score": 1.0, "feedback": 3}] * 4, "feedback"),
    (1.0, "return a list"),
])
def test_bad_reward_outputs_name_the_fix(outputs, error):
    with pytest.raises((ValueError, TypeError), match=error):
        split_reward_outputs(outputs, 4, "my_reward")


def test_bad_reward_function_fails_inside_training_with_its_name():
    def broken_reward(prompts, completions, **kwargs):
        return [0.0]

    trainer = tiny_trainer(broken_reward)
    with pytest.raises(ValueError, match="broken_reward returned 1 results for 4 completions"):
        trainer.train()


def test_none_scores_are_allowed():
    def sometimes_none(prompts, completions, **kwargs):
        return [None, 1.0, {"score": None, "feedback": "could not parse"}, 0.0]

    trainer = tiny_trainer(sometimes_none)
    trainer.train()
    assert [r.feedback for r in trainer.last_rollouts].count("could not parse") == 1


def test_dataset_without_prompt_column():
    with pytest.raises(ValueError, match="'prompt' column"):
        tiny_trainer(zero_reward, dataset=Dataset.from_list([{"question": "1+1"}]))


def test_conversational_data_needs_a_chat_template():
    model, tok = load_model("tiny", precision="fp32", device="cpu")
    tok.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        tiny_trainer(zero_reward, model=(model, tok))


def test_batch_sizes_trl_cannot_group():
    with pytest.raises(ValueError, match="num_generations"):
        tiny_trainer(zero_reward, per_device_train_batch_size=3, num_generations=4)


def test_sdpo_config_type_is_checked():
    with pytest.raises(TypeError, match="SDPOConfig"):
        tiny_trainer(zero_reward, sdpo={"alpha": 0.5})


def test_every_override_still_exists_in_the_base_with_our_parameters():
    """TRL's and transformers' private methods move between releases: a renamed hook would leave our override
    unreachable (SDPO silently off, or a resume without its teacher). Each must exist with our leading parameters."""
    import inspect

    from sdpo_lite.trainer import GRPOTrainer as Base
    from sdpo_lite.trainer import SDPOTrainer

    hooks = ["_generate_and_score_completions", "_calculate_rewards", "_compute_loss",
             "_get_per_token_logps_and_entropies", "_save", "_save_checkpoint", "_load_from_checkpoint"]
    for name in hooks:
        assert name in SDPOTrainer.__dict__, name
        assert hasattr(Base, name), f"{Base.__module__}.GRPOTrainer has no {name} any more"
        ours = [p.name for p in inspect.signature(SDPOTrainer.__dict__[name]).parameters.values()
                if p.kind is p.POSITIONAL_OR_KEYWORD]
        theirs = [p.name for p in inspect.signature(getattr(Base, name)).parameters.values()]
        assert theirs[:len(ours)] == ours, (name, ours, theirs)
