"""SDPOTrainer: TRL's GRPOTrainer plus a self-teacher. The glue, and only the glue.

One training step, as data (each arrow is one call you can point at):
    dataset rows -> TRL generates G completions per prompt            GRPOTrainer._generate_and_score_completions
      -> reward functions return scores (+ feedback)                  rewards.capture_feedback wraps them
      -> scores go to TRL's advantages; raw rewards are kept          _calculate_rewards
      -> peers' answers and feedback become teacher prompts           _attach_teachers -> reprompt.plan_teachers
      -> student on [prompt | completion], teacher on [teacher prompt | completion]     _compute_loss
      -> distillation_loss on the student's top-k                     loss.divergence_on_support
      -> backward, optimiser step, teacher EMA update                 _TeacherUpdate callback
      -> trainer.last_rollouts and metrics for the learner

Overrides of GRPOTrainer (targets trl 1.15.0; private methods move between releases, tests pin the hooks):
    __init__                          validate inputs, wrap reward functions, build the teacher
    _calculate_rewards                keep the raw (gathered) rewards: success is judged on rewards, not advantages
    _generate_and_score_completions   attach teacher prompts to the batch TRL will shuffle and split
    _compute_loss                     the SDPO loss (and the lambda-blend with GRPO's loss)
    _get_per_token_logps_and_entropies  reuse the student pass we already ran, for the GRPO part of a blend
    _save, _save_checkpoint, _load_from_checkpoint   the saved model is the student alone; checkpoints carry the
                                      teacher (sdpo_teacher.safetensors), and a resume restores both
What the trainer refuses at construction (launchers, TRL options SDPO would ignore): supported.py, docs/supported.md.
State one hook leaves for a later one lives in `self._between` (`_BetweenHooks`), not in loose attributes.
The base is always TRL's own GRPOTrainer, even when Unsloth has replaced `trl.GRPOTrainer` first
(`compat.genuine_grpo_trainer`, docs/unsloth.md).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import types
from dataclasses import dataclass, field

import torch
from accelerate.utils import gather_object
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from sdpo_lite import compat
from sdpo_lite.config import SDPOConfig
from sdpo_lite.loss import divergence_on_support, lm_head_of, student_topk_logprobs, teacher_logprobs_at
from sdpo_lite.reprompt import (RolloutRecord, demonstration_text, left_pad, plan_teachers, rollout_records,
                                teacher_prompt_texts, tokenize_teacher_prompts)
from sdpo_lite.rewards import capture_feedback
from sdpo_lite.supported import (grpo_args_of, load_balancing_loss, recording_router_logits, refuse_unsupported,
                                 refuse_unsupported_state)
from sdpo_lite.teacher import Teacher, backbone_hidden_states, causal_lm_of

logger = logging.getLogger(__name__)
compat.install_cpu_lm_head()  # TRL 1.15's fused LM head is a Triton kernel: CPU tensors get a PyTorch version
GRPOTrainer = compat.genuine_grpo_trainer()  # TRL's own class, even after Unsloth replaced trl.GRPOTrainer

TEACHER_FILE = "sdpo_teacher.safetensors"  # the teacher's state inside each checkpoint folder


@dataclass
class _BetweenHooks:
    """What one of TRL's hooks leaves for a later one (TRL hands only its own tensors from hook to hook).

    feedback      per reward function, one str|None per local rollout: written by the wrapped reward functions
                  (`capture_feedback`), read by `_attach_teachers`
    raw_rewards   (N_global,) weighted raw rewards of the generation batch: written by `_calculate_rewards`, read by
                  `_attach_teachers` (success is judged on rewards, not advantages)
    student       (logp_y, entropy) of the student pass: written by `_compute_loss` in a lambda-blend, read once by
                  `_get_per_token_logps_and_entropies` so GRPO's part reuses it
    """

    feedback: list = field(default_factory=list)
    raw_rewards: torch.Tensor | None = None
    student: tuple | None = None


class SDPOTrainer(GRPOTrainer):
    """GRPOTrainer whose loss distils the model's own feedback-conditioned predictions into the plain policy.

    Reward functions keep TRL's signature and may return, per completion, a float, None (unscorable) or a dict
    {"score": float, "feedback": str}. Feedback strings stay attached to their rollout and reach its teacher.
    """

    def __init__(self, *args, sdpo_config: SDPOConfig | None = None, **kwargs):
        self.sdpo = sdpo_config if sdpo_config is not None else SDPOConfig()
        if not isinstance(self.sdpo, SDPOConfig):
            raise TypeError(f"sdpo_config must be an SDPOConfig, got {type(self.sdpo).__name__}")
        _check_dataset(kwargs.get("train_dataset"), kwargs.get("processing_class"))
        refuse_unsupported(self.sdpo, grpo_args_of(args, kwargs))  # fast: before TRL loads models (docs/supported.md)
        super().__init__(*args, **kwargs)
        refuse_unsupported_state(self)  # what only the built accelerator and model reveal
        self._between = _BetweenHooks(feedback=[None] * len(self.reward_funcs))
        self.reward_funcs = [capture_feedback(f, functools.partial(self._keep_feedback, i))
                             for i, f in enumerate(self.reward_funcs)]
        self._warned_no_teacher = False
        self._told_feedback_ignored = False
        self.last_rollouts: list[RolloutRecord] = []
        self.teacher = None
        if self.sdpo.enabled:
            student = self.accelerator.unwrap_model(self.model)
            causal_lm = causal_lm_of(student)
            lm_head_of(causal_lm)  # refuses, now rather than at the first step, a head the loss cannot read
            self.teacher = Teacher(student, self.sdpo)
            _install_sdpo_head(causal_lm)
            self.add_callback(_TeacherUpdate(self))

    # ------------------------------------------------------------------------------------------------------------
    # Rewards and teacher prompts
    # ------------------------------------------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Why: GRPO only keeps advantages; SDPO needs the raw rewards to decide which peers succeeded.
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # (N, F)
        weights = self.reward_weights.to(rewards_per_func.device)
        raw = (rewards_per_func * weights).nansum(dim=1)
        raw[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        self._between.raw_rewards = raw  # gathered across processes, in TRL's group order
        return rewards_per_func

    def _keep_feedback(self, index: int, feedback: list) -> None:
        self._between.feedback[index] = feedback  # one str|None per local rollout, from reward function `index`

    def _generate_and_score_completions(self, inputs):
        # Why: the teacher prompts must travel with each rollout through TRL's shuffle and split.
        self._between.feedback = [None] * len(self.reward_funcs)
        output = super()._generate_and_score_completions(inputs)
        return self._attach_teachers(inputs, output)

    def _attach_teachers(self, inputs, output):
        device = output["completion_ids"].device
        mode = "train" if self.model.training else "eval"
        G = self.num_generations if mode == "train" else self.num_generations_eval
        completion_ids = [ids[m.bool()].tolist() for ids, m in zip(output["completion_ids"], output["completion_mask"])]
        tok = self.processing_class if not hasattr(self.processing_class, "tokenizer") else self.processing_class.tokenizer
        local = {
            "prompt": [x["prompt"] for x in inputs],
            "demo": [demonstration_text(ids, tok, self.sdpo.thinking_tag) for ids in completion_ids],
            "feedback": self._joined_feedback(len(inputs)),
        }
        everyone = {k: gather_object(v) for k, v in local.items()}  # groups may span processes: gather first
        scores = self._between.raw_rewards.tolist()
        groups = [i // G for i in range(len(scores))]
        plans = plan_teachers(everyone["prompt"], everyone["demo"], everyone["feedback"], self.sdpo,
                              groups=groups, scores=scores)
        start = self.accelerator.process_index * len(inputs)
        mine = range(start, start + len(inputs))  # this process's rollouts, in the gathered batch
        my_plans = [plans[i] for i in mine]
        texts = teacher_prompt_texts([everyone["prompt"][i] for i in mine], my_plans, tok, self.chat_template_kwargs)
        ids_list, truncated = tokenize_teacher_prompts([t or "" for t in texts], tok,
                                                       max_length=self.sdpo.max_reprompt_length,
                                                       truncation=self.sdpo.reprompt_truncation)
        ids, mask = left_pad([x or [tok.pad_token_id] for x in ids_list], tok.pad_token_id)
        has_teacher = torch.tensor([float(t is not None) for t in texts], device=device)  # (B,)
        output["teacher_prompt_ids"] = torch.tensor(ids, dtype=torch.long, device=device)  # (B, Pt) left-padded
        output["teacher_prompt_mask"] = torch.tensor(mask, dtype=torch.long, device=device) * has_teacher.long()[:, None]
        output["sdpo_mask"] = has_teacher
        tokens = (output["completion_mask"].sum(-1).float() * has_teacher).sum()
        output["sdpo_num_tokens"] = self.accelerator.gather(tokens).sum()  # 0-dim: TRL keeps it whole when splitting
        self.last_rollouts = rollout_records(
            my_plans, texts, prompts=[everyone["prompt"][i] for i in mine], scores=[scores[i] for i in mine],
            completions=[tok.decode(ids, skip_special_tokens=True) for ids in completion_ids],
            feedback=[everyone["feedback"][i] for i in mine], groups=[groups[i] for i in mine],
            completion_ids=completion_ids, teacher_truncated=truncated)
        self._log_rollout_metrics(mode, plans, scores)
        return output

    def _joined_feedback(self, n: int) -> list[str | None]:
        """One feedback string per local rollout: the reward functions' strings joined by newlines."""
        joined = []
        for k in range(n):
            parts = [fb[k] for fb in self._between.feedback if fb is not None and fb[k]]
            joined.append("\n".join(parts) if parts else None)
        return joined

    def _log_rollout_metrics(self, mode, plans, scores):
        n = max(len(plans), 1)
        with_teacher = sum(p["teacher_message"] is not None for p in plans)
        m = self._metrics[mode]
        ok = [s >= self.sdpo.success_threshold for s in scores if not math.isnan(s)]
        m["sdpo/success_rate"].append(sum(ok) / max(len(ok), 1))
        if not self.sdpo.enabled:
            return  # plain GRPO: teacher prompts are built for inspection only, not used
        m["sdpo/frac_with_teacher"].append(with_teacher / n)
        m["sdpo/frac_with_demo"].append(sum(p["demo_used"] for p in plans) / n)
        m["sdpo/frac_with_feedback"].append(sum(p["feedback_used"] for p in plans) / n)
        ignored = sum(p["feedback_ignored"] for p in plans)
        if ignored and not self._told_feedback_ignored:
            self._told_feedback_ignored = True
            logger.info("SDPO: %d successful rollout(s) came with feedback; it is not shown to a teacher (the template "
                        "says 'unsuccessful earlier attempt', and the official environments give successes no "
                        "feedback). Reported once.", ignored)
        if with_teacher == 0 and not self._warned_no_teacher:
            self._warned_no_teacher = True
            logger.warning("SDPO: no rollout in this batch has a teacher (no successful peer and no feedback), so the "
                           "distillation loss is zero here. Reported once; see the sdpo/frac_with_teacher metric.")

    # ------------------------------------------------------------------------------------------------------------
    # The loss
    # ------------------------------------------------------------------------------------------------------------
    def _compute_loss(self, model, inputs):
        # Why: SDPO replaces (or, with grpo_weight, blends with) GRPO's policy-gradient loss.
        if not self.sdpo.enabled:
            return super()._compute_loss(model, inputs)
        lam = self.sdpo.grpo_weight
        aux_on = self.aux_loss_enabled  # TRL's rule: a mixture-of-experts model with router_aux_loss_coef != 0
        mask = inputs["completion_mask"] if "tool_mask" not in inputs else inputs["completion_mask"] * inputs["tool_mask"]
        sd_mask = mask.float() * inputs["sdpo_mask"][:, None]  # (B, T)
        if lam == 0.0 and not aux_on and sd_mask.sum() == 0 and self.accelerator.num_processes == 1:
            return _zero_connected_to(model)  # nothing to distil: skip both forward passes
        with recording_router_logits(self.accelerator.unwrap_model(model), aux_on) as router_logits:
            student = self._student_pass(model, inputs)
        loss = self._distillation(student, inputs, sd_mask)
        if lam != 0.0:
            self._between.student = (student.logp_y, student.entropy)
            self.aux_loss_enabled = False  # GRPO's part must not add it (it would be lambda-weighted): added below
            try:
                grpo = super()._compute_loss(model, inputs)  # uses the cached student pass, see below
            finally:
                self.aux_loss_enabled = aux_on
            loss = lam * grpo + (1.0 - lam) * loss
        if aux_on:
            # The MoE load-balancing loss, once, with TRL's scale: coef * aux / accumulation steps, lambda or not.
            mode = "train" if self.model.training else "eval"
            attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            aux = load_balancing_loss(router_logits, self.accelerator.unwrap_model(model), attention_mask)
            loss = loss + self.router_aux_loss_coef * aux / (self.current_gradient_accumulation_steps
                                                             if mode == "train" else 1.0)
            self._metrics[mode]["aux_loss"].append(self.accelerator.gather_for_metrics(aux.detach()).mean().item())
        return loss

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        # Why: in a lambda-blend GRPO's loss needs the same student log-probs we just computed; reuse them.
        if self._between.student is not None:
            logp_y, entropy = self._between.student
            self._between.student = None
            return logp_y, entropy, None
        return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                          *args, **kwargs)

    def _student_pass(self, model, inputs):
        """Student on [prompt | completion]: top-k log-probs (B, T, K), sampled-token log-probs and entropies."""
        completion_ids = inputs["completion_ids"]  # (B, T)
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)  # (B, P + T)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        T = completion_ids.size(1)
        head = functools.partial(_completion_head, completion_ids=completion_ids, T=T, topk=self.sdpo.distillation_topk,
                                 temperature=self.temperature, chunk_size=self.sdpo.logits_chunk_size)
        with self.accelerator.autocast():
            # Through the (possibly DDP/PEFT-wrapped) model, so gradient synchronisation works as usual.
            return model(input_ids=input_ids, attention_mask=attention_mask, sdpo_head=head)

    def _teacher_pass(self, inputs, student):
        """Teacher on [teacher prompt | the identical completion], only for rows that have a teacher."""
        rows = inputs["sdpo_mask"].nonzero(as_tuple=True)[0]
        logq_S, logq_y = student.logp_S.detach().clone(), student.logp_y.detach().clone()  # (B, T, K), (B, T)
        if rows.numel() == 0:
            return logq_S, logq_y
        completion_ids = inputs["completion_ids"][rows]  # (R, T)
        ids = torch.cat([inputs["teacher_prompt_ids"][rows], completion_ids], dim=1)  # (R, Pt + T)
        att = torch.cat([inputs["teacher_prompt_mask"][rows], inputs["completion_mask"][rows]], dim=1)
        T = completion_ids.size(1)
        with self.accelerator.autocast():
            hidden, head = self.teacher.hidden_states(ids, att)  # (R, Pt + T, H), the teacher's LMHead
        support = student.ids[rows] if student.ids is not None else None
        q_S, q_y = teacher_logprobs_at(hidden[:, -T - 1:-1], head, completion_ids, support,
                                       temperature=self.temperature, chunk_size=self.sdpo.logits_chunk_size)
        logq_S[rows], logq_y[rows] = q_S.to(logq_S.dtype), q_y.to(logq_y.dtype)
        return logq_S, logq_y

    def _distillation(self, student, inputs, sd_mask):
        c = self.sdpo
        logq_S, logq_y = self._teacher_pass(inputs, student)
        use_is = c.is_coef and c.is_clip is not None
        old = inputs.get("old_per_token_logps")
        old = student.logp_y.detach() if old is None else old
        # vLLM's sampling correction, as GRPO's loss applies it and the official code (rollout_is_weights) does: a
        # per-token (B, T) or per-sequence (B, 1) ratio pi_old / pi_vllm that TRL stores only when it is on.
        ratio = inputs.get("importance_sampling_ratio")
        weighted = sd_mask if ratio is None else sd_mask * ratio
        out = divergence_on_support(student.logp_S, logq_S, student.logp_y, logq_y, weighted, alpha=c.alpha,
                                    add_tail=c.distillation_add_tail, use_topk=c.distillation_topk is not None,
                                    old_logprobs=old if use_is else None, is_clip=c.is_clip if use_is else None,
                                    token_level=c.token_level, aggregation="sum")
        mode = "train" if self.model.training else "eval"
        loss = out.loss / self._token_normaliser(inputs, sd_mask, mode)
        self._metrics[mode]["sdpo/distill_loss"].append(global_masked_mean(self.accelerator, out.per_token, sd_mask))
        if self.sdpo.grpo_weight == 0.0:  # in a blend, GRPO's loss logs the entropy itself
            self._metrics[mode]["entropy"].append(global_masked_mean(self.accelerator, student.entropy, sd_mask))
        return loss

    def _token_normaliser(self, inputs, sd_mask, mode):
        """Divide the summed loss so one optimiser step averages over ALL its distilled tokens.

        The generation batch holds sdpo_num_tokens distilled tokens over every process; it feeds
        steps_per_generation micro-batches per process, gradient_accumulation_steps of which make one optimiser
        step, and DDP averages gradients over processes. Hence the token-mean over the step is
        sum / (N * accumulation / (steps_per_generation * processes)), whatever the split: one process or two,
        accumulation or not, give the same gradient (a test checks it).
        """
        if mode != "train":
            return sd_mask.sum().clamp(min=1)
        n = inputs["sdpo_num_tokens"].clamp(min=1)
        return n * self.current_gradient_accumulation_steps / (self.args.steps_per_generation *
                                                              self.accelerator.num_processes)


    # ------------------------------------------------------------------------------------------------------------
    # Checkpoints: the saved model is the student alone; the teacher travels in its own file for a resume
    # ------------------------------------------------------------------------------------------------------------
    def _save(self, output_dir=None, state_dict=None):
        # Why: with a LoRA student the teacher is a second adapter on the same model; saving it beside the student
        # made transformers resume only the teacher's subfolder and leave the student adapter at its initial values.
        with self.teacher.student_only() if self.teacher is not None else contextlib.nullcontext():
            super()._save(output_dir, state_dict)

    def _save_checkpoint(self, model, trial):
        # Why: the EMA teacher is trainer state (like the optimiser); without it a resumed run restarts the teacher.
        super()._save_checkpoint(model, trial)
        if self.teacher is not None and self.teacher.mode != "live" and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            save_file(self.teacher.state_dict(), os.path.join(folder, TEACHER_FILE),
                      metadata={"teacher_mode": self.teacher.mode, "updates": str(self.teacher.updates)})

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # Why: restore the student (its own adapter, under LoRA) and then the teacher it had when it was saved.
        if model is not None or self.teacher is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        if self.teacher.uses_adapter:
            _load_student_adapter(self.teacher.student, resume_from_checkpoint)
        else:
            super()._load_from_checkpoint(resume_from_checkpoint)
        if self.teacher.mode == "live":
            return
        path = os.path.join(resume_from_checkpoint, TEACHER_FILE)
        if not os.path.isfile(path):
            logger.warning("SDPO: %s holds no %s (saved by an older sdpo_lite or another trainer); the %s teacher "
                           "restarts as a copy of the resumed student.", resume_from_checkpoint, TEACHER_FILE,
                           self.teacher.mode)
            self.teacher.reset_to_student()
            return
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            state = {name: f.get_tensor(name) for name in f.keys()}
        if meta.get("teacher_mode") != self.teacher.mode:
            raise ValueError(f"{path} holds a {meta.get('teacher_mode')!r} teacher but this run has teacher_mode="
                             f"{self.teacher.mode!r}; resume with the SDPOConfig the checkpoint was trained with")
        self.teacher.load_state_dict(state)
        self.teacher.updates = int(meta.get("updates", 0))


