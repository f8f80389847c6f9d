"""The self-teacher: the same network as the student, read on the teacher prompt, held still or slowly moving.

Three modes (SDPOConfig.teacher_mode):
  * "ema":    theta_T <- (1 - r) theta_T + r theta_S after every `ema_update_every` optimiser steps, r = ema_tau.
  * "frozen": the initial student, never updated (an EMA with r = 0).
  * "live":   the current student weights, read under no_grad (no copy, no memory cost).

Two ways to hold the weights:
  * A full model: a deep copy of the student, in the student's dtype for the forward pass. When the student is
    half precision the EMA is accumulated in an fp32 shadow: at r = 0.01, a bf16 update (1 - r) * a + r * b
    rounds back to `a` for most weights and the teacher would never move. Non-float (quantised) tensors are
    skipped.
  * A PEFT/LoRA student: the teacher is a second adapter, "sdpo_teacher", on the SAME base model, so no second
    copy of the (possibly 4-bit) base weights exists. It starts as a copy of the student's adapter and averages
    the LoRA factors A and B separately. Note that EMA(B) @ EMA(A) is not EMA(B @ A): the teacher's weight
    delta is a product of averages, which equals the average of products only while the factors move little
    per step (the regime a small r keeps us in). Averaging B @ A itself would need a full-rank delta per layer,
    which is what LoRA exists to avoid.

The teacher never calls the student's `forward`: TRL wraps `model.forward` with its fused LM head, and a deep
copy would keep a closure that still runs the STUDENT's forward (the bug seen in sdpo-rl 0.0.3). We call the
backbone and the LM head of the teacher module directly, via `hidden_states(...)`.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn

from sdpo_lite.config import SDPOConfig
from sdpo_lite.loss import LMHead, lm_head_of

TEACHER_ADAPTER = "sdpo_teacher"


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def causal_lm_of(model):
    """The transformers causal LM inside a PEFT model (or the model itself): it owns the backbone and the LM head."""
    return model.get_base_model() if is_peft(model) else model


def backbone_hidden_states(causal_lm, input_ids, attention_mask):
    """(B, L) ids -> (B, L, H) final hidden states of a causal LM, without running its LM head.

    Position ids come from the attention mask, so a left-padded sequence gets the same positions as the unpadded
    one (RoPE is shift-invariant anyway; models with absolute positions are not).
    """
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = causal_lm.base_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               use_cache=False)
    return out.last_hidden_state


class Teacher:
    """Holds the teacher's weights and runs its forward pass. `update()` after optimiser steps."""

    def __init__(self, student: nn.Module, config: SDPOConfig):
        self.mode = config.teacher_mode
        self.tau = 0.0 if self.mode == "frozen" else config.ema_tau
        self.student = student  # the unwrapped student (a PreTrainedModel or a PeftModel)
        self.uses_adapter = is_peft(student) and self.mode != "live"
        self.module = None  # the full-model copy, when there is one
        self._pairs: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]] = []  # (name, teacher, student, shadow)
        self.updates = 0
        if self.mode == "live":
            return
        if self.uses_adapter:
            self._init_adapter()
        else:
            self._init_copy()

    # -- set-up ----------------------------------------------------------------------------------------------
    def _init_copy(self):
        teacher = copy.deepcopy(self.student)
        teacher.__dict__.pop("forward", None)  # drop TRL's forward wrapper, which closes over the student
        teacher.requires_grad_(False).eval()
        self.module = teacher
        s_params = dict(self.student.named_parameters())
        for name, t in teacher.named_parameters():
            self._register(name, t, s_params[name])

    def _init_adapter(self):
        peft_model = self.student
        active = peft_model.active_adapter
        config = copy.deepcopy(peft_model.peft_config[active])
        config.inference_mode = True
        with preserve_requires_grad(peft_model):
            peft_model.add_adapter(TEACHER_ADAPTER, config)
        s_params = dict(peft_model.named_parameters())
        prefix = f".{active}."
        for name, t in peft_model.named_parameters():
            if f".{TEACHER_ADAPTER}." in name:
                student_name = name.replace(f".{TEACHER_ADAPTER}.", prefix)
                t.requires_grad_(False)
                with torch.no_grad():
                    t.copy_(s_params[student_name])  # the teacher starts as the student
                self._register(name, t, s_params[student_name])
        if not self._pairs:
            raise RuntimeError("could not find the teacher adapter's weights; is this a LoRA model?")

    def _register(self, name: str, t: torch.Tensor, s: torch.Tensor):
        if not t.dtype.is_floating_point:
            return  # quantised / integer storage: not averaged
        shadow = t.detach().float().clone() if t.dtype in (torch.float16, torch.bfloat16) else None
        self._pairs.append((name, t, s, shadow))

    # -- the EMA step ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self):
        """theta_T <- (1 - tau) theta_T + tau theta_S (in fp32 when the weights are half precision)."""
        if self.mode != "ema" or self.tau == 0.0:
            return
        for _, t, s, shadow in self._pairs:
            if shadow is not None:
                shadow.lerp_(s.detach().float(), self.tau)
                t.copy_(shadow)
            else:
                t.lerp_(s.detach().to(t.dtype), self.tau)
        self.updates += 1

    # -- the forward pass ------------------------------------------------------------------------------------
    @torch.no_grad()
    def hidden_states(self, input_ids, attention_mask) -> tuple[torch.Tensor, LMHead]:
        """(B, L) -> (B, L, H) teacher hidden states, and the teacher's LM head to project them with.

        Always in eval mode (no dropout: the target must not be noisy), whatever mode the student is in. The head
        is read while the teacher adapter is active, so a `modules_to_save` head is the teacher's own copy.
        """
        if self.module is not None:
            return backbone_hidden_states(self.module, input_ids, attention_mask), lm_head_of(self.module)
        causal_lm = causal_lm_of(self.student)
        with self._teacher_adapter(), eval_mode(causal_lm):
            return backbone_hidden_states(causal_lm, input_ids, attention_mask), lm_head_of(causal_lm)

    @contextmanager
    def _teacher_adapter(self):
        if not self.uses_adapter:
            yield
            return
        previous = self.student.active_adapter
        with preserve_requires_grad(self.student):
            self.student.set_adapter(TEACHER_ADAPTER)
            try:
                yield
            finally:
                self.student.set_adapter(previous)

    # -- checkpoints -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every averaged tensor by name (the fp32 shadow where there is one): what a resumed run needs to continue
        with the same teacher. Empty for the live teacher, which has no state of its own."""
        return {name: (t if shadow is None else shadow).detach().to("cpu", copy=True)
                for name, t, _, shadow in self._pairs}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]):
        """Restore `state_dict()`'s tensors; refuses a state that does not match this teacher tensor for tensor."""
        names = [name for name, *_ in self._pairs]
        if sorted(state) != sorted(names):
            missing, extra = sorted(set(names) - set(state)), sorted(set(state) - set(names))
            raise ValueError(f"the saved SDPO teacher does not match this model (missing {missing[:3]}, unexpected "
                             f"{extra[:3]}); resume with the same model, LoRA config and teacher_mode")
        for name, t, _, shadow in self._pairs:
            saved = state[name].to(t.device)
            if shadow is not None:
                shadow.copy_(saved)
                saved = shadow
            t.copy_(saved)

    @torch.no_grad()
    def reset_to_student(self):
        """Make the teacher a copy of the student's current weights (and its shadow with it)."""
        for _, t, s, shadow in self._pairs:
            if shadow is not None:
                shadow.copy_(s.detach().float())
            t.copy_(s.detach().to(t.dtype))

    @contextmanager
    def student_only(self):
        """While saving: a PEFT student saves only its own adapter, so the saved model is what a user loads for
        inference, and a resume finds the student adapter where transformers looks (the checkpoint's root)."""
        if not self.uses_adapter:
            yield
            return
        peft_model, student_adapter = self.student, self.student.active_adapter
        save = type(peft_model).save_pretrained
        peft_model.save_pretrained = lambda *a, **kw: save(peft_model, *a, **{**kw, "selected_adapters": [student_adapter]})
        try:
            yield
        finally:
            del peft_model.save_pretrained


@contextmanager
def eval_mode(module: nn.Module):
    """Dropout off inside; every submodule's own training flag put back after."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def preserve_requires_grad(model: nn.Module):
    """PEFT's add_adapter/set_adapter flip requires_grad on adapters; put every flag back as it was."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            if name in flags:
                p.requires_grad_(flags[name])
