"""SDPOConfig: every knob of Self-Distillation Policy Optimization in one validated dataclass.

Generation, batching, learning rate and the sampling temperature stay in TRL's `GRPOConfig`; this class only
holds what SDPO adds on top. Defaults follow the official implementation (lasgroup/SDPO, `actor.yaml`);
the two places where we differ are marked "Differs from official" and say why.
"""
from __future__ import annotations

import functools
import numbers
import re
import warnings
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
        grpo_weight: lambda in [0, 1]; the loss is lambda * GRPO + (1 - lambda) * SDPO. The official code has
            no blend (pure SDPO, 0); the course's 0.9 comes from its own addition sweep (README), not the paper.
    Teacher
        teacher_mode: "ema" (a slowly moving average of the student), "frozen" (the initial student) or "live"
            (the current student, no copy).
        ema_tau: EMA rate r in theta_T <- (1 - r) theta_T + r theta_S (official 0.05; their ablation liked 0.01).
        ema_update_every: update the EMA teacher every this many optimiser steps.
        is_coef: an on/off switch, not a coefficient: apply the importance weight
            w = min(exp(log p - log p_old), is_clip) to the per-token loss when rollouts are reused (num_iterations > 1
            or more generation steps than accumulation steps). On-policy w = 1, so it only matters for reused
            rollouts. Accepts True/False and, for code written for sdpo-trainer's examples (`is_coef=0.0  # disable
            IS`), the numbers 0/0.0 (off) and 1/1.0 (on), stored as a bool. Any other number is an error rather than
            a silent on/off: a fractional weight has no meaning in this loss (sdpo-rl itself only has is_clip).
        is_clip: upper clip of that weight (official 2.0); None = no weight.
    Reprompting
        reprompt_teacher: build teacher prompts at all (False = no teacher signal; only useful with grpo_weight).
        success_threshold: a rollout whose raw reward (not advantage) is >= this is a success (official 0.5).
        dont_reprompt_on_self_success: a rollout never serves as its own demonstration (official on).
        include_feedback: put the reward function's feedback string into the teacher prompt.
        feedback_only_without_solution: use feedback only when no peer demonstration exists (official on).
        thinking_tag: strip <tag>...</tag> from demonstrations (official strips <think>); None keeps them. The tag
            name ("think"); the bracketed form "<think>" is accepted and stored as "think".
        teacher_prompt_template / solution_template / feedback_template: the texts above. {demonstration} and
            {feedback} receive the SECTION templates filled in (with their own labels), so a custom
            teacher_prompt_template that labels them itself ("Example solution: {demonstration}") should also pass
            solution_template="{demonstration}" and feedback_template="{feedback}" (raw texts), or move its labels into
            the section templates so that a missing section disappears with its label; SDPOConfig warns otherwise.
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
        self.thinking_tag = _tag_name(self.thinking_tag)
        if not isinstance(self.is_coef, bool) and isinstance(self.is_coef, numbers.Real) and self.is_coef in (0, 1):
            self.is_coef = bool(self.is_coef)  # sdpo-trainer's examples write is_coef=0.0 to switch the weight off
        problems = list(_problems(self))
        if problems:
            raise ValueError("Invalid SDPOConfig:\n  - " + "\n  - ".join(problems))
        labelled = _self_labelled_sections(self)
        if labelled:
            # stacklevel: __post_init__ <- the dataclass __init__ <- _reject_renamed_fields <- the user's line
            warnings.warn(_double_label_message(labelled), UserWarning, stacklevel=4)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# sdpo-rl (PyPI) spells some fields differently; passing its names gets the exact replacement, not a bare TypeError.
SDPO_RL_NAMES = {
    "teacher_update_rate": "ema_tau=<the same rate> (theta_T <- (1 - r) theta_T + r theta_S)",
    "success_reward_threshold": "success_threshold=<the same value> (ours defaults to 0.5, sdpo-rl's to 1.0)",
    "remove_thinking_from_demonstration": 'thinking_tag="think" (True) or thinking_tag=None (False)',
    "include_environment_feedback": "include_feedback=<the same bool>",
    "environment_feedback_only_without_solution": "feedback_only_without_solution=<the same bool>",
    "reprompt_template": "teacher_prompt_template=... with the placeholders {prompt}, {demonstration}, {feedback}",
    "full_logit_distillation": "nothing for True (top-k distillation is the default); for False write "
                               "token_level=True, alpha=1.0",
    "apply_chat_template_kwargs": "GRPOConfig(chat_template_kwargs={...}) (TRL's own field; the teacher prompt uses it "
                                  "too)",
}

SDPO_RL_PLACEHOLDERS = {"{solution}": "{demonstration}", "{successful_previous_attempt}": "{demonstration}",
                        "{feedback_raw}": "{feedback}"}


def _reject_renamed_fields(init):
    """Wrap the dataclass __init__ so sdpo-rl's field names fail with the name to write instead."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        renamed = [k for k in kwargs if k in SDPO_RL_NAMES]
        if renamed:
            raise TypeError("SDPOConfig has no " + ", ".join(repr(k) for k in renamed) + " (sdpo-rl's spelling); write "
                            + "; ".join(f"{k} -> {SDPO_RL_NAMES[k]}" for k in renamed) + ". See docs/porting.md.")
        init(self, *args, **kwargs)
    return __init__


SDPOConfig.__init__ = _reject_renamed_fields(SDPOConfig.__init__)

_SECTION_LABELS = {"demonstration": ("solution_template", r"'\nCorrect solution:'"),
                   "feedback": ("feedback_template",
                                r"'\nThe following is feedback from your unsuccessful earlier attempt:'")}


def _double_label_message(labelled: list[str]) -> str:
    """The warning for a custom teacher_prompt_template whose own labels meet the default section labels."""
    names = " and ".join("{%s}" % n for n in labelled)
    defaults = " and ".join(f"{_SECTION_LABELS[n][1]} ({_SECTION_LABELS[n][0]})" for n in labelled)
    raw = ", ".join(f'{_SECTION_LABELS[n][0]}="{{{n}}}"' for n in labelled)
    which = ("the section templates that fill them are still the defaults, which add their own labels"
             if len(labelled) > 1 else
             "the section template that fills it is still the default, which adds its own label")
    return (f"SDPOConfig: your teacher_prompt_template labels {names} itself, but {which}: the teacher would read "
            f"your label and then {defaults}. To insert the raw text, also pass {raw}. Or move your labels into the "
            r'section templates, e.g. teacher_prompt_template="Task: {prompt}\n{feedback}{demonstration}Your improved '
            r'solution:", feedback_template="Previous attempt feedback: {feedback}\n", solution_template="Example '
            r'solution: {demonstration}\n": then a rollout without a demonstration (or feedback) shows no empty label.')


def _tag_name(tag):
    """'<think>' -> 'think' (the form sdpo-trainer's examples use); anything else is left for _problems to judge."""
    if isinstance(tag, str):
        m = re.fullmatch(r"\s*<\s*(\w+)\s*>\s*", tag, flags=re.ASCII)
        if m:
            return m.group(1)
    return tag


def _self_labelled_sections(c: SDPOConfig) -> list[str]:
    """Placeholders of a custom teacher_prompt_template that carry the template's own label while their section
    template is still the default (which adds a second label). A label: text right before the placeholder on its
    line (after the line start or the previous placeholder), or a previous line ending in ':'."""
    if c.teacher_prompt_template == REPROMPT_TEMPLATE:
        return []
    found = []
    for name, section, default in (("feedback", c.feedback_template, FEEDBACK_TEMPLATE),
                                   ("demonstration", c.solution_template, SOLUTION_TEMPLATE)):
        at = c.teacher_prompt_template.find("{" + name + "}")
        if section != default or at < 0:
            continue
        before = c.teacher_prompt_template[:at]
        if re.split(r"\n|\{\w+\}", before)[-1].strip() or before.rstrip().endswith(":"):
            found.append(name)
    return found


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
    if c.teacher_mode == "lora_ema":
        yield ("teacher_mode='lora_ema' (sdpo-rl) is teacher_mode='ema' here: on a PEFT/LoRA model the EMA teacher is "
               "already a second adapter, not a copy of the base weights")
    elif c.teacher_mode not in TEACHER_MODES:
        yield f"teacher_mode={c.teacher_mode!r} must be one of {TEACHER_MODES}"
    if not 0.0 <= c.ema_tau <= 1.0:
        yield f"ema_tau={c.ema_tau} must be in [0, 1] (official 0.05; 0 = frozen teacher)"
    if not isinstance(c.ema_update_every, int) or c.ema_update_every < 1:
        yield f"ema_update_every={c.ema_update_every!r} must be an int >= 1"
    if not isinstance(c.is_coef, bool):
        yield (f"is_coef={c.is_coef!r}: is_coef switches the importance weight min(p / p_old, is_clip) on reused "
               "rollouts on or off; it is not a coefficient. Write is_coef=False (or 0) to switch it off, is_coef=True "
               "(or 1) to apply it, and set the clip with is_clip")
    if c.is_clip is not None and c.is_clip <= 0:
        yield f"is_clip={c.is_clip} must be > 0 (official 2.0), or None to disable the importance weight"
    if c.thinking_tag is not None and (not isinstance(c.thinking_tag, str) or not c.thinking_tag
                                       or not c.thinking_tag.replace("_", "").isalnum()):
        closing = isinstance(c.thinking_tag, str) and re.fullmatch(r"\s*<\s*/\s*(\w+)\s*>\s*", c.thinking_tag)
        fix = f"thinking_tag={closing.group(1)!r} (or '<{closing.group(1)}>')" if closing else "thinking_tag='think'"
        yield (f"thinking_tag={c.thinking_tag!r} must name the tag whose <tag>...</tag> blocks are stripped: write "
               f"{fix}, or None to keep the thinking")
    for name, needed in (("teacher_prompt_template", "{prompt}"), ("solution_template", "{demonstration}"),
                         ("feedback_template", "{feedback}")):
        text = getattr(c, name)
        if not isinstance(text, str):
            yield f"{name} must be a string containing {needed}"
        elif needed not in text:
            yield f"{name} must contain {needed}: the teacher would never see it"
        for theirs, ours in SDPO_RL_PLACEHOLDERS.items():
            if isinstance(text, str) and theirs in text:
                yield f"{name} uses sdpo-rl's placeholder {theirs}; write {ours} (it would stay in the text literally)"
    if not isinstance(c.max_reprompt_length, int) or c.max_reprompt_length < 1:
        yield f"max_reprompt_length={c.max_reprompt_length!r} must be a positive int (official 10240)"
    if c.reprompt_truncation not in TRUNCATION_SIDES:
        yield f"reprompt_truncation={c.reprompt_truncation!r} must be 'left' (keep the end) or 'right'"
    if not isinstance(c.logits_chunk_size, int) or c.logits_chunk_size < 1:
        yield f"logits_chunk_size={c.logits_chunk_size!r} must be a positive int"
