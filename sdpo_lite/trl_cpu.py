"""Make TRL 1.15's fused LM head run on the CPU (CPU machines, laptops, CI, Colab's and Kaggle's CPU runtimes).

TRL 1.15's GRPOTrainer computes per-token log-probs with a fused LM head whose kernel is written in Triton. It
fails on the CPU in two ways:
* PyTorch's CPU wheels ship no Triton: `trl.trainer.utils._ChunkedLogProbFunction` is None and the first training
  step fails with "'NoneType' object has no attribute 'apply'";
* a CUDA build of torch (PyPI's default on Linux, the torch of Colab's and Kaggle's images) brings Triton, but on
  a machine or runtime without a GPU Triton has no driver: "0 active drivers ([]). There should only be one."
So we route by device: tensors on a GPU go to TRL's Triton kernel, unchanged; CPU tensors get the same computation
in plain PyTorch: rows of hidden states are projected through the LM head a chunk at a time inside an activation
checkpoint, so the (tokens x vocabulary) logits never exist for the whole batch, as in the kernel.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

ROWS_PER_CHUNK = 256


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


def install() -> ByDevice:
    """Route TRL's fused LM head by device (idempotent). Returns the router now in TRL's slot."""
    import trl.trainer.utils as trl_utils

    current = getattr(trl_utils, "_ChunkedLogProbFunction", None)
    if not isinstance(current, ByDevice):
        trl_utils._ChunkedLogProbFunction = ByDevice(current)
    return trl_utils._ChunkedLogProbFunction
