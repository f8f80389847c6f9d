"""Plumbing between SDPOTrainer and the libraries it stands on (TRL, Unsloth, PyTorch on the CPU). Not SDPO.

Two things, each a workaround for a library's behaviour, kept here so that `trainer.py` reads as the algorithm:

1. `genuine_grpo_trainer()`: the base class is always TRL's own GRPOTrainer, even after Unsloth replaced
   `trl.GRPOTrainer` (docs/unsloth.md).
2. `install_cpu_lm_head()`: TRL 1.15's fused LM head runs on the CPU (CPU machines, laptops, CI, Colab's and
   Kaggle's CPU runtimes). TRL computes per-token log-probs with a kernel written in Triton, which fails on the
   CPU in two ways:
   * PyTorch's CPU wheels ship no Triton: `trl.trainer.utils._ChunkedLogProbFunction` is None and the first
     training step fails with "'NoneType' object has no attribute 'apply'";
   * a CUDA build of torch (PyPI's default on Linux, the torch of Colab's and Kaggle's images) brings Triton, but
     on a machine or runtime without a GPU Triton has no driver: "0 active drivers ([]). There should only be one."
   So we route by device: tensors on a GPU go to TRL's Triton kernel, unchanged; CPU tensors get the same
   computation in plain PyTorch: rows of hidden states are projected through the LM head a chunk at a time inside
   an activation checkpoint, so the (tokens x vocabulary) logits never exist for the whole batch, as in the kernel.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import torch
from torch.utils.checkpoint import checkpoint

ROWS_PER_CHUNK = 256
GENUINE_COPY = "trl.trainer._sdpo_genuine_grpo"  # where a private copy of TRL's module lives, when one is needed
SDPO_HOOKS = ("_generate_and_score_completions", "_calculate_rewards", "_compute_loss",
              "_get_per_token_logps_and_entropies")  # the GRPOTrainer methods SDPOTrainer overrides


# ----------------------------------------------------------------------------------------------------------------
# 1. TRL's own GRPOTrainer
# ----------------------------------------------------------------------------------------------------------------
def genuine_grpo_trainer():
    """TRL's own GRPOTrainer class, whether or not Unsloth has already replaced `trl.GRPOTrainer`.

    Why: `import unsloth` (and `PatchFastRL`) rebinds `trl.GRPOTrainer` and `trl.trainer.grpo_trainer.GRPOTrainer`
    to an UnslothGRPOTrainer generated from TRL's source. TRL's class is not in its MRO, and its `compute_loss` runs
    Unsloth's own GRPO loss without calling `_compute_loss`, so a subclass of it would silently train GRPO, not
    SDPO. Unsloth's gains (4-bit weights, LoRA kernels, its gradient checkpointing) live in the model and work under
    either trainer. So: TRL's class if it is still in place, else a private copy of its module, executed from TRL's
    own file inside the `trl.trainer` package (its relative imports resolve to the loaded, possibly patched, helpers).
    """
    import trl.trainer
    import trl.trainer.grpo_trainer as module

    if _is_trls(module.GRPOTrainer, "trl.trainer.grpo_trainer"):
        return module.GRPOTrainer
    if GENUINE_COPY not in sys.modules:
        path = os.path.join(os.path.dirname(trl.trainer.__file__), "grpo_trainer.py")
        spec = importlib.util.spec_from_file_location(GENUINE_COPY, path)
        copy = importlib.util.module_from_spec(spec)
        sys.modules[GENUINE_COPY] = copy  # registered first, as the import system does (dataclasses, pickling)
        try:
            spec.loader.exec_module(copy)
        except Exception as err:
            del sys.modules[GENUINE_COPY]
            raise ImportError(_NO_GENUINE.format(found=module.GRPOTrainer, why=f"{type(err).__name__}: {err}")) from err
    cls = getattr(sys.modules[GENUINE_COPY], "GRPOTrainer", None)
    if not _is_trls(cls, GENUINE_COPY):
        raise ImportError(_NO_GENUINE.format(found=module.GRPOTrainer, why=f"the copy holds {cls!r}"))
    return cls


def _is_trls(cls, module_name: str) -> bool:
    """Whether `cls` is the GRPOTrainer defined in `module_name`, with every hook SDPOTrainer overrides."""
    return (isinstance(cls, type) and cls.__module__ == module_name and cls.__qualname__ == "GRPOTrainer"
            and all(hasattr(cls, hook) for hook in SDPO_HOOKS))


_NO_GENUINE = ("sdpo_lite needs TRL's own GRPOTrainer, but trl.GRPOTrainer is now {found!r} (replaced, e.g. by "
               "Unsloth) and a private copy of TRL's grpo_trainer module could not be loaded ({why}). Fix: in a fresh "
               "Python process, import sdpo_lite.trainer BEFORE `import unsloth` and PatchFastRL (Unsloth then warns "
               "that trl came first; its model-side speed-ups still apply), and report your trl/unsloth versions.")


# ----------------------------------------------------------------------------------------------------------------
# 2. TRL's fused LM head, routed by device
# ----------------------------------------------------------------------------------------------------------------


def _chunk(hidden, weight, bias, targets, temperature, softcap, logit_scale, outputs):
    logits = torch.nn.functional.linear(hidden, weight, bias)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) * logit_scale  # at least fp32, like TRL
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    logits = logits / temperature  # (n, V)
    log_z = torch.logsumexp(logits, dim=-1)
    target = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    logp = logits - log_z.unsqueeze(-1)
    result = [target - log_z]
    result.append(-(logp.exp() * logp).sum(-1) if "entropy" in outputs else None)
    with torch.no_grad():
        result.append(torch.logsumexp(2 * logp, dim=-1) if "log_sum_sq_probs" in outputs else None)
        result.append(logits.mean(-1) if "mean_logits" in outputs else None)
        if "is_top1" in outputs:
            result.append(logits.argmax(-1) == targets)
        else:
            result.append(None)
    return tuple(result)


class TorchChunkedLogProb:
    """Drop-in for TRL's `ChunkedLogProbFunction.apply(...)`, in plain PyTorch."""

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None, logit_scale=1.0,
              outputs=("entropy",)):
        parts = []
        for start in range(0, hidden.shape[0], ROWS_PER_CHUNK):
            args = (hidden[start:start + ROWS_PER_CHUNK], weight, bias, targets[start:start + ROWS_PER_CHUNK],
                    temperature, final_logit_softcapping, logit_scale, outputs)
            parts.append(checkpoint(_chunk, *args, use_reentrant=False) if torch.is_grad_enabled() else _chunk(*args))
        if not parts:  # no valid label in the batch
            empty = hidden.sum(-1)[:0].float()
            return (empty, empty if "entropy" in outputs else None, None, None, None)
        return tuple(None if p[0] is None else torch.cat(p) for p in zip(*parts))


class ByDevice:
    """TRL's kernel for GPU tensors, `TorchChunkedLogProb` for the rest; `kernel` None: no Triton at all."""

    def __init__(self, kernel):
        self.kernel = kernel

    def apply(self, hidden, *args, **kwargs):
        if self.kernel is not None and hidden.is_cuda:
            return self.kernel.apply(hidden, *args, **kwargs)
        return TorchChunkedLogProb.apply(hidden, *args, **kwargs)


def install_cpu_lm_head() -> ByDevice:
    """Route TRL's fused LM head by device (idempotent). Returns the router now in TRL's slot."""
    import trl.trainer.utils as trl_utils

    current = getattr(trl_utils, "_ChunkedLogProbFunction", None)
    if not isinstance(current, ByDevice):
        trl_utils._ChunkedLogProbFunction = ByDevice(current)
    return trl_utils._ChunkedLogProbFunction
