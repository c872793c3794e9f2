"""NTU feeder storage: upstream-style full load vs npz memory map vs HDF5, side by side.

    .venv/bin/python tests/benchmarks/bench_feeder_io.py [--samples 3000] [--reads 1000]

Writes a synthetic NTU-shaped npz (N x 300 x 150 float32, true lengths ~ NTU's, half the samples
one-actor), converts it to .h5 (plain and lzf), then for each format prints: size on disk, setup
time, resident anonymous memory added (what a worker cannot give back), and random-access time
per item (raw read, and the full test-path item) with a cold page cache (the file's pages dropped
with posix_fadvise before the run) and a warm one.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from feeders import convert_h5  # noqa: E402
from feeders.feeder_ntu import Feeder  # noqa: E402


def rss_anon_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('RssAnon:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def drop_cache(path):
    """Evict one file's pages from the page cache (only this file; needs no privileges)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def make_npz(path, samples, frames, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.normal(80, 40, size=samples), 20, frames).astype(int)
    x = np.zeros((samples, frames, 150), dtype=np.float32)
    for i, n in enumerate(lengths):
        x[i, :n, :75 if i % 2 else 150] = rng.normal(size=(n, 75 if i % 2 else 150))
    y = np.eye(60, dtype=np.float64)[rng.integers(0, 60, size=samples)]
    half = samples // 2
    np.savez(path, x_train=x[:half], y_train=y[:half], x_test=x[half:], y_test=y[half:])
    return lengths.mean()


def per_item_us(fn, order):
    start = time.perf_counter()
    for i in order:
        fn(int(i))
    return (time.perf_counter() - start) / len(order) * 1e6


def measure(path, order, upstream=False):
    """(setup s, anon MiB added, cold raw us, warm raw us, warm item us) for one file."""
    drop_cache(path)
    before = rss_anon_mib()
    start = time.perf_counter()
    feeder = Feeder(path, split='test', window_size=64, p_interval=[0.95])
    if upstream:  # what upstream does: the whole split in memory, in every process
        with np.load(path) as npz:
            feeder.source = InMemory(npz['x_test'], feeder.source)
    setup = time.perf_counter() - start
    cold = per_item_us(feeder.source.read, order)
    warm = per_item_us(feeder.source.read, order)
    item = per_item_us(feeder.__getitem__, order)
    return setup, rss_anon_mib() - before, cold, warm, item


class InMemory:
    """A feeder source over an array already in memory (upstream's np.load)."""

    def __init__(self, x, like):
        self.x, self.num_frames, self.label = x, like.num_frames, like.label

    def read(self, i):
        return np.array(self.x[i])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--samples', type=int, default=3000)
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--reads', type=int, default=1000, help='distinct random items read per format')
    parser.add_argument('--dir', help='work folder (default: a temporary one, removed after)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        npz = tmp / 'synthetic.npz'
        mean_len = make_npz(npz, args.samples, args.frames)
        files = {'npz (memmap)': npz}
        for compression in (None, 'lzf'):
            h5 = tmp / f'synthetic_{compression or "plain"}.h5'
            start = time.perf_counter()
            convert_h5.convert(npz, h5, compression=compression, log=lambda *_: None)
            print(f'convert to {h5.name}: {time.perf_counter() - start:.1f} s')
            files[f'h5 ({compression or "no compression"})'] = h5
        n_test = args.samples - args.samples // 2
        # distinct samples, so the cold pass never hits a page it already read
        order = np.random.default_rng(1).permutation(n_test)[:args.reads]
        print(f'\n{args.samples} samples x {args.frames} frames, mean true length {mean_len:.0f}; '
              f'{len(order)} random reads of the {n_test} test samples\n')
        header = (f'{"format":<22}{"disk MiB":>10}{"x smaller":>11}{"setup s":>9}{"anon MiB":>10}'
                  f'{"cold read us":>14}{"warm read us":>14}{"item us":>9}')
        print(header)
        print('-' * len(header))
        rows = [('npz (upstream np.load)', npz, True)] + [(k, v, False) for k, v in files.items()]
        for name, path, upstream in rows:
            setup, anon, cold, warm, item = measure(path, order, upstream)
            size = path.stat().st_size
            print(f'{name:<22}{size / 2**20:>10.1f}{npz.stat().st_size / size:>11.2f}'
                  f'{setup:>9.3f}{anon:>10.1f}'
                  f'{cold:>14.1f}{warm:>14.1f}{item:>9.0f}')
        print('\nanon MiB: resident anonymous memory the setup and reads added to this process '
              '(memory-mapped pages are page cache, shared and reclaimable, so not counted).\n'
              'cold/warm read: one sample out of the file, page cache dropped / kept; item: the '
              'whole test-path __getitem__ (crop, resize to 64) on a warm cache.')


if __name__ == '__main__':
    main()
