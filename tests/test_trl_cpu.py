"""The PyTorch stand-in for TRL 1.15's Triton-only fused LM head: same numbers, same gradients."""
import torch

from sdpo_lite.trl_cpu import ROWS_PER_CHUNK, TorchChunkedLogProb, install


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


def test_install_fills_only_an_empty_slot():
    import trl.trainer.utils as trl_utils

    before = trl_utils._ChunkedLogProbFunction
    in_use = install()
    assert in_use == (trl_utils._ChunkedLogProbFunction is TorchChunkedLogProb)
    if before is not None and before is not TorchChunkedLogProb:  # Triton present: TRL's kernel stays
        assert trl_utils._ChunkedLogProbFunction is before
