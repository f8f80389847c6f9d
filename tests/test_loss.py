"""The distillation loss: definitions, the tail floor, importance weights, and the chunked path used in training."""
import math

import pytest
import torch
import torch.nn.functional as F

from sdpo_lite.loss import (aggregate, alpha_divergence, distillation_loss, student_topk_logprobs,
                            teacher_logprobs_at, with_tail)

torch.manual_seed(0)


def _logits(B=2, T=5, V=13, scale=3.0):
    return torch.randn(B, T, V, dtype=torch.float64) * scale


def _kl(p_log, q_log):  # KL(p || q) over the last dim
    return (p_log.exp() * (p_log - q_log)).sum(-1)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_full_vocabulary_matches_the_textbook_definitions(alpha):
    s, t = _logits(), _logits()
    ids = torch.randint(0, 13, (2, 5))
    out = distillation_loss(s, t, ids, torch.ones(2, 5), alpha=alpha, topk=None, add_tail=True, temperature=0.7)
    p, q = torch.log_softmax(s / 0.7, -1), torch.log_softmax(t / 0.7, -1)
    if alpha == 0.0:
        want = _kl(q, p)
    elif alpha == 1.0:
        want = _kl(p, q)
    else:
        m = torch.log((1 - alpha) * p.exp() + alpha * q.exp())
        want = (1 - alpha) * _kl(p, m) + alpha * _kl(q, m)
    torch.testing.assert_close(out.per_token, want)


def test_topk_support_is_the_students_and_tail_holds_the_rest():
    s, t = _logits(V=50), _logits(V=50)
    ids = torch.randint(0, 50, (2, 5))
    out = distillation_loss(s, t, ids, torch.ones(2, 5), alpha=1.0, topk=7, add_tail=True, temperature=1.0)
    p, q = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
    top = p.topk(7, -1).indices
    p_S, q_S = p.gather(-1, top), q.gather(-1, top)
    p_full = torch.cat([p_S, torch.log1p(-p_S.exp().sum(-1, keepdim=True))], -1)
    q_full = torch.cat([q_S, torch.log1p(-q_S.exp().sum(-1, keepdim=True))], -1)
    torch.testing.assert_close(out.per_token, _kl(p_full, q_full))


def test_without_tail_the_topk_is_renormalised():
    s, t = _logits(V=30), _logits(V=30)
    out = distillation_loss(s, t, torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5), alpha=0.0, topk=4,
                            add_tail=False, temperature=1.0)
    p = torch.log_softmax(s, -1)
    top = p.topk(4, -1).indices
    p_S = torch.log_softmax(s.gather(-1, top), -1)
    q_S = torch.log_softmax(t.gather(-1, top), -1)
    torch.testing.assert_close(out.per_token, _kl(q_S, p_S))


def test_tail_floor_keeps_a_full_support_finite():
    """When the top-k already holds all the mass, log(1 - mass) would be -inf; the floor keeps it finite."""
    logp = torch.log_softmax(torch.tensor([[50.0, 0.0, -50.0]], dtype=torch.float64), -1)[:, :1]  # mass ~ 1
    tail = with_tail(logp)[:, -1]
    assert torch.isfinite(tail).all()
    assert tail.item() == pytest.approx(math.log(-math.expm1(-1e-7)), rel=1e-6)
    s = torch.zeros(1, 1, 4, dtype=torch.float64)
    s[..., 0] = 80.0  # a student that is certain
    out = distillation_loss(s.requires_grad_(), s.detach().clone(), torch.zeros(1, 1, dtype=torch.long),
                            torch.ones(1, 1), alpha=0.5, topk=1, add_tail=True, temperature=1.0)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(s.grad).all()


def test_identical_teacher_gives_zero_loss_and_a_different_one_does_not():
    """Under a real mask (most tokens count), the divergence is zero exactly when the teacher equals the student."""
    s = _logits().requires_grad_()
    ids = torch.randint(0, 13, (2, 5))
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    kwargs = dict(alpha=0.5, topk=5, add_tail=True, temperature=0.7)
    same = distillation_loss(s, s.detach().clone(), ids, mask, **kwargs)
    assert same.loss.item() == pytest.approx(0.0, abs=1e-12)
    assert same.per_token.abs().max().item() == pytest.approx(0.0, abs=1e-12)  # every position, not just the mask
    other = distillation_loss(s, _logits(), ids, mask, **kwargs)
    assert other.loss.item() > 1e-3  # same mask, different teacher: a real divergence
    assert ((other.per_token * mask) > 0).sum().item() == mask.sum().item()  # ... at every counted position
    other.loss.backward()
    assert s.grad.abs().sum() > 0


def test_no_teacher_signal_gives_zero_loss_but_a_connected_graph():
    """An all-zero mask (no rollout has a teacher) must still return a loss that backward() accepts."""
    s = _logits().requires_grad_()
    out = distillation_loss(s, _logits(), torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5), alpha=0.5,
                            topk=5, add_tail=True, temperature=1.0)
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    assert out.per_token.abs().sum() > 1e-3  # the teacher differs: only the mask makes the loss zero
    out.loss.backward()
    assert s.grad is not None


