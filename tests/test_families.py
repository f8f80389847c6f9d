"""Model families whose final logits are not just h @ W^T: the student and teacher passes must apply what the model's
own head applies (Gemma 2's softcap, Cohere's logit_scale, Granite's logits_scaling), checked against its logits."""
import pytest
import torch
from transformers import (CohereConfig, CohereForCausalLM, Gemma2Config, Gemma2ForCausalLM, GraniteConfig,
                          GraniteForCausalLM, LlamaConfig, LlamaForCausalLM)

from sdpo_lite import SDPOConfig
from sdpo_lite.loss import as_lm_head, lm_head_of, logit_transform, student_topk_logprobs, teacher_logprobs_at
from sdpo_lite.teacher import Teacher, backbone_hidden_states
from sdpo_lite.trainer import _completion_head, _install_sdpo_head

SIZES = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
# Exaggerated settings so the transform changes the distribution a lot (real models: cap 30, scale 0.0625, ...).
FAMILIES = {
    "gemma2": (Gemma2Config, Gemma2ForCausalLM, dict(final_logit_softcapping=0.3, head_dim=8), (1.0, 0.3)),
    "cohere": (CohereConfig, CohereForCausalLM, dict(logit_scale=6.0), (6.0, None)),
    "granite": (GraniteConfig, GraniteForCausalLM, dict(logits_scaling=0.1), (10.0, None)),
    "llama": (LlamaConfig, LlamaForCausalLM, {}, (1.0, None)),
}
T, TEMPERATURE = 5, 0.7


def build(family):
    config_cls, model_cls, extra, _ = FAMILIES[family]
    torch.manual_seed(0)
    model = model_cls(config_cls(**SIZES, **extra)).eval()
    with torch.no_grad():  # random init gives near-zero logits, where no transform shows; make them large
        model.get_output_embeddings().weight.mul_(40.0)
    ids = torch.randint(3, SIZES["vocab_size"], (2, 9))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # one left-padded row, as in the trainer
    return model, ids, mask


def reference_logprobs(model, ids, mask):
    """The model's own forward: (B, T, V) log-probs predicting the last T tokens."""
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits[:, -T - 1:-1]
    return torch.log_softmax(logits.float() / TEMPERATURE, dim=-1)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_rule(family):
    model, _, _ = build(family)
    assert logit_transform(model.config) == pytest.approx(FAMILIES[family][3])


@pytest.mark.parametrize("family", FAMILIES)
def test_student_and_teacher_passes_match_the_models_own_logits(family):
    model, ids, mask = build(family)
    ref = reference_logprobs(model, ids, mask)
    y = ids[:, -T:]
    # The student pass, through the forward the trainer installs.
    _install_sdpo_head(model)
    head_fn = lambda h, lm_head: _completion_head(h, lm_head, completion_ids=y, T=T, topk=None,  # noqa: E731
                                                  temperature=TEMPERATURE, chunk_size=4)
    with torch.no_grad():
        student = model(input_ids=ids, attention_mask=mask, sdpo_head=head_fn)
    torch.testing.assert_close(student.logp_S[1, 2:], ref[1, 2:], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(student.logp_S[0], ref[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(student.logp_y, ref.gather(-1, y[..., None])[..., 0], rtol=1e-4, atol=1e-4)
    # The teacher pass (a frozen copy: the same weights) on the same input.
    teacher = Teacher(model, SDPOConfig(teacher_mode="frozen"))
    hidden, head = teacher.hidden_states(ids, mask)
    q_S, q_y = teacher_logprobs_at(hidden[:, -T - 1:-1], head, y, None, temperature=TEMPERATURE, chunk_size=3)
    torch.testing.assert_close(q_S, ref, rtol=1e-4, atol=1e-4)
    # Top-k support: gathered at the student's ids, the teacher's values are the reference's values there.
    top = student_topk_logprobs(backbone_hidden_states(model, ids, mask)[:, -T - 1:-1], lm_head_of(model), y,
                                topk=7, temperature=TEMPERATURE)
    torch.testing.assert_close(top.logp_S, ref.gather(-1, top.ids), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "llama"])
def test_a_plain_linear_head_would_be_wrong(family):
    """The check above is not vacuous: without the family's transform the log-probs are far off."""
    model, ids, mask = build(family)
    ref = reference_logprobs(model, ids, mask)
    plain = as_lm_head(model.get_output_embeddings())
    hidden = backbone_hidden_states(model, ids, mask)[:, -T - 1:-1]
    with torch.no_grad():
        logp = student_topk_logprobs(hidden, plain, ids[:, -T:], topk=None, temperature=TEMPERATURE).logp_S
    assert (logp[0] - ref[0]).abs().max() > 0.5


def test_sdpo_trainer_steps_on_a_softcapped_model():
    """End to end on a Gemma-2-shaped model with the tiny tokenizer: the loss is finite and the teacher differs."""
    from conftest import tiny_trainer

    from sdpo_lite.course.models import load_model

    _, tok = load_model("tiny", precision="fp32", device="cpu")
    torch.manual_seed(0)
    config = Gemma2Config(**{**SIZES, "vocab_size": len(tok), "pad_token_id": tok.pad_token_id,
                             "eos_token_id": tok.eos_token_id, "bos_token_id": tok.eos_token_id},
                          final_logit_softcapping=30.0, head_dim=8)
    model = Gemma2ForCausalLM(config)

    def reward(prompts, completions, **kwargs):
        return [{"score": float(i % 2 == 0), "feedback": "Wrong."} for i in range(len(completions))]

    trainer = tiny_trainer(reward, model=(model, tok), max_steps=1)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert any(r.teacher_prompt for r in trainer.last_rollouts)
