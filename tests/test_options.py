"""Which TRL options and launchers SDPOTrainer supports: each one is either honoured (and tested here) or refused at
construction with an error that names the fix. docs/supported.md is the table these tests stand behind."""
import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from conftest import tiny_trainer
from trl import GRPOConfig

from sdpo_lite import SDPOConfig
from sdpo_lite.course.models import load_model
from sdpo_lite.supported import (GRPO_LOSS_ONLY, launcher_problem, option_problems, refuse_unsupported,
                                 refuse_unsupported_state, zero_stage)


def half_reward(prompts, completions, **kwargs):
    """Even rollouts succeed: every rollout of a group gets a teacher (a successful peer)."""
    return [{"score": float(i % 2 == 0), "feedback": f"FB-{i}"} for i in range(len(completions))]


def grpo(**kwargs):
    return GRPOConfig(output_dir="/tmp/sdpo_test_out", per_device_train_batch_size=4, num_generations=4,
                      use_cpu=True, report_to=[], **kwargs)


def rollouts(trainer):
    """One generation batch (one prompt x 4 completions), as TRL hands it to the loss, outside train()."""
    trainer.model.train()
    batch = [trainer.train_dataset[0] for _ in range(4)]
    inputs = trainer._generate_and_score_completions(batch)
    if not hasattr(trainer, "current_gradient_accumulation_steps"):
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop; train() was not called
    return inputs


def loss_of(trainer, inputs, **changes):
    with torch.no_grad():
        return trainer._compute_loss(trainer.model, {**inputs, **changes}).item()


# --------------------------------------------------------------------------------------------------------------------
# GRPO-only options: refused in pure SDPO, honoured in a blend
# --------------------------------------------------------------------------------------------------------------------
GRPO_ONLY_VALUES = dict(beta=0.04, loss_type="grpo", epsilon=0.3, epsilon_high=0.28, delta=2.0,
                        importance_sampling_level="sequence", off_policy_mask_threshold=0.5, top_entropy_quantile=0.2,
                        scale_rewards="none", multi_objective_aggregation="normalize_then_sum",
                        sapo_temperature_neg=2.0, sapo_temperature_pos=2.0, vespo_k_pos=1.0, vespo_lambda_pos=1.0,
                        vespo_k_neg=1.0, vespo_lambda_neg=1.0)


def test_every_grpo_only_option_is_covered():
    assert set(GRPO_ONLY_VALUES) == set(GRPO_LOSS_ONLY)


@pytest.mark.parametrize("name", sorted(GRPO_ONLY_VALUES))
def test_grpo_only_option_is_refused_in_pure_sdpo_and_allowed_in_a_blend(name):
    args = grpo(**{name: GRPO_ONLY_VALUES[name]})
    [problem] = option_problems(SDPOConfig(), args)
    assert problem.startswith(f"{name}=") and "grpo_weight" in problem and "default" in problem
    assert option_problems(SDPOConfig(grpo_weight=0.5), args) == []
    assert option_problems(SDPOConfig(enabled=False), args) == []  # plain GRPO: TRL's own loss


def test_defaults_pass():
    assert option_problems(SDPOConfig(), grpo()) == []


def test_off_means_off_even_when_a_patched_config_class_changes_the_default():
    @dataclasses.dataclass
    class PatchedGRPOConfig(GRPOConfig):  # as a library that regenerates TRL's config class might
        beta: float = 0.04

    args = PatchedGRPOConfig(output_dir="/tmp/sdpo_test_out", per_device_train_batch_size=4, num_generations=4,
                             use_cpu=True, report_to=[])
    assert [p[:10] for p in option_problems(SDPOConfig(), args)] == ["beta=0.04:"]


def test_beta_in_pure_sdpo_fails_at_construction_before_a_reference_model_is_loaded():
    with pytest.raises(ValueError, match=r"beta=0\.04: .*KL-to-reference.*grpo_weight"):
        tiny_trainer(half_reward, beta=0.04)


@pytest.mark.parametrize("grpo_weight", [0.0, 0.5])
@pytest.mark.parametrize("entropy", [dict(entropy_coef=0.01), dict(use_adaptive_entropy=True)])
def test_entropy_bonus_is_refused_in_pure_sdpo_and_in_a_blend(grpo_weight, entropy):
    # In a blend GRPO's entropies come from the shared student pass, detached: the bonus would have no gradient.
    [problem] = option_problems(SDPOConfig(grpo_weight=grpo_weight), grpo(**entropy))
    assert "entropy_coef=0.0 and use_adaptive_entropy=False" in problem
    assert option_problems(SDPOConfig(enabled=False), grpo(**entropy)) == []


def test_fp32_lm_head_is_refused():
    [problem] = option_problems(SDPOConfig(grpo_weight=0.5), grpo(cast_lm_head_to_fp32=True))
    assert "cast_lm_head_to_fp32=False" in problem


