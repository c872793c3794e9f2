"""The NTU preparation steps, streamed over all cores.

1. `extract_raw`: parse every usable `.skeleton` file -> <out>/raw_data/ (each body's joints).
2. `denoise_raw`: choose and lay out the actors -> <out>/denoised_data/ ((frames, 75|150) each).
3. `write_benchmarks`: centre, pad and split -> <out>/NTU60_CS.npz ... (upstream format).
`extract_denoised` fuses 1 and 2 (parse and denoise in the same worker, no raw_data/), which is what
`prepare` (the one-shot command) runs. Workers return one finished array per file; the main process
appends it to a flat file on disk (`arraystore`), so memory stays flat whatever the dataset size.
"""
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from torchlight.errors import UserError

from .arraystore import NpzStreamWriter, StoreReader, StoreWriter
from .denoise import denoised_sequence
from .skeleton_io import Body, Skeleton, read_skeleton
from .splits import DATASETS, one_hot, parse_name, split_indices
from .translate import to_150, translate

RAW_DIR, DENOISED_DIR, BAD_LIST = 'raw_data', 'denoised_data', 'bad_skeletons.txt'


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def get_dataset(key):
    if key not in DATASETS:
        raise UserError(f'unknown dataset {key!r}; expected one of {", ".join(DATASETS)}')
    return DATASETS[key]


# ---------------------------------------------------------------------------------------- listing
def find_samples(raw_root, dataset, log=print):
    """[(name, path)] of the usable samples under `raw_root`, sorted by name."""
    raw_root = Path(raw_root)
    folders = [raw_root / f for f in dataset.folders]
    present = [f for f in folders if f.is_dir()]
    if not present:
        expected = ' and '.join(str(f) for f in folders)
        raise UserError(f'raw skeleton folder not found: {expected}; download {dataset.download} '
                        f'and unzip it there (or pass --raw-root)')
    for f in folders:
        if f not in present:
            log(f'warning: {f} not found; preparing only the samples of the other folder')
    found, ignored = {}, 0
    for folder in present:
        for entry in os.scandir(folder):
            if not entry.name.endswith('.skeleton'):
                continue
            name = entry.name[:-len('.skeleton')]
            ids = parse_name(name)
            if ids is None or not (1 <= ids['setup'] <= dataset.max_setup
                                   and 1 <= ids['action'] <= dataset.num_class):
                ignored += 1
                continue
            found[name] = entry.path
    missing = dataset.missing() & found.keys()
    usable = sorted(found.keys() - missing)
    log(f'{dataset.title}: found {len(found):,} .skeleton files in '
        f'{", ".join(str(f) for f in present)} (the full dataset has {dataset.full_files:,} files, '
        f'{dataset.full_usable:,} usable); {len(missing):,} on the missing-skeleton list; '
        f'{len(usable):,} samples to prepare')
    if ignored:
        log(f'ignored {ignored:,} files whose names are not {dataset.title} sample names '
            f'(SsssCcccPpppRrrrAaaa, setups 1-{dataset.max_setup}, actions 1-{dataset.num_class})')
    if not usable:
        raise UserError(f'no usable .skeleton files in {", ".join(str(f) for f in present)}')
    return [(name, found[name]) for name in usable]


