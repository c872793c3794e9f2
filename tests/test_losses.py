"""GAP loss pinned against a plain loop transcription of upstream's formula."""
import math

import torch

from model.losses import gap_loss, same_label_matrix, soft_target_kl


def loop_kl(logits, labels):
    """Upstream's KLLoss written out element by element: N * mean_ij p_ij (log p_ij - log q_ij)."""
    n = logits.shape[0]
    total = 0.0
    for i in range(n):
        g = [10.0 if labels[i] == labels[j] else 0.0 for j in range(n)]
        zg = sum(math.exp(v) for v in g)
        zl = sum(math.exp(float(logits[i, j])) for j in range(n))
        for j in range(n):
            p = math.exp(g[j]) / zg
            log_q = float(logits[i, j]) - math.log(zl)
            total += p * (math.log(p) - log_q)
    return n * total / (n * n)


def loop_gap(logits, labels, feats, texts, scale, alpha):
    n = logits.shape[0]
    ce = 0.0
    for i in range(n):
        row = [float(v) for v in logits[i]]
        ce += math.log(sum(math.exp(v) for v in row)) - row[int(labels[i])]
    ce /= n
    losses = []
    for s in range(5):
        f = feats[s] / feats[s].norm(dim=-1, keepdim=True)
        e = texts[s] / texts[s].norm(dim=-1, keepdim=True)
        sc = float(scale[0, s])
        img = torch.tensor([[sc * float(f[i] @ e[j]) for j in range(n)] for i in range(n)])
        txt = torch.tensor([[sc * float(e[i] @ f[j]) for j in range(n)] for i in range(n)])
        losses.append((loop_kl(img, labels) + loop_kl(txt, labels)) / 2)
    text = sum(losses) / 5
    return ce + alpha * text, ce, text


def test_same_label_matrix_equals_loop():
    labels = torch.tensor([3, 1, 3, 0, 1, 1])
    loop = torch.tensor([[1.0 if a == b else 0.0 for b in labels] for a in labels])
    assert torch.equal(same_label_matrix(labels), loop)


def test_soft_target_kl_matches_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 5, generator=g) * 3
    labels = torch.tensor([0, 2, 0, 1, 2])
    value = soft_target_kl(logits, same_label_matrix(labels))
    assert abs(float(value) - loop_kl(logits, labels)) < 1e-5


def test_gap_loss_matches_loop_and_uses_raw_scale():
    g = torch.Generator().manual_seed(1)
    n, c = 6, 4
    labels = torch.tensor([0, 1, 1, 3, 0, 2])
    logits = torch.randn(n, c, generator=g)
    widths = [8, 5, 5, 5, 5]
    feats = [torch.randn(n, w, generator=g) for w in widths]
    texts = [torch.randn(n, w, generator=g) for w in widths]
    scale = torch.full((1, 5), math.log(1 / 0.07)) + torch.arange(5.0)[None] * 0.1
    total, ce, text = gap_loss(logits, labels, feats[0], feats[1:], texts, scale, alpha=0.8)
    ref_total, ref_ce, ref_text = loop_gap(logits, labels, feats, texts, scale, 0.8)
    assert abs(float(ce) - ref_ce) < 1e-5
    assert abs(float(text) - ref_text) < 1e-4
    assert abs(float(total) - ref_total) < 1e-4
    # exponentiating the scale would give a different value
    _, _, text_exp = gap_loss(logits, labels, feats[0], feats[1:], texts, scale.exp(), alpha=0.8)
    assert abs(float(text_exp) - ref_text) > 1e-3


def test_gap_loss_backpropagates_to_features_and_scale():
    g = torch.Generator().manual_seed(2)
    labels = torch.tensor([0, 1, 0, 1])
    logits = torch.randn(4, 2, generator=g, requires_grad=True)
    feats = [torch.randn(4, 6, generator=g, requires_grad=True) for _ in range(5)]
    texts = [torch.randn(4, 6, generator=g) for _ in range(5)]
    scale = torch.full((1, 5), 2.0, requires_grad=True)
    total, _, _ = gap_loss(logits, labels, feats[0], feats[1:], texts, scale, alpha=1.0)
    total.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert scale.grad.shape == (1, 5) and (scale.grad != 0).all()
