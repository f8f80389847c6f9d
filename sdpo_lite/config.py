"""SDPOConfig: every knob of Self-Distillation Policy Optimization in one validated dataclass.

Generation, batching, learning rate and the sampling temperature stay in TRL's `GRPOConfig`; this class only
holds what SDPO adds on top. Defaults follow the official implementation (lasgroup/SDPO, `actor.yaml`);
the two places where we differ are marked "Differs from official" and say why.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

# The official teacher-prompt texts (shared by the official code, TRL and sdpo-rl). `{prompt}` receives the raw
# text of the last user message; `{demonstration}` and `{feedback}` receive SOLUTION_TEMPLATE / FEEDBACK_TEMPLATE
# filled in, or "" when the rollout gets no demonstration / no feedback.
REPROMPT_TEMPLATE = "{prompt}{demonstration}{feedback}\n\nCorrectly solve the original question.\n"
SOLUTION_TEMPLATE = "\nCorrect solution:\n\n{demonstration}\n\n"
FEEDBACK_TEMPLATE = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback}\n\n"

TEACHER_MODES = ("ema", "frozen", "live")
TRUNCATION_SIDES = ("left", "right")


@dataclass
class SDPOConfig:
    """What SDPO adds to GRPO. Pass it as `SDPOTrainer(..., sdpo_config=SDPOConfig(...))`.

    Loss
        enabled: False turns the trainer into plain GRPO (for side-by-side comparisons).
        alpha: 0 = forward KL(teacher || student), 1 = reverse KL(student || teacher), in between = generalised
            Jensen-Shannon divergence with mixture (1 - alpha) * student + alpha * teacher.
        distillation_topk: size of the support (the student's top-k tokens at each position); None = full vocab.
        distillation_add_tail: add one bucket holding the probability mass outside the top-k (otherwise the
            top-k probabilities are renormalised, which is a different objective).
        token_level: distil only the sampled token, (log p(y) - log q(y)).detach() * log p(y); needs alpha = 1.
        grpo_weight: lambda in [0, 1]; the loss is lambda * GRPO + (1 - lambda) * SDPO. The paper recommends a
            blend for weak models (lambda = 0.9 for Qwen3-0.6B-sized models); the official code ships 0.
    Teacher
        teacher_mode: "ema" (a slowly moving average of the student), "frozen" (the initial student) or "live"
            (the current student, no copy).
        ema_tau: EMA rate r in theta_T <- (1 - r) theta_T + r theta_S (official 0.05; their ablation liked 0.01).
        ema_update_every: update the EMA teacher every this many optimiser steps.
        is_coef: apply the importance weight w = min(exp(log p - log p_old), is_clip) to the per-token loss when
            rollouts are reused (num_iterations > 1 or more generation steps than accumulation steps). On-policy
            w = 1, so it only matters for reused rollouts.
        is_clip: upper clip of that weight (official 2.0); None = no weight.
    Reprompting
        reprompt_teacher: build teacher prompts at all (False = no teacher signal; only useful with grpo_weight).
        success_threshold: a rollout whose raw reward (not advantage) is >= this is a success (official 0.5).
        dont_reprompt_on_self_success: a rollout never serves as its own demonstration (official on).
        include_feedback: put the reward function's feedback string into the teacher prompt.
        feedback_only_without_solution: use feedback only when no peer demonstration exists (official on).
        thinking_tag: strip <tag>...</tag> from demonstrations (official strips <think>); None keeps them.
        teacher_prompt_template / solution_template / feedback_template: the texts above.
        max_reprompt_length: teacher prompts longer than this many tokens are truncated.
        reprompt_truncation: "left" keeps the last tokens (the end of the prompt, right before the completion).
            Differs from official (which keeps the first tokens): cutting the end would remove the chat template's
            assistant header and the instruction the completion is conditioned on; TRL also keeps the end.
    Efficiency
        logits_chunk_size: positions per chunk when projecting hidden states through the LM head, so the
            (positions x vocab) logits of a whole batch never exist at once.
    """

    enabled: bool = True
    alpha: float = 0.5
    distillation_topk: int | None = 100
    distillation_add_tail: bool = True
    token_level: bool = False
    grpo_weight: float = 0.0
    teacher_mode: str = "ema"
    ema_tau: float = 0.05
    ema_update_every: int = 1
    is_coef: bool = True
    is_clip: float | None = 2.0
    reprompt_teacher: bool = True
    success_threshold: float = 0.5
    dont_reprompt_on_self_success: bool = True
    include_feedback: bool = True
    feedback_only_without_solution: bool = True
    thinking_tag: str | None = "think"
    teacher_prompt_template: str = REPROMPT_TEMPLATE
    solution_template: str = SOLUTION_TEMPLATE
    feedback_template: str = FEEDBACK_TEMPLATE
    max_reprompt_length: int = 10240
    reprompt_truncation: str = "left"
    logits_chunk_size: int = 256

    def __post_init__(self):
        problems = list(_problems(self))
        if problems:
            raise ValueError("Invalid SDPOConfig:\n  - " + "\n  - ".join(problems))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _problems(c: SDPOConfig):
    """Yield one readable message per invalid field; each names the fix."""
    if not 0.0 <= c.alpha <= 1.0:
        yield f"alpha={c.alpha} must be in [0, 1] (0 = forward KL, 1 = reverse KL, between = JSD)"
    if c.distillation_topk is not None and (not isinstance(c.distillation_topk, int) or c.distillation_topk < 1):
        yield f"distillation_topk={c.distillation_topk!r} must be a positive int, or None for the full vocabulary"
    if c.token_level and c.alpha != 1.0:
        yield "token_level=True distils the sampled token with reverse KL: set alpha=1.0"
    if not 0.0 <= c.grpo_weight <= 1.0:
        yield f"grpo_weight={c.grpo_weight} must be in [0, 1] (0 = pure SDPO, 1 = pure GRPO)"
    if c.teacher_mode not in TEACHER_MODES:
        yield f"teacher_mode={c.teacher_mode!r} must be one of {TEACHER_MODES}"
    if not 0.0 <= c.ema_tau <= 1.0:
        yield f"ema_tau={c.ema_tau} must be in [0, 1] (official 0.05; 0 = frozen teacher)"
    if not isinstance(c.ema_update_every, int) or c.ema_update_every < 1:
        yield f"ema_update_every={c.ema_update_every!r} must be an int >= 1"
    if c.is_clip is not None and c.is_clip <= 0:
        yield f"is_clip={c.is_clip} must be > 0 (official 2.0), or None to disable the importance weight"
    if c.thinking_tag is not None and (not c.thinking_tag or not c.thinking_tag.replace("_", "").isalnum()):
        yield f"thinking_tag={c.thinking_tag!r} must be a tag name such as 'think' (no brackets), or None"
    for name, needed in (("teacher_prompt_template", "{prompt}"), ("solution_template", "{demonstration}"),
                         ("feedback_template", "{feedback}")):
        if needed not in getattr(c, name):
            yield f"{name} must contain {needed}: the teacher would never see it"
    if not isinstance(c.max_reprompt_length, int) or c.max_reprompt_length < 1:
        yield f"max_reprompt_length={c.max_reprompt_length!r} must be a positive int (official 10240)"
    if c.reprompt_truncation not in TRUNCATION_SIDES:
        yield f"reprompt_truncation={c.reprompt_truncation!r} must be 'left' (keep the end) or 'right'"
    if not isinstance(c.logits_chunk_size, int) or c.logits_chunk_size < 1:
        yield f"logits_chunk_size={c.logits_chunk_size!r} must be a positive int"