def _load_student_adapter(peft_model, checkpoint: str):
    """Load the checkpoint's adapter (saved at its root by `_save`) into the student's own adapter."""
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    weights = load_peft_weights(checkpoint, device="cpu")
    result = set_peft_model_state_dict(peft_model, weights, adapter_name=peft_model.active_adapter)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if peft_model.active_adapter in k or "lora" in k]
    if unexpected:
        raise ValueError(f"the adapter in {checkpoint} does not fit this model (unexpected {unexpected[:3]}); resume "
                         "with the same base model and LoraConfig")


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------
def _completion_head(hidden, lm_head, *, completion_ids, T, topk, temperature, chunk_size):
    """Keep the hidden states that predict the completion tokens (positions -T-1 .. -2), then the top-k pass."""
    return student_topk_logprobs(hidden[:, -T - 1:-1], lm_head, completion_ids, topk=topk, temperature=temperature,
                                 chunk_size=chunk_size)


def _install_sdpo_head(causal_lm):
    """Let `model(..., sdpo_head=fn)` return fn(hidden_states, lm_head) instead of logits.

    Why: the student pass must go through the wrapped model (DDP hooks, PEFT) but must not build (B, L, V)
    logits. Like TRL's fused LM head, this wraps `forward` on the instance; without `sdpo_head` the previous
    forward (TRL's) runs unchanged, so generation and GRPO are untouched.
    """
    previous = causal_lm.forward

    @functools.wraps(type(causal_lm).forward)
    def forward(self, *args, sdpo_head=None, **kwargs):
        if sdpo_head is None:
            return previous(*args, **kwargs)
        hidden = backbone_hidden_states(self, kwargs["input_ids"], kwargs["attention_mask"])
        return sdpo_head(hidden, lm_head_of(self))  # read per call: PEFT's active adapter decides the head

    causal_lm.forward = types.MethodType(forward, causal_lm)


