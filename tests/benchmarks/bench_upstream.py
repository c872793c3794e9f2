"""Speed of our model against upstream's own model code (MartinXM/GAP model/ctrgcn.py), same process.

    pip install einops            # upstream's model imports it
    git clone https://github.com/MartinXM/GAP /path/to/GAP
    OMP_NUM_THREADS=1 python tests/benchmarks/bench_upstream.py --upstream /path/to/GAP

Nothing of upstream's is part of this project: the script imports it from --upstream at run time.
Upstream's tree has top-level `model`, `graph` and `tools` that collide with ours. Ours are
imported first; for building the upstream models only, our entries leave sys.modules, the upstream
folder goes first on sys.path and its model/ctrgcn.py loads under another name; afterwards its
modules are kept as `upstream_<name>` and ours come back, so both models then run side by side.
`clip` and `Text_Prompt` are empty stand-ins (the classes built here use neither; Text_Prompt
opens text files at import). Upstream's files are not modified. Upstream's graph package imports
graph/tools.py and graph/infogcn/tools.py; a checkout without them takes CTR-GCN's and InfoGCN's
graph/tools.py, which upstream's code was written against.

For each model it checks that both give the same outputs for the same weights (eval mode), then
times forward + backward in turns (ABAB...), so load from other processes falls on both alike, and
prints median wall and CPU time per step and upstream/ours ratios.
"""
import importlib.util
import os
import resource
import statistics
import sys
import argparse
import time
import types

MAIN = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UP = DEPS = None  # set by main() from the command line

import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

sys.path.insert(0, MAIN)
import model.ctrgcn as ours  # noqa: E402

COLLIDE = ('model', 'graph', 'tools', 'clip', 'Text_Prompt')


def _top(name):
    return name.split('.')[0]


def build_upstream(builders, upstream=None, deps=None):
    """Run builders(upstream_module) with upstream's packages importable under their own names
    (upstream / deps: the checkout and an extra import folder, default --upstream / --deps)."""
    upstream, deps = upstream or UP, deps or DEPS
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if _top(k) in COLLIDE}
    saved_path = list(sys.path)
    sys.path[:0] = [upstream] + ([deps] if deps else [])
    for stub in ('clip', 'Text_Prompt'):
        sys.modules[stub] = types.ModuleType(stub)
    importlib.invalidate_caches()
    try:
        spec = importlib.util.spec_from_file_location('upstream_model_ctrgcn',
                                                      os.path.join(upstream, 'model', 'ctrgcn.py'))
        up = importlib.util.module_from_spec(spec)
        sys.modules['upstream_model_ctrgcn'] = up
        spec.loader.exec_module(up)
        built = builders(up)
        graph_file = sys.modules['graph'].__file__
    finally:
        for k in [k for k in list(sys.modules) if _top(k) in COLLIDE]:
            sys.modules['upstream_' + k] = sys.modules.pop(k)
        sys.modules.update(saved)
        sys.path[:] = saved_path
        importlib.invalidate_caches()
    return up, built, graph_file


def flat(out):
    """All tensors of a model output, in a fixed order."""
    if torch.is_tensor(out):
        return [out]
    logits, feats, scale, parts = out
    return [logits] + [feats[k] for k in sorted(feats)] + [scale] + list(parts)


def loss_of(out):
    return sum(t.mean() for t in flat(out))


