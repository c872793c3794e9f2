"""Micro-benchmark: CPU forward+backward of the GAP model against upstream's way of computing it.

Times, in one run and on the same input:
  (a) `Upstream4Part`: the upstream GAP model's forward path re-written here from the spec
      (I - A^k applied as a batched matmul over every frame, a Python loop over the three CTR-GC
      subsets, each subset's convolutions run on their own, parts pooled from the full map);
  (b) `model.ctrgcn.Model`: our plain CTR-GCN (logits only);
  (c) `model.ctrgcn.Model_lst_4part`: our GAP model.
The baseline uses upstream's parameter names, so the same weights load into (a) and (c);
tests/test_model.py imports `Upstream4Part` to check that both give the same outputs.

    .venv/bin/python tests/benchmarks/bench_model.py [--batch 8] [--frames 64] [--threads 2]

Prints median wall and process-CPU milliseconds per step and the ratios. On a machine shared with
other jobs, wall times with 2 threads swing widely (a thread waits for its descheduled partner);
`--threads 1` and the CPU column are then the steadier comparison.
"""
import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------------------------
# (a) Baseline: the upstream computation, structure for structure (names match upstream's).
# --------------------------------------------------------------------------------------------
class _CTRGC(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        rel = 8 if cin in (3, 9) else cin // 8
        self.conv1 = nn.Conv2d(cin, rel, 1)
        self.conv2 = nn.Conv2d(cin, rel, 1)
        self.conv3 = nn.Conv2d(cin, cout, 1)
        self.conv4 = nn.Conv2d(rel, cout, 1)

    def forward(self, x, A, alpha):
        x1, x2, x3 = self.conv1(x).mean(-2), self.conv2(x).mean(-2), self.conv3(x)
        rel = torch.tanh(x1.unsqueeze(-1) - x2.unsqueeze(-2))
        rel = self.conv4(rel) * alpha + A[None, None]
        return torch.einsum('ncuv,nctv->nctu', rel, x3)


class _UnitGCN(nn.Module):
    def __init__(self, cin, cout, A):
        super().__init__()
        self.convs = nn.ModuleList(_CTRGC(cin, cout) for _ in range(A.shape[0]))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout))
                     if cin != cout else nn.Identity())
        self.PA = nn.Parameter(torch.from_numpy(A.astype(np.float32)))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        y = None
        for i in range(self.PA.shape[0]):
            z = self.convs[i](x, self.PA[i], self.alpha)
            y = z if y is None else y + z
        y = self.bn(y)
        y += self.down(x)
        return torch.relu(y)


class _ConvBN(nn.Module):
    def __init__(self, cin, cout, kernel, stride=1, dilation=1):
        super().__init__()
        pad = (kernel - 1) * dilation // 2
        self.conv = nn.Conv2d(cin, cout, (kernel, 1), (stride, 1), (pad, 0), (dilation, 1))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class _MultiScaleTCN(nn.Module):
    def __init__(self, c, stride):
        super().__init__()
        b = c // 4
        branches = [nn.Sequential(nn.Conv2d(c, b, 1), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                                  _ConvBN(b, b, 5, stride, d)) for d in (1, 2)]
        branches.append(nn.Sequential(nn.Conv2d(c, b, 1), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                                      nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), nn.BatchNorm2d(b)))
        branches.append(nn.Sequential(nn.Conv2d(c, b, 1, stride=(stride, 1)), nn.BatchNorm2d(b)))
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class _Unit(nn.Module):
    def __init__(self, cin, cout, A, stride=1, residual=True):
        super().__init__()
        self.gcn1 = _UnitGCN(cin, cout, A)
        self.tcn1 = _MultiScaleTCN(cout, stride)
        if not residual:
            self.residual = lambda x: 0
        elif cin == cout and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = _ConvBN(cin, cout, 1, stride)

    def forward(self, x):
        return torch.relu(self.tcn1(self.gcn1(x)) + self.residual(x))


