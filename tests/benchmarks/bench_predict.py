"""Throughput of `--phase predict` (clips per second) against upstream's model forward, CPU, one thread.

    pip install einops            # upstream's model imports it
    git clone https://github.com/MartinXM/GAP /path/to/GAP
    OMP_NUM_THREADS=1 python tests/benchmarks/bench_predict.py --upstream /path/to/GAP

For the NTU RGB+D shape (Model_lst_4part: 60 classes, 25 joints, 2 bodies, window 64, test view
p_interval [0.95]) and the NW-UCLA shape (Model_lst_4part_ucla: 10 classes, 20 joints, 1 body,
window 52), at batch 1 and at batch 64, three arms are timed in the same process:

  predict   our whole predict path: torchlight.predict.predict over raw clips, i.e. each clip
            through its feeder's clip_view (feeders/feeder_*.py), the batch stacked, our model's
            forward and the softmax of the logits. The Stream is built as --phase predict builds
            it, from an inference checkpoint (the format torchlight.export writes) saved to a
            temporary folder and read back with load_checkpoint / stream_spec;
  ours      our model's forward alone, on the batch the clip view prepared;
  upstream  upstream's model (its own model/ctrgcn.py from --upstream) on the same batch, with the
            same weights (our state dict loaded into it: the names are upstream's).

Every forward runs in eval mode under torch.inference_mode, as predict's does. Before timing, the
script checks that ours and upstream's give the same logits on the batch, and that predict's
probabilities are the softmax of upstream's logits. The arms are timed in turns (their order
rotating every round) so that load from other processes falls on all of them alike; the first
--warmup rounds are not counted. Reported: clips/s from the median wall time of the rounds, the
same from the median process CPU time, and the ratios ours/upstream and predict/upstream (above
1: faster than upstream's forward).

The clips are synthetic: random skeletons with a fixed seed (--seed), T drawn around 100 frames;
NTU clips are two raw bodies (2, T, 25, 3) float32 as a .skeleton file reads, NW-UCLA clips
(1, T, 20, 3) float64 as an all_sqe .json reads. The weights are the models' seeded random
initialisation, the classifier scaled down (its logits would be ~1e3 on these inputs and the
softmax one-hot, leaving nothing for the probability check to compare). Neither matters for
speed: the work per clip depends only on the shapes.

A whole run takes a few minutes on one loaded core (--datasets, --rounds and --batch make it
shorter). The process keeps freed memory in its heap (torchlight.device.keep_cpu_memory_in_heap),
as --phase predict and the trainer do on the CPU; all three arms run under it. With glibc's default
malloc (--default-malloc) about half of each NTU batch-64 forward is kernel time: its large
tensors are mmap'd and unmapped on every forward and every page faults in again (measured: 4.5
clips/s there against 10.3 at batch 1).

Upstream's code is imported at run time from --upstream, as tests/benchmarks/bench_upstream.py
does (its top-level `model`, `graph` and `tools` collide with ours: while the upstream models are
built ours leave sys.modules, and `clip` and `Text_Prompt` are empty stand-ins); a checkout
without graph/tools.py and graph/infogcn/tools.py takes CTR-GCN's and InfoGCN's graph/tools.py.
Nothing of upstream's is part of this project.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

MAIN = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_upstream  # noqa: E402  (beside this file; its import sets torch to one thread)
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, MAIN)
from feeders.clips import Clip  # noqa: E402
from torchlight.device import keep_cpu_memory_in_heap  # noqa: E402
from torchlight.predict import INFERENCE_FORMAT, Stream, load_checkpoint, predict, stream_spec  # noqa: E402

ARMS = ('predict', 'ours', 'upstream')

SHAPES = {
    'ntu': dict(
        title='NTU RGB+D (Model_lst_4part, 60 classes, 2 x 25 joints, window 64)',
        model_class='model.ctrgcn.Model_lst_4part',
        model_args=dict(num_class=60, num_point=25, num_person=2, graph='graph.ntu_rgb_d.Graph',
                        graph_args=dict(labeling_mode='spatial'), head=['ViT-B/32'], k=8),
        feeder='feeders.feeder_ntu.Feeder',
        test_feeder_args=dict(window_size=64, p_interval=[0.95]),
        bodies=2, joints=25, dtype=np.float32),
    'ucla': dict(
        title='NW-UCLA (Model_lst_4part_ucla, 10 classes, 1 x 20 joints, window 52)',
        model_class='model.ctrgcn.Model_lst_4part_ucla',
        model_args=dict(num_class=10, num_point=20, num_person=1, graph='graph.ucla.Graph',
                        graph_args=dict(labeling_mode='spatial'), head=['ViT-B/32'], k=6),
        feeder='feeders.feeder_ucla.Feeder',
        test_feeder_args=dict(window_size=52),
        bodies=1, joints=20, dtype=np.float64),
}


# ----------------------------------------------------------------------------- upstream's model

def build_upstream(upstream, deps, class_name, model_args):
    """An instance of upstream's model/ctrgcn.py `class_name`, built as bench_upstream.py builds
    upstream's models (ours back in sys.modules afterwards)."""
    module, (model,), graph_file = bench_upstream.build_upstream(
        lambda up: (getattr(up, class_name)(**model_args),), upstream, deps)
    if not (module.__file__.startswith(upstream) and graph_file.startswith(upstream)):
        sys.exit(f'error: upstream\'s model or graph did not come from {upstream}')
    return model