def global_masked_mean(accelerator, x, mask) -> float:
    """Mean of x over the tokens where mask = 1, across all processes (for metrics)."""
    totals = accelerator.reduce(torch.stack([(x.detach() * mask).sum(), mask.sum()]), reduction="sum")
    return (totals[0] / totals[1].clamp(min=1)).item()


def _zero_connected_to(model):
    """A zero loss that still reaches the trainable parameters (backward and the optimiser step stay valid)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return sum(p.reshape(-1)[0] * 0.0 for p in params) if params else torch.zeros((), requires_grad=True)


def _check_dataset(dataset, processing_class):
    """Fail early, with the fix, on data the trainer cannot use."""
    if dataset is None or not hasattr(dataset, "column_names"):
        return
    if "prompt" not in dataset.column_names:
        raise ValueError(f"the training dataset needs a 'prompt' column (it has {dataset.column_names}); rename your "
                         "question column to 'prompt' (a string, or a list of chat messages)")
    first = dataset[0]["prompt"] if len(dataset) else None
    if isinstance(first, list) and processing_class is not None:
        tok = getattr(processing_class, "tokenizer", processing_class)
        if getattr(tok, "chat_template", None) is None:
            raise ValueError("the dataset has conversational prompts but the tokenizer has no chat template; set "
                             "tokenizer.chat_template or use plain-string prompts")


class _TeacherUpdate(TrainerCallback):
    """After every `ema_update_every` optimiser steps, move the EMA teacher towards the student."""

    def __init__(self, trainer: SDPOTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.trainer.sdpo.ema_update_every == 0:
            self.trainer.teacher.update()
