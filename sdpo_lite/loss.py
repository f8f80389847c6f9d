"""The SDPO distillation loss, and the chunked LM-head passes that feed it without full-vocabulary logits.

Notation (the paper's): at each completion position the student p = softmax(z_S / tau) reads the plain prompt,
the teacher q = softmax(z_T / tau) reads the teacher prompt (prompt + a peer's solution and/or feedback). Both
are normalised over the FULL vocabulary; the loss then compares them on a small support S = the student's
top-k tokens (plus one "tail" bucket for the mass outside S).

Two entry points share one core:
  * `distillation_loss(student_logits, teacher_logits, ...)` takes full (B, T, V) logits. It is the reference
    contract (checked against the official code by ../shared/parity) and what the visualisations use.
  * The trainer never builds (B, T, V) for both models: `student_topk_logprobs` walks the student's hidden
    states in chunks and keeps only (B, T, K); `teacher_logprobs_at` gathers the teacher at the student's ids.
    Both then call `divergence_on_support`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


@dataclass
class DistillationOutput:
    loss: torch.Tensor  # scalar
    per_token: torch.Tensor  # (B, T): per-token loss before masking, importance weight applied


# ----------------------------------------------------------------------------------------------------------------
# The divergence on a support
# ----------------------------------------------------------------------------------------------------------------
def with_tail(logp: torch.Tensor) -> torch.Tensor:
    """Append log(1 - sum(p_S)) as one more bucket: (..., K) -> (..., K + 1).

    Computed stably as log(-expm1(logsumexp(logp))); the log-mass of S is floored at -1e-7 so a support that
    already holds (numerically) all the mass gives a tiny tail instead of log(0) = -inf.
    """
    log_mass = torch.logsumexp(logp, dim=-1, keepdim=True).clamp(max=-1e-7)
    return torch.cat([logp, torch.log(-torch.expm1(log_mass))], dim=-1)


def renormalise(logp: torch.Tensor) -> torch.Tensor:
    """Renormalise log-probs over the support (the objective without a tail bucket)."""
    return logp - torch.logsumexp(logp, dim=-1, keepdim=True)


def alpha_divergence(student_logp: torch.Tensor, teacher_logq: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-position divergence between two distributions given as log-probs over the same support: (..., K) -> (...).

    alpha = 0: KL(q || p), alpha = 1: KL(p || q), else the generalised JSD with m = (1 - alpha) p + alpha q:
    (1 - alpha) KL(p || m) + alpha KL(q || m). `F.kl_div(input, target, log_target=True)` is KL(target || input).
    """
    if alpha == 0.0:
        kl = F.kl_div(student_logp, teacher_logq, reduction="none", log_target=True)
    elif alpha == 1.0:
        kl = F.kl_div(teacher_logq, student_logp, reduction="none", log_target=True)
    else:
        a = torch.tensor(alpha, dtype=student_logp.dtype, device=student_logp.device)
        log_m = torch.logsumexp(torch.stack([student_logp + torch.log(1 - a), teacher_logq + torch.log(a)]), dim=0)
        kl_student = F.kl_div(log_m, student_logp, reduction="none", log_target=True)
        kl_teacher = F.kl_div(log_m, teacher_logq, reduction="none", log_target=True)
        kl = torch.lerp(kl_student, kl_teacher, a)
    return kl.sum(-1)


def importance_weight(student_logp_y, old_logp_y, is_clip):
    """w = min(exp(clamp(log p(y) - log p_old(y), -20, 20)), is_clip), detached. It is 1 on-policy."""
    log_ratio = (student_logp_y - old_logp_y).detach().clamp(-20.0, 20.0)
    return torch.exp(log_ratio).clamp(max=is_clip)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, aggregation: str) -> torch.Tensor:
    """Reduce (B, T) per-token losses to a scalar over the tokens where mask = 1.

    "token-mean" (official): sum / number of tokens. "seq-mean-token-mean" (TRL): mean over sequences of each
    sequence's token mean. "sum": the masked sum; the trainer divides by a global token count itself so the
    result does not depend on how the batch is split across processes and accumulation steps.
    """
    masked = per_token * mask
    if aggregation == "token-mean":
        return masked.sum() / mask.sum().clamp(min=1)
    if aggregation == "seq-mean-token-mean":
        has_tokens = (mask.sum(-1) > 0).to(per_token.dtype)
        seq_means = masked.sum(-1) / mask.sum(-1).clamp(min=1)
        return (seq_means * has_tokens).sum() / has_tokens.sum().clamp(min=1)
    if aggregation == "sum":
        return masked.sum()
    raise ValueError(f"aggregation={aggregation!r}: use 'token-mean', 'seq-mean-token-mean' or 'sum'")