def test_kl_to_reference_enters_a_blend_through_grpo_part():
    trainer = tiny_trainer(half_reward, sdpo=SDPOConfig(grpo_weight=0.5, distillation_topk=20), beta=0.04,
                           max_steps=1)
    assert trainer.ref_model is not None
    trainer.train()
    assert "kl" in trainer.state.log_history[0]
    inputs = rollouts(trainer)
    # The policy still equals its reference here (KL = 0), so move the reference away: KL > 0 on every token.
    inputs["ref_per_token_logps"] = inputs["ref_per_token_logps"] - 0.5

    def kl_part(lam):
        trainer.sdpo.grpo_weight = lam
        trainer.beta = 0.04
        with_kl = loss_of(trainer, inputs)
        trainer.beta = 0.0
        return with_kl - loss_of(trainer, inputs)

    full, half = kl_part(1.0), kl_part(0.5)
    assert full > 1e-4
    assert half == pytest.approx(0.5 * full, rel=1e-4)  # lambda * (GRPO + beta * KL): weighted like GRPO's part


# --------------------------------------------------------------------------------------------------------------------
# Masks and corrections that apply to SDPO's loss too
# --------------------------------------------------------------------------------------------------------------------
def test_mask_truncated_completions_masks_the_distillation():
    def run(mask_truncated):
        trainer = tiny_trainer(half_reward, mask_truncated_completions=mask_truncated, max_steps=1, optim="sgd",
                               learning_rate=1.0)
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.train()
        log = trainer.state.log_history[0]
        assert log["completions/clipped_ratio"] == 1.0  # the random tiny model never stops within 8 tokens
        after = trainer.model.state_dict()
        return any(not torch.equal(before[k], after[k]) for k in before)

    assert run(mask_truncated=False)  # distils every (truncated) completion
    assert not run(mask_truncated=True)  # every completion is truncated, so nothing is distilled: no update