def step(m, x):
    m.zero_grad(set_to_none=True)
    w0, c0 = time.perf_counter(), time.process_time()
    loss_of(m(x)).backward()
    return (time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3


def compare(name, up_model, our_model, x, warmup=2, rounds=8):
    our_model.load_state_dict(up_model.state_dict())
    up_model.eval(), our_model.eval()
    with torch.no_grad():
        a, b = flat(up_model(x)), flat(our_model(x))
    shapes_ok = [tuple(s.shape) for s in a] == [tuple(s.shape) for s in b]
    diffs = [(s - t).abs().max().item() for s, t in zip(a, b)]
    print(f'[{name}] eval agreement: {len(a)} output tensors, shapes equal: {shapes_ok}, '
          f'max abs diff logits {diffs[0]:.3e}, over all outputs {max(diffs):.3e} '
          f'(logit magnitude {a[0].abs().max().item():.3e})', flush=True)
    up_model.train(), our_model.train()
    res = {'upstream': [], 'ours': []}
    for r in range(warmup + rounds):
        for side, m in (('upstream', up_model), ('ours', our_model)):  # ABAB
            t = step(m, x)
            if r >= warmup:
                res[side].append(t)
    med = {s: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for s, v in res.items()}
    for s in ('upstream', 'ours'):
        walls = ' '.join(f'{w:.0f}' for w, _ in res[s])
        print(f'[{name}] {s:8s}: median wall {med[s][0]:8.1f} ms, median CPU {med[s][1]:8.1f} ms '
              f'per step  (wall per round: {walls})', flush=True)
    print(f'[{name}] ratio upstream/ours: wall {med["upstream"][0] / med["ours"][0]:.3f}, '
          f'CPU {med["upstream"][1] / med["ours"][1]:.3f}', flush=True)
    return med


def main():
    global UP, DEPS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--upstream', required=True, help='a checkout of MartinXM/GAP')
    parser.add_argument('--deps', default=None, help='an extra folder for upstream\'s imports (einops), '
                        'e.g. from pip install --target')
    parser.add_argument('--batch', type=int, default=8, help='NTU batch (sequences of 64 frames, 2 persons)')
    parser.add_argument('--ucla-batch', type=int, default=16, help='NW-UCLA batch (52 frames, 1 person)')
    args = parser.parse_args()
    UP = os.path.abspath(args.upstream)
    DEPS = os.path.abspath(args.deps) if args.deps else None
    if not os.path.isfile(os.path.join(UP, 'model', 'ctrgcn.py')):
        sys.exit(f'error: {UP} has no model/ctrgcn.py (give a checkout of MartinXM/GAP)')
    print('loadavg before:', open('/proc/loadavg').read().strip(), flush=True)
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}', flush=True)
    nargs = dict(num_class=60, num_point=25, num_person=2, graph='graph.ntu_rgb_d.Graph',
                graph_args=dict(labeling_mode='spatial'))
    torch.manual_seed(0)
    our_gap = ours.Model_lst_4part(**nargs, head=['ViT-B/32'], k=8)
    our_plain = ours.Model(**nargs)

    def builders(up):
        return (up.Model_lst_4part(**nargs, head=['ViT-B/32'], k=8), up.Model(**nargs))

    up_mod, (up_gap, up_plain), graph_file = build_upstream(builders)
    print('upstream model file:', up_mod.__file__, '| upstream graph package:', graph_file)
    print('ours model file:', ours.__file__, '| ours graph package:', sys.modules['graph'].__file__)
    assert up_mod.__file__.startswith(UP) and graph_file.startswith(UP)
    assert ours.__file__.startswith(MAIN) and sys.modules['graph'].__file__.startswith(MAIN)
    print('A_vector (k=8) max abs diff upstream vs ours:',
          (up_gap.A_vector - our_gap.A_vector.cpu()).abs().max().item())
    print('param counts upstream/ours: GAP', sum(p.numel() for p in up_gap.parameters()),
          sum(p.numel() for p in our_gap.parameters()), '| plain',
          sum(p.numel() for p in up_plain.parameters()),
          sum(p.numel() for p in our_plain.parameters()), flush=True)

    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, 64, 25, 2, generator=g)
    compare(f'Model_lst_4part (batch {args.batch}, T=64)', up_gap, our_gap, x)
    compare(f'Model (plain CTR-GCN, batch {args.batch}, T=64)', up_plain, our_plain, x)

    # NW-UCLA size: the training batch of config/ucla (16 x 52 frames x 20 joints x 1 person)
    uargs = dict(num_class=10, num_point=20, num_person=1, graph='graph.ucla.Graph',
                 graph_args=dict(labeling_mode='spatial'))
    torch.manual_seed(0)
    our_ucla = ours.Model_lst_4part_ucla(**uargs, head=['ViT-B/32'], k=6)
    _, (up_ucla,), _ = build_upstream(lambda up: (up.Model_lst_4part_ucla(**uargs, head=['ViT-B/32'], k=6),))
    xu = torch.randn(args.ucla_batch, 3, 52, 20, 1, generator=g)
    compare(f'Model_lst_4part_ucla (batch {args.ucla_batch}, T=52)', up_ucla, our_ucla, xu)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f'process: user {ru.ru_utime:.1f} s, sys {ru.ru_stime:.1f} s, maxrss {ru.ru_maxrss / 1024:.0f} MiB')
    print('loadavg after:', open('/proc/loadavg').read().strip(), flush=True)


if __name__ == '__main__':
    main()