def divergence_on_support(student_logp_S, teacher_logq_S, student_logp_y, teacher_logq_y, mask, *, alpha,
                          add_tail: bool, use_topk: bool, old_logprobs=None, is_clip=None, token_level=False,
                          aggregation="token-mean") -> DistillationOutput:
    """The official per-token loss, from log-probs already gathered on the support.

    student_logp_S, teacher_logq_S: (B, T, K) full-vocabulary log-probs at the student's top-k ids (K = V when
        use_topk is False). student_logp_y, teacher_logq_y: (B, T) log-probs of the sampled tokens.
    mask: (B, T) float; 1 where the token counts (completion mask x "this sample has a teacher").
    """
    if token_level:
        # Sampled-token surrogate: its gradient is the reverse-KL policy gradient with reward log q - log p.
        per_token = (student_logp_y - teacher_logq_y.detach()).detach() * student_logp_y
    else:
        teacher_logq_S = teacher_logq_S.detach()
        if use_topk:
            prepare = with_tail if add_tail else renormalise
            student_logp_S, teacher_logq_S = prepare(student_logp_S), prepare(teacher_logq_S)
        per_token = alpha_divergence(student_logp_S, teacher_logq_S, alpha)  # (B, T)
    if is_clip is not None:
        if old_logprobs is None:
            raise ValueError("is_clip needs old_logprobs (the log-probs of the policy that sampled the rollouts)")
        per_token = per_token * importance_weight(student_logp_y, old_logprobs, is_clip)
    return DistillationOutput(loss=aggregate(per_token, mask, aggregation), per_token=per_token)


# ----------------------------------------------------------------------------------------------------------------
# Reference entry point: full logits in, loss out (the parity contract)
# ----------------------------------------------------------------------------------------------------------------
def distillation_loss(student_logits, teacher_logits, completion_ids, mask, *, alpha, topk, add_tail,
                      temperature, old_logprobs=None, is_clip=None, token_level=False,
                      aggregation="token-mean") -> DistillationOutput:
    """SDPO's per-token self-distillation loss from RAW, aligned (B, T, V) logits.

    Position t of both logit tensors predicts completion_ids[:, t]. Logits are divided by the sampling
    temperature and normalised over the full vocabulary; the teacher side gets no gradient.
    """
    student_logp = torch.log_softmax(student_logits / temperature, dim=-1)  # (B, T, V)
    teacher_logq = torch.log_softmax(teacher_logits.detach() / temperature, dim=-1)  # (B, T, V)
    y = completion_ids.unsqueeze(-1)  # (B, T, 1)
    student_logp_y = student_logp.gather(-1, y).squeeze(-1)  # (B, T)
    teacher_logq_y = teacher_logq.gather(-1, y).squeeze(-1)  # (B, T)
    if topk is None:
        student_logp_S, teacher_logq_S = student_logp, teacher_logq
    else:
        ids = student_logp.topk(topk, dim=-1).indices  # (B, T, K): the STUDENT's top-k defines the support
        student_logp_S, teacher_logq_S = student_logp.gather(-1, ids), teacher_logq.gather(-1, ids)
    return divergence_on_support(
        student_logp_S, teacher_logq_S, student_logp_y, teacher_logq_y, mask, alpha=alpha, add_tail=add_tail,
        use_topk=topk is not None, old_logprobs=old_logprobs, is_clip=is_clip, token_level=token_level,
        aggregation=aggregation)


# ----------------------------------------------------------------------------------------------------------------
# Chunked LM-head passes: hidden states in, only what the loss needs out
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class StudentSupport:
    logp_S: torch.Tensor  # (B, T, K) student log-probs on its top-k (K = V when topk is None)
    ids: torch.Tensor | None  # (B, T, K) the top-k token ids (None = full vocabulary)
    logp_y: torch.Tensor  # (B, T) log-prob of the sampled token
    entropy: torch.Tensor  # (B, T) entropy of p, detached (a metric)


@dataclass(frozen=True)
class LMHead:
    """The output projection as the model itself applies it: logits = softcap(logit_scale * (h W^T + b)).

    Most models use scale 1 and no cap, but Gemma 2/3 squash their final logits with cap * tanh(z / cap), Cohere
    multiplies them by `logit_scale`, Granite divides them by `logits_scaling`: without this, student and teacher
    distributions of those families would be wrong. `weight` and `bias` are read when the head is built, so under
    PEFT the copy of a `modules_to_save` head that belongs to the active adapter (student or teacher) is the one kept.
    """

    weight: torch.Tensor  # (V, H)
    bias: torch.Tensor | None  # (V,) or None
    logit_scale: float = 1.0
    softcap: float | None = None

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., H) hidden states -> (..., V) logits, at least fp32 (bf16 log-softmax over 50k+ tokens loses the
        small probabilities the divergence is made of)."""
        logits = F.linear(hidden, self.weight, self.bias)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) * self.logit_scale
        if self.softcap is not None:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits


def logit_transform(config) -> tuple[float, float | None]:
    """(logit_scale, softcap) of a model's final logits, read from its config (the text config of a multimodal one).

    The same rule TRL's fused LM head uses, so the GRPO part of a blend and the SDPO part see one distribution:
    `final_logit_softcapping` (Gemma 2/3); a multiplier `logit_scale` (Cohere), `output_multiplier` or
    `lm_head_multiplier` (Falcon-H1); `logits_scaling` divides (Granite, MiniCPM3) except in HyperCLOVA X,
    where it multiplies. tests/test_families.py checks this against the models' own logits.
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    softcap = getattr(text, "final_logit_softcapping", None)
    scale = getattr(text, "logit_scale", None)
    for name in ("output_multiplier", "lm_head_multiplier"):
        scale = getattr(text, name, None) if scale is None else scale
    if scale is None and getattr(text, "logits_scaling", None) is not None:
        scale = text.logits_scaling if text.model_type == "hyperclovax" else 1.0 / text.logits_scaling
    return (1.0 if scale is None else float(scale)), (float(softcap) if softcap else None)