def test_teacher_gets_no_gradient():
    s, t = _logits().requires_grad_(), _logits().requires_grad_()
    distillation_loss(s, t, torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5), alpha=0.5, topk=3, add_tail=True,
                      temperature=1.0).loss.backward()
    assert t.grad is None and s.grad.abs().sum() > 0


def test_importance_weight_is_clipped_and_detached():
    s, t = _logits(), _logits()
    ids = torch.randint(0, 13, (2, 5))
    base = distillation_loss(s, t, ids, torch.ones(2, 5), alpha=0.5, topk=5, add_tail=True, temperature=1.0)
    logp_y = torch.log_softmax(s, -1).gather(-1, ids[..., None]).squeeze(-1)
    old = logp_y - torch.tensor([[-5.0, -0.1, 0.0, 0.1, 5.0]] * 2, dtype=torch.float64)  # ratios e^-5 .. e^5
    out = distillation_loss(s, t, ids, torch.ones(2, 5), alpha=0.5, topk=5, add_tail=True, temperature=1.0,
                            old_logprobs=old, is_clip=2.0)
    w = torch.exp(logp_y - old).clamp(max=2.0)
    torch.testing.assert_close(out.per_token, base.per_token * w)
    on_policy = distillation_loss(s, t, ids, torch.ones(2, 5), alpha=0.5, topk=5, add_tail=True, temperature=1.0,
                                  old_logprobs=logp_y, is_clip=2.0)
    torch.testing.assert_close(on_policy.per_token, base.per_token)


def test_token_level_surrogate_has_the_reverse_kl_policy_gradient():
    s, t = _logits().requires_grad_(), _logits()
    ids = torch.randint(0, 13, (2, 5))
    out = distillation_loss(s, t, ids, torch.ones(2, 5), alpha=1.0, topk=None, add_tail=False, temperature=1.0,
                            token_level=True)
    logp = torch.log_softmax(s, -1).gather(-1, ids[..., None]).squeeze(-1)
    logq = torch.log_softmax(t, -1).gather(-1, ids[..., None]).squeeze(-1)
    torch.testing.assert_close(out.per_token, (logp - logq).detach() * logp)


def test_aggregations():
    per_token = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert aggregate(per_token, mask, "token-mean").item() == pytest.approx(2.0)
    assert aggregate(per_token, mask, "seq-mean-token-mean").item() == pytest.approx(2.0)
    assert aggregate(per_token, mask, "sum").item() == pytest.approx(6.0)
    assert aggregate(per_token, torch.zeros_like(mask), "token-mean").item() == 0.0
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(per_token, mask, "mean")


@pytest.mark.parametrize("topk", [None, 6])
def test_chunked_head_equals_full_logits(topk):
    """The training path (hidden states -> chunks of the LM head) gives the reference loss and gradient."""
    torch.manual_seed(1)
    B, T, H, V = 3, 7, 16, 40
    head = torch.nn.Linear(H, V, bias=False).double()
    h_s = torch.randn(B, T, H, dtype=torch.float64, requires_grad=True)
    h_t = torch.randn(B, T, H, dtype=torch.float64)
    ids = torch.randint(0, V, (B, T))
    mask = (torch.rand(B, T) > 0.3).double()
    ref = distillation_loss(head(h_s), head(h_t), ids, mask, alpha=0.5, topk=topk, add_tail=True, temperature=0.7)
    (g_ref,) = torch.autograd.grad(ref.loss, h_s)

    st = student_topk_logprobs(h_s, head, ids, topk=topk, temperature=0.7, chunk_size=4)  # chunks split rows
    q_S, q_y = teacher_logprobs_at(h_t, head, ids, st.ids, temperature=0.7, chunk_size=5)
    from sdpo_lite.loss import divergence_on_support
    out = divergence_on_support(st.logp_S, q_S, st.logp_y, q_y, mask, alpha=0.5, add_tail=True,
                                use_topk=topk is not None)
    (g,) = torch.autograd.grad(out.loss, h_s)
    torch.testing.assert_close(out.per_token, ref.per_token)
    torch.testing.assert_close(g, g_ref)
    p = torch.log_softmax(head(h_s) / 0.7, -1)
    torch.testing.assert_close(st.entropy, -(p.exp() * p).sum(-1).detach())
    assert st.logp_S.shape == (B, T, V if topk is None else topk)


def test_alpha_divergence_is_symmetric_in_its_endpoints():
    p, q = torch.log_softmax(_logits(), -1), torch.log_softmax(_logits(), -1)
    torch.testing.assert_close(alpha_divergence(p, q, 0.0), alpha_divergence(q, p, 1.0))
    assert (alpha_divergence(p, q, 0.5) >= -1e-12).all()
    assert torch.allclose(F.kl_div(p, q, reduction="none", log_target=True).sum(-1), _kl(q, p))