# ------------------------------------------------------------------------------------- set-up

def random_clips(shape, count, rng, prefix):
    """`count` synthetic raw clips of `shape`: bodies around a centre 3 m away, T ~ 100."""
    clips = []
    for i in range(count):
        frames = int(rng.integers(80, 121))
        keypoint = rng.normal(0.0, 0.3, (shape['bodies'], frames, shape['joints'], 3))
        keypoint[..., 2] += 3.0
        clips.append(Clip(f'{prefix}{i:03d}', keypoint.astype(shape['dtype'])))
    return clips


def our_stream(shape, folder, device):
    """A Stream as --phase predict builds it, from an inference checkpoint saved in `folder`."""
    from torchlight.importing import build
    model = build(shape['model_class'], dict(shape['model_args']), 'model_args')
    with torch.no_grad():  # random init on these inputs gives logits ~1e3, a one-hot softmax: scaled
        model.fc.weight.mul_(1e-3)  # down so that the probability check below compares something
    num_class = shape['model_args']['num_class']
    path = os.path.join(folder, f'{shape["model_class"].rsplit(".", 1)[1]}.pt')
    torch.save({
        'format': INFERENCE_FORMAT, 'version': 1,
        'model': {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        'model_class': shape['model_class'], 'model_args': shape['model_args'],
        'feeder': shape['feeder'], 'test_feeder_args': shape['test_feeder_args'],
        'criterion': 'text.criterion.build', 'criterion_args': {},
        'class_names': [f'class {i}' for i in range(num_class)],
    }, path)
    spec, weights = stream_spec(path, load_checkpoint(path), None, {'feeder': shape['feeder']})
    return Stream(path, spec, weights, device)


def prepared(stream, clips, batch):
    """The input batches predict builds from `clips` (the clip view, stacked), as tensors."""
    return [torch.from_numpy(np.stack([stream.view(c) for c in clips[s:s + batch]]))
            for s in range(0, len(clips), batch)]


def logits_of(model, x):
    with torch.inference_mode():
        out = model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


def check_agreement(name, stream, up_model, clips, batch, device):
    """Ours vs upstream's logits on the prepared batch; predict's probabilities vs their softmax."""
    x = prepared(stream, clips, batch)[0]
    ours, theirs = logits_of(stream.model, x), logits_of(up_model, x)
    probs = np.stack([p for _, p in predict([stream], clips[:batch], [1.0], device, None, batch)])
    reference = torch.softmax(theirs.double(), dim=1).numpy()
    diff_logits = (ours - theirs).abs().max().item()
    diff_probs = float(np.abs(probs - reference).max())
    print(f'[{name}] agreement on a batch of {len(x)}: input {tuple(x.shape)} {x.dtype}; max abs diff '
          f'logits ours vs upstream {diff_logits:.3e} (logit magnitude {theirs.abs().max().item():.3e}); '
          f'predict probabilities vs softmax(upstream logits) {diff_probs:.3e} (top probability '
          f'{probs.max(axis=1).min():.3f}..{probs.max(axis=1).max():.3f})', flush=True)
    return diff_logits, diff_probs


# ------------------------------------------------------------------------------------- timing

def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def run_arms(stream, up_model, clips, batch, device):
    """The three arms over `clips` at `batch`, as argument-less callables."""
    xs = prepared(stream, clips, batch)

    def run_predict():
        for _ in predict([stream], clips, [1.0], device, None, batch):
            pass

    def forward(model):
        def run():
            with torch.inference_mode():
                for x in xs:
                    model(x)
        return run

    return {'predict': run_predict, 'ours': forward(stream.model), 'upstream': forward(up_model)}


def measure(name, arms, count, warmup, rounds):
    """Median wall and CPU seconds per round of each arm (order rotating each round)."""
    times = {arm: [] for arm in ARMS}
    for r in range(warmup + rounds):
        order = ARMS[r % 3:] + ARMS[:r % 3]
        for arm in order:
            t = timed(arms[arm])
            if r >= warmup:
                times[arm].append(t)
    result = {}
    for arm in ARMS:
        wall = statistics.median(w for w, _ in times[arm])
        cpu = statistics.median(c for _, c in times[arm])
        result[arm] = {'clips_per_s': count / wall, 'cpu_clips_per_s': count / cpu,
                       'median_wall_s': wall, 'median_cpu_s': cpu,
                       'rounds_clips_per_s': [round(count / w, 2) for w, _ in times[arm]]}
        per_round = ' '.join(f'{count / w:.2f}' for w, _ in times[arm])
        print(f'[{name}] {arm:8s}: {count / wall:8.2f} clips/s (median wall {wall * 1e3:8.1f} ms for '
              f'{count} clips; by CPU time {count / cpu:8.2f} clips/s)  per round: {per_round}', flush=True)
    return result


# --------------------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--upstream', required=True, help='a checkout of MartinXM/GAP')
    parser.add_argument('--deps', default=None, help='an extra folder for upstream\'s imports (einops), '
                        'e.g. from pip install --target')
    parser.add_argument('--datasets', nargs='+', default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument('--batch', type=int, default=64, help='the large batch (clips per forward)')
    parser.add_argument('--single-clips', type=int, default=8,
                        help='clips per round at batch 1 (each its own forward)')
    parser.add_argument('--rounds', type=int, default=4, help='timed rounds per arm')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--default-malloc', action='store_true',
                        help="glibc's default allocator instead of predict's heap settings")
    args = parser.parse_args()
    heap = False if args.default_malloc else keep_cpu_memory_in_heap()
    upstream = os.path.abspath(args.upstream)
    deps = os.path.abspath(args.deps) if args.deps else None
    if not os.path.isfile(os.path.join(upstream, 'model', 'ctrgcn.py')):
        sys.exit(f'error: {upstream} has no model/ctrgcn.py (give a checkout of MartinXM/GAP)')
    load_before = open('/proc/loadavg').read().strip()
    print('loadavg before:', load_before, flush=True)
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}; {args.rounds} timed rounds after '
          f'{args.warmup} warm-up; synthetic clips, seed {args.seed}', flush=True)
    device = torch.device('cpu')
    rows = []
    with tempfile.TemporaryDirectory(prefix='bench_predict_') as folder:
        for key in args.datasets:
            shape = SHAPES[key]
            print(f'== {shape["title"]}', flush=True)
            torch.manual_seed(args.seed)
            stream = our_stream(shape, folder, device)
            up_model = build_upstream(upstream, deps, shape['model_class'].rsplit('.', 1)[1],
                                      shape['model_args'])
            up_model.load_state_dict(stream.model.state_dict())  # strict: upstream's names
            up_model.eval()
            rng = np.random.default_rng(args.seed)
            clips = random_clips(shape, max(args.batch, args.single_clips), rng, f'{key}-')
            frames = [c.keypoint.shape[1] for c in clips]
            print(f'[{key}] {len(clips)} clips {clips[0].keypoint.shape[0]} x T x '
                  f'{clips[0].keypoint.shape[2]} x 3 {clips[0].keypoint.dtype}, T {min(frames)}..{max(frames)} '
                  f'(median {statistics.median(frames):.0f}); stream {stream.describe()}', flush=True)
            diff_logits, diff_probs = check_agreement(key, stream, up_model, clips, args.batch, device)
            for batch, count in ((1, args.single_clips), (args.batch, args.batch)):
                name = f'{key} batch {batch}'
                arms = run_arms(stream, up_model, clips[:count], batch, device)
                res = measure(name, arms, count, args.warmup, args.rounds)
                rows.append({'dataset': key, 'batch': batch, 'clips_per_round': count, 'rounds': args.rounds,
                             **{arm: res[arm] for arm in ARMS},
                             'ours_over_upstream': res['ours']['clips_per_s'] / res['upstream']['clips_per_s'],
                             'predict_over_upstream': res['predict']['clips_per_s'] / res['upstream']['clips_per_s'],
                             'max_abs_diff_logits': diff_logits, 'max_abs_diff_probs': diff_probs})
    load_after = open('/proc/loadavg').read().strip()
    print('loadavg after:', load_after, flush=True)

    print('\nclips/s (median wall of the rounds; CPU-time figure in brackets), CPU, 1 thread')
    head = (f'{"dataset":8s} {"batch":>5s} {"predict":>17s} {"ours fwd":>17s} {"upstream fwd":>17s} '
            f'{"ours/up":>8s} {"predict/up":>10s}')
    print(head)
    print('-' * len(head))
    for row in rows:
        cells = ' '.join(f'{row[arm]["clips_per_s"]:8.2f} ({row[arm]["cpu_clips_per_s"]:6.2f})' for arm in ARMS)
        print(f'{row["dataset"]:8s} {row["batch"]:5d} {cells} {row["ours_over_upstream"]:8.3f} '
              f'{row["predict_over_upstream"]:10.3f}')
    print(json.dumps({'bench': 'predict', 'torch': torch.__version__, 'threads': torch.get_num_threads(),
                      'seed': args.seed, 'warmup': args.warmup, 'heap_settings': heap, 'loadavg_before': load_before,
                      'loadavg_after': load_after, 'results': rows}))


if __name__ == '__main__':
    main()