def lm_head_of(causal_lm) -> LMHead:
    """The LMHead of a causal LM (a transformers model, not a PeftModel), read NOW.

    Refuses a LoRA-wrapped head: its `.weight` is the frozen base weight, so the adapter's delta would be
    silently left out of both passes.
    """
    module = causal_lm.get_output_embeddings()
    if _is_adapter_layer(module):
        raise ValueError("sdpo_lite does not support LoRA on the LM head (target_modules includes it): its adapter "
                         "would be left out of the distillation. Drop the head from LoRA's target_modules, or train "
                         "it fully with LoraConfig(modules_to_save=['lm_head']).")
    scale, softcap = logit_transform(causal_lm.config)
    return LMHead(weight=module.weight, bias=module.bias, logit_scale=scale, softcap=softcap)


def _is_adapter_layer(module) -> bool:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # no PEFT installed: no adapters either
        return False
    return isinstance(module, BaseTunerLayer)


def as_lm_head(head) -> LMHead:
    """Accept an LMHead, or a plain linear layer (scale 1, no cap), e.g. in tests and the visualisations."""
    return head if isinstance(head, LMHead) else LMHead(weight=head.weight, bias=head.bias)


def _head_logprobs(hidden, head: LMHead, temperature):
    """(N, H) hidden states -> (N, V) log-probs at the sampling temperature, in fp32 at least."""
    return torch.log_softmax(head(hidden) / temperature, dim=-1)


def _student_chunk(hidden, y, weight, bias, logit_scale, softcap, temperature, topk):
    head = LMHead(weight, bias, logit_scale, softcap)  # rebuilt from tensors: checkpoint() replays plain arguments
    logp = _head_logprobs(hidden, head, temperature)  # (n, V), freed after this chunk
    logp_y = logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (n,)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)  # (n,)
    if topk is None:
        return logp, logp_y, entropy
    values, ids = logp.topk(topk, dim=-1)  # (n, K)
    return values, logp_y, entropy, ids


def student_topk_logprobs(hidden, lm_head, completion_ids, *, topk, temperature, chunk_size=1024) -> StudentSupport:
    """The student's top-k log-probs, sampled-token log-probs and entropies from (B, T, H) hidden states.

    Each chunk of positions is projected through the LM head inside an activation checkpoint, so autograd keeps
    only the (chunk, K) outputs; the (chunk, V) logits are recomputed in the backward pass instead of stored.
    """
    head = as_lm_head(lm_head)
    B, T, H = hidden.shape
    flat_h, flat_y = hidden.reshape(B * T, H), completion_ids.reshape(B * T)
    outs = []
    for start in range(0, B * T, chunk_size):
        args = (flat_h[start:start + chunk_size], flat_y[start:start + chunk_size], head.weight, head.bias,
                head.logit_scale, head.softcap, temperature, topk)
        if torch.is_grad_enabled() and flat_h.requires_grad:
            outs.append(checkpoint(_student_chunk, *args, use_reentrant=False))
        else:
            outs.append(_student_chunk(*args))
    cols = [torch.cat(parts, dim=0) for parts in zip(*outs)]
    logp_S = cols[0].reshape(B, T, -1)
    ids = cols[3].reshape(B, T, -1) if topk is not None else None
    return StudentSupport(logp_S=logp_S, ids=ids, logp_y=cols[1].reshape(B, T), entropy=cols[2].reshape(B, T))


@torch.no_grad()
def teacher_logprobs_at(hidden, lm_head, completion_ids, ids, *, temperature, chunk_size=1024):
    """The teacher's full-vocabulary log-probs gathered at the student's ids, in chunks, without gradient.

    hidden: (B, T, H); ids: (B, T, K) or None for the full vocabulary.
    Returns (logq_S (B, T, K), logq_y (B, T)).
    """
    head = as_lm_head(lm_head)
    B, T, H = hidden.shape
    flat_h, flat_y = hidden.reshape(B * T, H), completion_ids.reshape(B * T)
    flat_ids = ids.reshape(B * T, -1) if ids is not None else None
    logq_S, logq_y = [], []
    for start in range(0, B * T, chunk_size):
        end = start + chunk_size
        logq = _head_logprobs(flat_h[start:end], head, temperature)  # (n, V)
        logq_y.append(logq.gather(-1, flat_y[start:end].unsqueeze(-1)).squeeze(-1))
        logq_S.append(logq if flat_ids is None else logq.gather(-1, flat_ids[start:end]))
    return torch.cat(logq_S).reshape(B, T, -1), torch.cat(logq_y).reshape(B, T)
