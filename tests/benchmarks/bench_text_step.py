"""What text supervision costs per training step, on the CPU, in one run, same batch:

  (a) plain CTR-GCN step (model.ctrgcn.Model, cross-entropy only)
  (b) GAP step, frozen text encoder: table lookup + gap_loss          (target: b/a <= 1.15)
  (c) GAP step the upstream way: CLIP ViT-B/32 fine-tuned, every prompt of the batch re-encoded
      with grad, five calls of N prompts at the full 77-token context
  (d) GAP step with our fine-tuning path (--te-lr-ratio > 0): the batch's unique prompts, one call,
      token context cut to the longest prompt

CLIP has random weights here (same cost as the real ones; nothing to download).
    .venv/bin/python tests/benchmarks/bench_text_step.py [--batch 16] [--frames 64] [--threads 2]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model.ctrgcn import Model, Model_lst_4part  # noqa: E402
from model.losses import gap_loss  # noqa: E402
from text.supervision import TextSupervision  # noqa: E402
from torchlight.benchmark import time_arms  # noqa: E402  (the trainer's --phase benchmark timing)


def sgd(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-4)


def plain_step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def gap_step(model, opt, x, y, targets_fn):
    opt.zero_grad(set_to_none=True)
    logits, feats, scale, parts = model(x)
    total, _, _ = gap_loss(logits, y, feats['ViT-B/32'], parts, targets_fn(y), scale, alpha=0.8)
    total.backward()
    opt.step()


def upstream_targets(sup, encoder):
    """Upstream: per text set, tokenize each sample's prompt (77 tokens) and encode with grad."""
    import clip

    def targets(y):
        rows = sup.rows(y)
        return [encoder(clip.tokenize([sup.texts[r] for r in rows[s].tolist()])).float() for s in range(5)]
    return targets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--frames', type=int, default=64)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=3, help='interleaved timing rounds')
    parser.add_argument('--slow-steps', type=int, default=2, help='rounds that also time (c) and (d)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.simplefilter('ignore')
    N, C = args.batch, 60
    x = torch.randn(N, 3, args.frames, 25, 2)
    y = torch.randint(0, C, (N,))

    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        frozen = TextSupervision.build('ntu', C, 'ViT-B/32', weights='random', cache_dir=cache_dir,
                                       log=lambda *_: None)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        TextSupervision.build('ntu', C, 'ViT-B/32', weights='random', cache_dir=cache_dir, log=lambda *_: None)
        cached_s = time.perf_counter() - start
    print(f'frozen table: {len(frozen.texts)} prompts of {C} classes encoded in {build_s:.1f} s; '
          f'from the cache in {cached_s:.2f} s')

    plain = Model(num_class=C).train()
    gap = Model_lst_4part(num_class=C, head=['ViT-B/32'], k=8).train()
    plain_opt, gap_opt = sgd(plain.parameters()), sgd(gap.parameters())
    fine = TextSupervision.build('ntu', C, 'ViT-B/32', weights='random', te_lr_ratio=1.0, log=lambda *_: None)
    up_model = Model_lst_4part(num_class=C, head=['ViT-B/32'], k=8).train()
    up_opt = sgd(list(up_model.parameters()) + list(fine.encoder.parameters()))
    steps = {
        'a': lambda: plain_step(plain, plain_opt, x, y),
        'b': lambda: gap_step(gap, gap_opt, x, y, frozen.targets),
        'c': lambda: gap_step(up_model, up_opt, x, y, upstream_targets(fine, fine.encoder)),
        'd': lambda: gap_step(up_model, up_opt, x, y, fine.targets),
    }
    # one warm-up step each, then the arms take turns (changes in machine load hit all alike);
    # (c) and (d) are slow: only their first --slow-steps rounds are timed
    times = time_arms(steps, warmup=1, steps=args.rounds, limits={'c': args.slow_steps, 'd': args.slow_steps})
    ta, tb, tc, td = (statistics.median(times[k]['wall']) for k in 'abcd')

    print(f'CPU, {args.threads} threads, batch {N}, T={args.frames}, NTU60 (median step time)')
    print(f'  (a) CTR-GCN, CE only                    {ta * 1000:8.0f} ms   1.00x')
    print(f'  (b) GAP, frozen table + gap_loss        {tb * 1000:8.0f} ms   {tb / ta:.2f}x  (target <= 1.15x)')
    print(f'  (c) GAP, upstream: CLIP re-encodes 5xN  {tc * 1000:8.0f} ms   {tc / ta:.2f}x')
    print(f'  (d) GAP, fine-tune unique prompts, cut  {td * 1000:8.0f} ms   {td / ta:.2f}x')
    print(f'  (c)/(b) = {tc / tb:.1f}x saved by the frozen table; '
          f'load average {os.getloadavg()[0]:.1f} (other processes skew CPU timings)')


if __name__ == '__main__':
    main()
