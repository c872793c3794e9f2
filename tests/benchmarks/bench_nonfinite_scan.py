"""What the NaN/inf scan of a prepared NTU file costs when a feeder opens it.

    .venv/bin/python tests/benchmarks/bench_nonfinite_scan.py [--samples 8000] [--repeat 2] [--no-h5]

Writes an NTU-shaped npz in /tmp (x_train N x 300 x 150 float32, N=8000: 1.44 GB; true lengths
~ NTU's, zeros after), optionally its .h5 (feeders/convert_h5.py), then times in a fresh process
each: the scan the feeders run (`check_finite`: plain reads through one 8 MiB buffer) and, for
comparison, np.isfinite over blocks of the memory map; each with the file's pages dropped from the
page cache first (cold; posix_fadvise, only this file) and again right after (warm). Also: peak
resident memory added by the scan (VmHWM after - VmRSS before, file-backed pages included) and the
cost of a per-item check against a test-path item. Each timing is taken --repeat times, in turn
(on a VM the first "cold" read of a new file can be slower than later ones). Deletes the files.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_feeder_io import drop_cache  # noqa: E402

T, FEATURES = 300, 150


def status_kib(*keys):
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            key = line.split(':')[0]
            if key in keys:
                out[key] = int(line.split()[1])
    return out


def make_npz(path, samples, seed=0):
    """Streamed with the prep's own writer: never the whole array in memory."""
    from data.arraystore import NpzStreamWriter
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.normal(80, 40, size=samples), 20, T).astype(int)
    pool = rng.normal(size=(T, FEATURES)).astype(np.float32)

    def rows(n_samples, offset):
        for i in range(n_samples):
            x = np.zeros((T, FEATURES), np.float32)
            n = lengths[(offset + i) % samples]
            x[:n] = pool[:n]
            if i % 2:
                x[:, 75:] = 0
            yield x

    n_test = max(1, samples // 10)
    y = np.eye(60)[rng.integers(0, 60, size=samples + n_test)]
    w = NpzStreamWriter(path)
    w.add_rows('x_train', (samples, T, FEATURES), np.float32, rows(samples, 0))
    w.add('y_train', y[:samples])
    w.add_rows('x_test', (n_test, T, FEATURES), np.float32, rows(n_test, samples))
    w.add('y_test', y[samples:])
    w.close()


def child(method, path, split):
    """One timing in this (fresh) process; prints a JSON line."""
    from feeders.storage import first_nonfinite_row, npz_member_memmap, open_split
    source = open_split(path, split)
    before = status_kib('VmRSS')['VmRSS']
    start = time.perf_counter()
    if method == 'check_finite':
        source.check_finite()
    elif method == 'memmap':  # the alternative: np.isfinite over blocks of a memory map
        mm = npz_member_memmap(path, f'x_{split}')
        flat = mm.reshape(len(mm), -1)

        def read_rows(s, out):
            out[...] = flat[s:s + len(out)]
        assert first_nonfinite_row(read_rows, len(mm), flat.shape[1], mm.dtype) is None
    seconds = time.perf_counter() - start
    after = status_kib('VmHWM', 'RssFile')
    print(json.dumps({'seconds': seconds, 'peak_added_mib': (after['VmHWM'] - before) / 1024,
                      'rss_file_after_mib': after['RssFile'] / 1024}))


def run_child(method, path, split, cold):
    if cold:
        drop_cache(path)
    out = subprocess.run([sys.executable, __file__, '--child', method, str(path), split],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def per_item(path):
    """us per item of a test-path __getitem__, and of np.isfinite(...).all() on the raw sample."""
    from feeders.feeder_ntu import Feeder
    feeder = Feeder(path, split='test', window_size=64, p_interval=[0.95])
    n = min(len(feeder), 300)
    start = time.perf_counter()
    for i in range(n):
        feeder[i]
    item = (time.perf_counter() - start) / n * 1e6
    raw = [feeder.source.read(i) for i in range(n)]
    start = time.perf_counter()
    for x in raw:
        np.isfinite(x).all()
    check = (time.perf_counter() - start) / n * 1e6
    return item, check


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--samples', type=int, default=8000)
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--no-h5', action='store_true')
    p.add_argument('--child', nargs=3, metavar=('METHOD', 'PATH', 'SPLIT'), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(*args.child)
    folder = Path(tempfile.mkdtemp(prefix='bench_nonfinite_', dir='/tmp'))
    npz = folder / 'NTU60_CS.npz'
    try:
        start = time.perf_counter()
        make_npz(npz, args.samples)
        print(f'npz: {args.samples} x {T} x {FEATURES} float32 train, {npz.stat().st_size / 1e9:.2f} GB '
              f'on disk, written in {time.perf_counter() - start:.0f} s')
        gb = args.samples * T * FEATURES * 4 / 1e9
        rows = []
        for _ in range(args.repeat):
            for method in ('check_finite', 'memmap'):
                for cold in (True, False):
                    r = run_child(method, npz, 'train', cold)
                    rows.append((f'npz {method}', 'cold' if cold else 'warm', r, gb))
        if not args.no_h5:
            from feeders import convert_h5
            h5 = folder / 'NTU60_CS.h5'
            start = time.perf_counter()
            convert_h5.convert(npz, h5, log=lambda *_: None)
            print(f'h5: {h5.stat().st_size / 1e9:.2f} GB, converted in {time.perf_counter() - start:.0f} s')
            h5_gb = h5.stat().st_size / 1e9
            for _ in range(args.repeat):
                for cold in (True, False):
                    rows.append(('h5 check_finite', 'cold' if cold else 'warm',
                                 run_child('check_finite', h5, 'train', cold), h5_gb))
        print(f'{"scan":<20}{"cache":<6}{"seconds":>9}{"GB/s":>7}{"peak RSS added":>16}{"RssFile after":>15}')
        for name, cache, r, size in rows:
            print(f'{name:<20}{cache:<6}{r["seconds"]:>9.2f}{size / r["seconds"]:>7.2f}'
                  f'{r["peak_added_mib"]:>12.0f} MiB{r["rss_file_after_mib"]:>11.0f} MiB')
        item, check = per_item(npz)
        print(f'per item: test-path __getitem__ {item:.0f} us, np.isfinite(sample).all() {check:.1f} us')
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


if __name__ == '__main__':
    main()