# ---------------------------------------------------------------------------------------- workers
def _pool_map(func, items, workers, initializer=None, initargs=()):
    """Ordered, streamed map: in-process for one worker, else over a fork/spawn pool."""
    if workers <= 1 or len(items) <= 1:
        if initializer:
            initializer(*initargs)
        yield from map(func, items)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context('fork' if 'fork' in methods else None)
    chunk = max(1, min(64, len(items) // (workers * 8)))
    with ctx.Pool(workers, initializer=initializer, initargs=initargs) as pool:
        yield from pool.imap(func, items, chunksize=chunk)


def _worker_result(item, make):
    """A worker's (name, result, log messages, error): a bad file comes back as its one-line error
    (the parent stops or skips it), anything else as make(skeleton, messages)."""
    name, path = item
    try:
        ske = read_skeleton(path, name)
    except UserError as e:
        return name, None, [], str(e)
    messages = []
    return name, make(ske, messages), messages, None


def _parse_job(item):
    return _worker_result(item, lambda ske, _: (ske.num_frames, ske.dropped_frames,
                                                [(b.id, b.start, b.joints) for b in ske.bodies]))


def _parse_denoise_job(item):
    return _worker_result(item, lambda ske, messages: (denoised_sequence(ske, messages.append),
                                                       ske.dropped_frames))


_RAW = {}


def _open_raw(folder):
    _RAW['store'] = StoreReader(folder, 'get_raw_skes_data.py')


def finite(array, store, name):
    """`array`, read from `store` for sample `name`; a UserError if it holds NaN or inf (only a
    store written by an older version or damaged since can: the reader refuses them)."""
    if not np.isfinite(array).all():
        raise UserError(f'{store.folder / "values.npy"}: sample {name} holds NaN or infinite values; '
                        'remake the store from the raw .skeleton files')
    return array


def _denoise_job(item):
    name, num_frames, bodies = item
    store = _RAW['store']
    ske = Skeleton(name, [Body(i, finite(store.read(o, n * 75), store, name).reshape(n, 25, 3), s)
                          for i, s, o, n in bodies], num_frames, 0)
    messages = []
    return name, (denoised_sequence(ske, messages.append), 0), messages, None


class _Collector:
    """Consume worker results: log messages, stop or record bad files, count progress."""

    def __init__(self, out_dir, total, skip_bad, log, what):
        self.out_dir, self.total, self.skip_bad, self.log, self.what = out_dir, total, skip_bad, log, what
        self.bad, self.done, self.t0 = [], 0, time.time()
        self.step = max(1000, total // 10)

    def __call__(self, results):
        try:
            yield from self._consume(results)
        finally:
            results.close()  # on an error, stops the worker pool at once

    def _consume(self, results):
        for name, result, messages, error in results:
            for m in messages:
                self.log(m)
            self.done += 1
            if self.done % self.step == 0:
                self.log(f'{self.what}: {self.done:,}/{self.total:,} ({time.time() - self.t0:.0f} s)')
            if error is not None:
                if not self.skip_bad:
                    raise UserError(error + ' (pass --skip-bad to record it and go on)')
                self.log(f'skipped bad file: {error}')
                self.bad.append(error)
                continue
            yield name, result

    def finish(self):
        bad_file = Path(self.out_dir) / BAD_LIST
        if self.bad:
            bad_file.write_text('\n'.join(self.bad) + '\n')
            self.log(f'{len(self.bad)} bad files skipped; listed in {bad_file}')
        elif bad_file.exists():
            bad_file.unlink()
        if self.done - len(self.bad) == 0:
            raise UserError(f'no sample left to prepare ({len(self.bad)} bad files)')
        self.log(f'{self.what}: {self.done - len(self.bad):,} samples in {time.time() - self.t0:.1f} s')


# ------------------------------------------------------------------------------------------ steps
def extract_raw(raw_root, out_dir, dataset, workers=None, skip_bad=False, log=print):
    """Step 1: parse the raw files into <out_dir>/raw_data/ (bodies' joints, ids, starts)."""
    dataset = get_dataset(dataset)
    samples = find_samples(raw_root, dataset, log)
    out_dir = Path(out_dir)
    writer = StoreWriter(out_dir / RAW_DIR)
    collect = _Collector(out_dir, len(samples), skip_bad, log, 'read')
    names, frames, dropped = [], [], []
    b_sample, b_id, b_start, b_offset, b_len = [], [], [], [], []
    results = _pool_map(_parse_job, samples, workers or default_workers())
    try:
        for name, (num_frames, n_dropped, bodies) in collect(results):
            for body_id, start, joints in bodies:
                b_sample.append(len(names))
                b_id.append(body_id)
                b_start.append(start)
                b_len.append(len(joints))
                b_offset.append(writer.add(joints))
            names.append(name)
            frames.append(num_frames)
            dropped.append(n_dropped)
        collect.finish()
    except BaseException:
        writer.abort()
        raise
    writer.close(names=np.array(names), num_frames=np.array(frames), dropped_frames=np.array(dropped),
                 body_sample=np.array(b_sample, dtype=np.int64), body_id=np.array(b_id),
                 body_start=np.array(b_start, dtype=np.int64), body_offset=np.array(b_offset, dtype=np.int64),
                 body_length=np.array(b_len, dtype=np.int64))
    _log_dropped(dropped, log)
    log(f'wrote {out_dir / RAW_DIR}')


def denoise_raw(out_dir, workers=None, log=print):
    """Step 2: read <out_dir>/raw_data/, write <out_dir>/denoised_data/."""
    out_dir = Path(out_dir)
    raw = StoreReader(out_dir / RAW_DIR, 'get_raw_skes_data.py')
    ix = raw.index
    per_sample = [[] for _ in ix['names']]
    for s, i, st, o, n in zip(ix['body_sample'], ix['body_id'], ix['body_start'],
                              ix['body_offset'], ix['body_length']):
        per_sample[s].append((str(i), int(st), int(o), int(n)))
    items = [(str(name), int(nf), bodies)
             for name, nf, bodies in zip(ix['names'], ix['num_frames'], per_sample)]
    log(f'denoising {len(items):,} samples from {raw.folder}')
    raw.close()
    results = _pool_map(_denoise_job, items, workers or default_workers(),
                        initializer=_open_raw, initargs=(str(out_dir / RAW_DIR),))
    _write_denoised(out_dir, results, len(items), False, log, 'denoise')


def extract_denoised(raw_root, out_dir, dataset, workers=None, skip_bad=False, log=print):
    """Steps 1+2 fused: parse and denoise each file in a worker -> <out_dir>/denoised_data/."""
    dataset = get_dataset(dataset)
    samples = find_samples(raw_root, dataset, log)
    results = _pool_map(_parse_denoise_job, samples, workers or default_workers())
    _write_denoised(Path(out_dir), results, len(samples), skip_bad, log, 'read+denoise')


def _write_denoised(out_dir, results, total, skip_bad, log, what):
    writer = StoreWriter(out_dir / DENOISED_DIR)
    collect = _Collector(out_dir, total, skip_bad, log, what)
    names, frames, widths, offsets, dropped = [], [], [], [], []
    try:
        for name, (seq, n_dropped) in collect(results):
            names.append(name)
            frames.append(seq.shape[0])
            widths.append(seq.shape[1])
            offsets.append(writer.add(seq))
            dropped.append(n_dropped)
        collect.finish()
    except BaseException:
        writer.abort()
        raise
    writer.close(names=np.array(names), frames=np.array(frames, dtype=np.int64),
                 widths=np.array(widths, dtype=np.int64), offsets=np.array(offsets, dtype=np.int64))
    if any(dropped):
        _log_dropped(dropped, log)
    log(f'wrote {out_dir / DENOISED_DIR} ({sum(w == 150 for w in widths):,} two-actor samples)')


def _log_dropped(dropped, log):
    n = sum(1 for d in dropped if d)
    if n:
        log(f'{n:,} samples had frames with no body (dropped, {sum(dropped):,} frames in all)')


def write_benchmarks(out_dir, dataset, log=print):
    """Step 3: centre each sample on actor 1, pad to the longest, write each benchmark's npz."""
    dataset = get_dataset(dataset)
    out_dir = Path(out_dir)
    store = StoreReader(out_dir / DENOISED_DIR, 'get_raw_denoised_data.py')
    ix = store.index
    names = [str(n) for n in ix['names']]
    labels = np.array([parse_name(n)['action'] - 1 for n in names], dtype=np.int64)
    max_frames = int(ix['frames'].max())

    def rows(indices):
        for i in indices:
            n, w, o = int(ix['frames'][i]), int(ix['widths'][i]), int(ix['offsets'][i])
            seq = finite(translate(store.read(o, n * w).reshape(n, w)), store, names[i])
            seq = to_150(seq, dataset.repeat_single)
            yield seq
            if n < max_frames:
                yield np.zeros((max_frames - n, 150), dtype=np.float32)

    written = []
    for bench in dataset.benchmarks:
        train, test = split_indices(names, bench)
        path = out_dir / dataset.output_name(bench)
        npz = NpzStreamWriter(path)
        try:
            for part, idx in (('train', train), ('test', test)):
                npz.add_rows(f'x_{part}', (len(idx), max_frames, 150), np.float32, rows(idx))
                npz.add(f'y_{part}', one_hot(labels[idx], dataset.num_class))
        except BaseException:
            npz.abort()
            store.close()
            raise
        npz.close()
        log(f'wrote {path}: {len(train):,} train, {len(test):,} test samples, {max_frames} frames')
        written.append(path)
    store.close()
    return written


def prepare(raw_root, out_dir, dataset, workers=None, skip_bad=False, log=print):
    """The whole pipeline in one go (steps 1 and 2 fused)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    extract_denoised(raw_root, out_dir, dataset, workers, skip_bad, log)
    return write_benchmarks(out_dir, dataset, log)