class Upstream4Part(nn.Module):
    """Upstream's GAP model (NTU joint layout by default), computed the way upstream computes it."""

    def __init__(self, num_class=60, num_person=2, graph='graph.ntu_rgb_d.Graph', k=8,
                 representation='joint', head=('ViT-B/32',)):
        super().__init__()
        module, _, name = graph.rpartition('.')
        g = getattr(__import__(module, fromlist=[name]), name)()
        V = g.num_node
        eye = np.eye(V)
        self.A_vector = torch.from_numpy(eye - np.linalg.matrix_power(g.A_outward_binary, k)).float()
        self.parts = [torch.tensor(g.parts[representation][p]) for p in ('head', 'hand', 'foot', 'hip')]
        self.head = list(head)
        self.logit_scale = nn.Parameter(torch.ones(1, 5) * math.log(1 / 0.07))
        self.data_bn = nn.BatchNorm1d(num_person * 3 * V)
        channels = [(3, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1),
                    (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1)]
        for i, (cin, cout, stride) in enumerate(channels, 1):
            setattr(self, f'l{i}', _Unit(cin, cout, g.A, stride, residual=i > 1))
        self.linear_head = nn.ModuleDict({h: nn.Linear(256, 512) for h in self.head})
        self.part_list = nn.ModuleList(nn.Linear(256, 512) for _ in range(4))
        self.fc = nn.Linear(256, num_class)

    def forward(self, x):
        N, C, T, V, M = x.shape
        # I - A^k as upstream applies it: one (V, V) @ (V, C) product per person-frame.
        x = x.permute(0, 4, 2, 3, 1).reshape(N * M * T, V, C)
        x = self.A_vector.to(x).expand(N * M * T, V, V).bmm(x)
        x = x.view(N, M, T, V, C).permute(0, 1, 3, 4, 2).reshape(N, M * V * C, T)
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).reshape(N * M, C, T, V)
        for i in range(1, 11):
            x = getattr(self, f'l{i}')(x)
        c = x.size(1)
        feature = x.view(N, M, c, -1, V)
        head, hand, foot, hip = (self.part_list[i](feature[..., idx].mean(4).mean(3).mean(1))
                                 for i, idx in enumerate(self.parts))
        x = x.view(N, M, c, -1).mean(3).mean(1)
        feats = {h: self.linear_head[h](x) for h in self.head}
        return self.fc(x), feats, self.logit_scale, [head, hand, hip, foot]


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
def time_models(models, x, warmup, iters):
    """{name: (median wall ms, median CPU ms)} of a training-mode forward + backward (the trainer's
    --phase benchmark `model_step`: a trivial loss over every output). The models take turns, so
    load from other processes spreads over all of them; CPU time is what the step itself used,
    which on a shared machine moves less than wall time does."""
    from torchlight.benchmark import model_step, time_arms
    cpu = torch.device('cpu')
    for model in models.values():
        model.train()
    arms = {name: (lambda m=model: model_step(m, cpu, None, x)) for name, model in models.items()}
    times = time_arms(arms, warmup, iters)
    return {name: (1e3 * statistics.median(t['wall']), 1e3 * statistics.median(t['cpu']))
            for name, t in times.items()}


def main(argv=None):
    from model.ctrgcn import Model, Model_lst_4part

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--frames', type=int, default=64)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=7)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.frames, 25, 2)
    models = {
        'upstream GAP (bmm, subset loop)': Upstream4Part(),
        'ours: plain CTR-GCN Model': Model(num_class=60, num_point=25, num_person=2,
                                          graph='graph.ntu_rgb_d.Graph'),
        'ours: GAP Model_lst_4part': Model_lst_4part(num_class=60, k=8),
    }
    print(f'CPU forward+backward, batch {args.batch}, T={args.frames}, 25 joints, 2 persons, '
          f'{args.threads} threads, {args.iters} timed steps each (taking turns) after '
          f'{args.warmup} warm-up')
    results = time_models(models, x, args.warmup, args.iters)
    base = results['upstream GAP (bmm, subset loop)']
    plain = results['ours: plain CTR-GCN Model']
    print(f'{"":34s} {"wall":>9s} {"CPU":>9s}   upstream/this (wall, CPU)   this/plain (wall, CPU)')
    for name, (wall, cpu) in results.items():
        print(f'{name:34s} {wall:6.0f} ms {cpu:6.0f} ms   {base[0] / wall:8.2f}x {base[1] / cpu:6.2f}x   '
              f'{wall / plain[0]:11.2f}x {cpu / plain[1]:6.2f}x')

if __name__ == '__main__':
    main()
