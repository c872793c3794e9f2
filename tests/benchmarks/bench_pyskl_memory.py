"""pyskl annotation pickles: memory per process with the memory-mapped store (feeders/pyskl.py).

    .venv/bin/python tests/benchmarks/bench_pyskl_memory.py [--gb 1.0] [--readers 4] [--protocol 2]

Writes a synthetic NTU-like 3D pickle into a temporary folder under /tmp (--gb GB of float16
keypoints: 25 joints x 3, frames ~ N(80, 40) clipped to 20..300, 40% of the samples two bodies;
pickled with --protocol, mmcv's 2 by default), then runs, each in a fresh process:

    bare      python with feeders.pyskl imported (the floor every row includes)
    first     PysklPickle(...) with no store: reads the pickle, writes the store; then every item
    reuse     the same with the store there: memory-maps it; then every item
    reader k  --readers such processes at once, each reading every item

and prints per process: seconds to open, seconds to read every item, then from /proc/self
RssAnon (private heap), Pss (resident pages, shared ones split among the processes mapping them),
Pss_File (its share of the mapped store) and VmHWM (peak resident). Everything it wrote is
deleted at the end.
"""
import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

CHILD = '''
import json, os, sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
from feeders.pyskl import PysklPickle

def memory():
    out = {{}}
    with open('/proc/self/status') as f:
        for line in f:
            key, _, value = line.partition(':')
            if key in ('RssAnon', 'VmHWM'):
                out[key] = int(value.split()[0]) / 1024
    with open('/proc/self/smaps_rollup') as f:
        for line in f:
            key, _, value = line.partition(':')
            if key in ('Pss', 'Pss_File', 'Pss_Anon'):
                out[key] = int(value.split()[0]) / 1024
    return out

phase = {phase!r}
row = {{'phase': phase}}
if phase != 'bare':
    start = time.perf_counter()
    source = PysklPickle({pkl!r}, 'train')
    row['open_s'] = time.perf_counter() - start
    row['after_open'] = memory()
    start = time.perf_counter()
    total = 0.0
    for i in range(len(source)):
        total += float(source.sample(i)[0, 0, 0, 0])
    row['read_s'] = time.perf_counter() - start
    row['items'] = len(source)
row['end'] = memory()
print(json.dumps(row))
'''


def make_pickle(path, gb, protocol, seed=0):
    """A pyskl-format 3D pickle with about `gb` GB of float16 keypoints; returns (samples, bytes)."""
    rng = np.random.default_rng(seed)
    pool = rng.normal(0, 1, 1 << 25).astype(np.float16)  # 64 MiB the samples are cut from
    annotations, total, i = [], 0, 0
    while total < gb * 1e9:
        bodies = 2 if rng.random() < 0.4 else 1
        frames = int(np.clip(rng.normal(80, 40), 20, 300))
        n = bodies * frames * 25 * 3
        start = int(rng.integers(0, len(pool) - n))
        annotations.append({'frame_dir': f'S{i // 1000:03d}C001P001R001A{i % 1000:03d}', 'label': int(i % 120),
                            'total_frames': frames,
                            'keypoint': pool[start:start + n].reshape(bodies, frames, 25, 3)})
        total += n * 2
        i += 1
    names = [a['frame_dir'] for a in annotations]
    cut = len(names) * 3 // 5
    with open(path, 'wb') as f:
        pickle.dump({'split': {'train': names[:cut], 'val': names[cut:]}, 'annotations': annotations}, f,
                    protocol=protocol)
    return len(annotations), total


def child(phase, pkl, env):
    code = CHILD.format(repo=str(REPO), phase=phase, pkl=str(pkl))
    return subprocess.Popen([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE, text=True)


def result(proc):
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f'a child failed (exit {proc.returncode})')
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--gb', type=float, default=1.0, help='GB of float16 keypoints in the pickle')
    parser.add_argument('--readers', type=int, default=4, help='concurrent reader processes')
    parser.add_argument('--protocol', type=int, default=2, help='pickle protocol (mmcv writes 2)')
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix='bench_pyskl_', dir='/tmp'))
    env = dict(os.environ, OMP_NUM_THREADS='1', GAP_CACHE_DIR=str(folder / 'cache'))
    try:
        pkl = folder / 'ntu_like_3danno.pkl'
        start = time.perf_counter()
        samples, keypoint_bytes = make_pickle(pkl, args.gb, args.protocol)
        print(f'pickle: {samples} samples, {keypoint_bytes / 2**20:.0f} MiB float16 keypoints, '
              f'{pkl.stat().st_size / 2**20:.0f} MiB on disk (protocol {args.protocol}), '
              f'written in {time.perf_counter() - start:.0f} s')
        rows = [result(child('bare', pkl, env)), result(child('first', pkl, env))]
        store = next(pkl.with_name(pkl.name + '.gapstore').iterdir())
        size = sum(p.stat().st_size for p in store.iterdir())
        rows.append(result(child('reuse', pkl, env)))
        readers = [child('reader', pkl, env) for _ in range(args.readers)]
        rows += [dict(result(p), phase=f'reader {k + 1}/{args.readers}') for k, p in enumerate(readers)]
        print(f'store: {size / 2**20:.0f} MiB ({store.name}); train split: {rows[1]["items"]} items; MiB per process:')
        header = f'{"phase":<12} {"open s":>7} {"read s":>7} | {"after open: RssAnon":>19} {"Pss":>6} | ' \
                 f'{"after all items: RssAnon":>24} {"Pss":>6} {"Pss_File":>8} | {"VmHWM":>6}'
        print(header)
        print('-' * len(header))
        for r in rows:
            opened = r.get('after_open', {})
            end = r['end']
            print(f'{r["phase"]:<12} {r.get("open_s", 0):>7.1f} {r.get("read_s", 0):>7.1f} | '
                  f'{opened.get("RssAnon", 0):>19.0f} {opened.get("Pss", 0):>6.0f} | '
                  f'{end["RssAnon"]:>24.0f} {end["Pss"]:>6.0f} {end["Pss_File"]:>8.0f} | {end["VmHWM"]:>6.0f}')
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