def test_vllm_importance_sampling_ratio_weights_every_distilled_token():
    # vLLM is not installed here; TRL stores the ratio under this key when use_vllm and the correction are on.
    trainer = tiny_trainer(half_reward)
    inputs = rollouts(trainer)
    B, T = inputs["completion_ids"].shape
    base = loss_of(trainer, inputs)
    assert base > 0
    assert loss_of(trainer, inputs, importance_sampling_ratio=torch.ones(B, T)) == pytest.approx(base, rel=1e-5)
    assert loss_of(trainer, inputs, importance_sampling_ratio=torch.full((B, T), 0.5)) == pytest.approx(0.5 * base,
                                                                                                         rel=1e-5)
    g = torch.Generator().manual_seed(0)
    r1, r2 = torch.rand(B, T, generator=g), torch.rand(B, T, generator=g)
    l1, l2 = loss_of(trainer, inputs, importance_sampling_ratio=r1), loss_of(trainer, inputs,
                                                                             importance_sampling_ratio=r2)
    assert loss_of(trainer, inputs, importance_sampling_ratio=r1 + r2) == pytest.approx(l1 + l2, rel=1e-4)
    assert l1 != pytest.approx(l2, rel=1e-3)  # per token, not one scalar
    per_sequence = torch.rand(B, 1, generator=g)  # the sequence_* modes store (B, 1)
    assert loss_of(trainer, inputs, importance_sampling_ratio=per_sequence) == pytest.approx(
        loss_of(trainer, inputs, importance_sampling_ratio=per_sequence.expand(B, T)), rel=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# Mixture-of-experts: the router load-balancing loss, once, in pure SDPO and in a blend
# --------------------------------------------------------------------------------------------------------------------
def tiny_moe():
    from transformers import GenerationConfig, Qwen2MoeConfig, Qwen2MoeForCausalLM

    _, tok = load_model("tiny", precision="fp32", device="cpu")
    config = Qwen2MoeConfig(vocab_size=512, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                            shared_expert_intermediate_size=16, num_experts=4, num_experts_per_tok=2,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=None,
                            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2MoeForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return model, tok


def test_moe_load_balancing_loss_is_added_once_with_trl_scale():
    trainer = tiny_trainer(half_reward, model=tiny_moe(), sdpo=SDPOConfig(grpo_weight=0.5, distillation_topk=20),
                           max_steps=1)
    assert trainer.aux_loss_enabled
    trainer.train()  # the blend used to fail here: TypeError from GRPO's part adding an aux loss of None
    assert trainer.state.log_history[0]["aux_loss"] > 0
    inputs = rollouts(trainer)
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():  # the model's own load-balancing loss on the student pass's inputs and positions
        reference = trainer.model(input_ids=ids, attention_mask=att, position_ids=(att.cumsum(-1) - 1).clamp(min=0),
                                  output_router_logits=True).aux_loss.item()
    trainer.router_aux_loss_coef = 0.5
    trainer.current_gradient_accumulation_steps = 2
    for lam in (0.0, 0.5):
        trainer.sdpo.grpo_weight = lam
        with_aux = loss_of(trainer, inputs)
        trainer.aux_loss_enabled = False
        without = loss_of(trainer, inputs)
        trainer.aux_loss_enabled = True
        assert with_aux - without == pytest.approx(0.5 * reference / 2, rel=1e-4), lam  # not lambda-weighted
    assert not trainer.model.config.output_router_logits  # the recording switch is put back


def test_moe_whose_router_logits_cannot_be_read_is_refused(monkeypatch):
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeModel

    recorded = {k: v for k, v in Qwen2MoeModel._can_record_outputs.items() if k != "router_logits"}
    monkeypatch.setattr(Qwen2MoeModel, "_can_record_outputs", recorded)
    with pytest.raises(ValueError, match=r"router_aux_loss_coef=0\.0"):
        tiny_trainer(half_reward, model=tiny_moe())
    assert not tiny_trainer(half_reward, model=tiny_moe(), router_aux_loss_coef=0.0).aux_loss_enabled


# --------------------------------------------------------------------------------------------------------------------
# Launchers: single process and DDP only
# --------------------------------------------------------------------------------------------------------------------
def args_like(**kwargs):
    return SimpleNamespace(**{"fsdp": None, "fsdp_config": None, "deepspeed": None, "deepspeed_plugin": None,
                              **kwargs})


def test_plain_and_ddp_launches_pass():
    assert launcher_problem(args_like(), {}) is None
    assert launcher_problem(args_like(fsdp=False, fsdp_config={"version": 2}), {"WORLD_SIZE": "2"}) is None


@pytest.mark.parametrize("args, env", [
    (args_like(fsdp=True), {}),
    (args_like(fsdp=["full_shard", "auto_wrap"]), {}),
    (args_like(), {"ACCELERATE_USE_FSDP": "true"}),
])
def test_fsdp_is_refused(args, env):
    message = launcher_problem(args, env)
    assert "FSDP" in message and "lm_head.weight" in message and "torchrun" in message


def test_deepspeed_is_refused_at_every_zero_stage(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    cases = [
        (args_like(deepspeed={"zero_optimization": {"stage": 3}}), {}, 3),
        (args_like(deepspeed=str(path)), {}, 2),
        (args_like(deepspeed='{"zero_optimization": {"stage": 1}}'), {}, 1),
        (args_like(deepspeed_plugin=SimpleNamespace(zero_stage=0)), {}, 0),
        (args_like(), {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, 3),
        (args_like(deepspeed={"zero_optimization": {"stage": "auto"}}), {}, None),
    ]
    for args, env, stage in cases:
        assert zero_stage(args.deepspeed, args.deepspeed_plugin, env) == stage
        message = launcher_problem(args, env)
        assert message and "torchrun" in message
        if stage == 3:
            assert "ZeRO-3" in message and "lm_head.weight" in message
        elif stage is None:
            assert "stage unknown" in message
        else:
            assert f"ZeRO-{stage}" in message and "never been run under DeepSpeed" in message


def test_fsdp_fails_at_construction_before_trl_builds_anything():
    with pytest.raises(ValueError, match="SDPOTrainer cannot run under FSDP"):
        tiny_trainer(half_reward, fsdp="full_shard")


def test_accelerate_environment_is_read(monkeypatch):
    with pytest.raises(ValueError, match="ACCELERATE_USE_FSDP"):
        refuse_unsupported(SDPOConfig(), None, env={"ACCELERATE_USE_FSDP": "1"})
    args = grpo()  # built first: with the variable set, GRPOConfig itself needs DeepSpeed installed
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match="DeepSpeed"):
        refuse_unsupported(SDPOConfig(), args)  # os.environ by default


def built(kind, plugin=None, fsdp=False, deepspeed=False):
    state = SimpleNamespace(distributed_type=kind, deepspeed_plugin=plugin)
    return SimpleNamespace(accelerator=SimpleNamespace(state=state), is_fsdp_enabled=fsdp,
                           is_deepspeed_enabled=deepspeed, sdpo=SDPOConfig(), aux_loss_enabled=False)


def test_the_built_accelerator_is_checked_again():
    refuse_unsupported_state(built(DistributedType.NO))
    refuse_unsupported_state(built(DistributedType.MULTI_GPU))
    with pytest.raises(ValueError, match="FSDP"):
        refuse_unsupported_state(built(DistributedType.FSDP))
    with pytest.raises(ValueError, match="FSDP"):
        refuse_unsupported_state(built(DistributedType.NO, fsdp=True))
    with pytest.raises(ValueError, match="ZeRO-3"):
        refuse_unsupported_state(built(DistributedType.DEEPSPEED, plugin=SimpleNamespace(zero_stage=3)))
    with pytest.raises(ValueError, match="ZeRO-2"):
        refuse_unsupported_state(built(DistributedType.NO, plugin=SimpleNamespace(zero_stage=2), deepspeed=True))
