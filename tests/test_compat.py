"""The PyTorch stand-in for TRL 1.15's Triton-only fused LM head: same numbers, same gradients."""
from types import SimpleNamespace

import pytest
import torch

from sdpo_lite.compat import ROWS_PER_CHUNK, TorchChunkedLogProb, install_cpu_lm_head


def test_matches_a_plain_log_softmax():
    torch.manual_seed(0)
    N, H, V = ROWS_PER_CHUNK + 37, 8, 50  # more rows than one chunk
    hidden = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, H, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, V, (N,))
    logp, entropy, log_sum_sq, mean_logits, is_top1 = TorchChunkedLogProb.apply(
        hidden, weight, None, targets, 0.7, 4096, None, 1.0, ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1"))
    ref = torch.log_softmax(hidden @ weight.T / 0.7, -1)
    torch.testing.assert_close(logp, ref.gather(-1, targets[:, None]).squeeze(-1))
    torch.testing.assert_close(entropy, -(ref.exp() * ref).sum(-1))
    torch.testing.assert_close(log_sum_sq, torch.logsumexp(2 * ref, -1))
    assert torch.equal(is_top1, ref.argmax(-1) == targets)
    (g,) = torch.autograd.grad(logp.sum() + entropy.sum(), hidden)
    (g_ref,) = torch.autograd.grad(ref.gather(-1, targets[:, None]).sum() - (ref.exp() * ref).sum(), hidden)
    torch.testing.assert_close(g, g_ref)


def test_install_routes_by_device():
    """CPU tensors never reach Triton: with a CUDA build of torch on a machine without a GPU (Colab's CPU runtime)
    Triton is installed but has no driver, and TRL's kernel raises "0 active drivers"."""
    import trl.trainer.utils as trl_utils

    from sdpo_lite.compat import ByDevice

    router = install_cpu_lm_head()
    assert isinstance(router, ByDevice) and trl_utils._ChunkedLogProbFunction is router
    assert install_cpu_lm_head() is router  # idempotent: never a router around a router
    calls = []

    class Triton:  # what TRL's kernel looks like where Triton is installed
        @staticmethod
        def apply(*args, **kwargs):
            calls.append(args[0].device.type)
            raise RuntimeError("0 active drivers ([]). There should only be one.")

    hidden, weight, targets = torch.randn(5, 4), torch.randn(7, 4), torch.randint(0, 7, (5,))
    logp = ByDevice(Triton).apply(hidden, weight, None, targets, 1.0, 4096)[0]
    assert calls == [] and logp.shape == (5,)
    torch.testing.assert_close(logp, torch.log_softmax(hidden @ weight.T, -1).gather(-1, targets[:, None])[:, 0])
    on_gpu = SimpleNamespace(is_cuda=True, device=torch.device("cuda"))  # stands for a CUDA tensor
    with pytest.raises(RuntimeError, match="active drivers"):
        ByDevice(Triton).apply(on_gpu, weight, None, targets, 1.0, 4096)
    assert calls == ["cuda"]  # a GPU tensor goes to TRL's kernel, unchanged
