"""NTU RGB+D raw `.skeleton` files -> a pyskl-format 3D annotation pickle, denoised as this
project's npz preparation denoises them.

    python data/convert_ntu_pyskl.py --dataset ntu60 --raw-root data/nturgbd_raw --out ntu60.pkl
        [--workers N] [--skip-bad]

Writes `{'split': {...}, 'annotations': [...]}`:
  split        NTU60: xsub_train, xsub_val, xview_train, xview_val; NTU120: xsub_*, xset_* (the
               benchmarks of data/splits.py: cross-subject, cross-view, cross-setup), each a list
               of frame_dir names in the order of the npz files' rows;
  annotations  one per usable sample (the missing-skeleton list left out), sorted by name:
               `frame_dir` the sample name (S001C001P001R001A001), `label` the action - 1,
               `total_frames` T and `keypoint` float32 (M, T, 25, 3), x, y, z in metres.

The samples are the npz route's up to its last step: the files are read by data/skeleton_io.py
and the actors picked and laid out by data/denoise.py (M = 1 or 2 actors, frames where no kept
body is present dropped, a body absent from a frame zero there), but not translated and not
padded: pyskl stores 3D skeletons uncentred, and feeders/feeder_pyskl.py centres layout 'ntu'
data as the npz route's translation does. So the two routes give the same items
(tests/test_pyskl_npz_parity.py), except that an NTU120 npz file fills a one-actor sample's
second slot with a copy of the actor where this pickle keeps M = 1 (the feeder pads zeros, as
NTU60's npz does).

Why it exists: pyskl's own ntu60_3danno.pkl / ntu120_3danno.pkl are denoised by pyskl's rules
(README, Data preparation, says where they differ), so their samples are not the ones the paper
trained on; this pickle holds those, in pyskl's format. Keypoints are float32 because float16
(pyskl's files) rounds depths of 2-4 m to steps of 2 mm; the store keeps them exactly. The whole
pickle is built in memory (900 bytes per body and frame), then written atomically (a temporary
file, then a rename): an interrupted run leaves no partial pickle.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ''):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import pipeline  # noqa: E402
from data.cli import DEFAULT_RAW  # noqa: E402
from data.splits import parse_name, split_indices  # noqa: E402
from data.translate import as_bodies  # noqa: E402
from torchlight import io  # noqa: E402
from torchlight.errors import UserError, run_cli  # noqa: E402

# data/splits.py's benchmark names -> pyskl's split-name prefixes
SPLIT_PREFIX = {'CS': 'xsub', 'CV': 'xview', 'CSub': 'xsub', 'CSet': 'xset'}


def annotation(name, seq):
    """The pyskl annotation of a denoised (T, 75 | 150) sample."""
    T = len(seq)
    keypoint = np.ascontiguousarray(as_bodies(seq), dtype=np.float32)
    return {'frame_dir': name, 'label': parse_name(name)['action'] - 1, 'total_frames': int(T),
            'keypoint': keypoint}


def splits(names, dataset):
    """pyskl's split dict: per benchmark its train and val names, in the npz rows' order."""
    out = {}
    for bench in dataset.benchmarks:
        train, test = split_indices(names, bench)
        prefix = SPLIT_PREFIX[bench.name]
        out[f'{prefix}_train'] = [names[i] for i in train]
        out[f'{prefix}_val'] = [names[i] for i in test]
    return out


def convert(raw_root, dataset, workers=None, skip_bad=False, log=print):
    """The pyskl annotation dict of every usable raw file under `raw_root`."""
    dataset = pipeline.get_dataset(dataset)
    samples = pipeline.find_samples(raw_root, dataset, log)
    # the npz route's own worker: read the file, denoise it (one finished sample per file)
    results = pipeline._pool_map(pipeline._parse_denoise_job, samples, workers or pipeline.default_workers())
    annotations, bad, t0 = [], [], time.time()
    step = max(1000, len(samples) // 10)
    try:
        for done, (name, result, messages, error) in enumerate(results, 1):
            for m in messages:
                log(m)
            if error is None and len(result[0]) == 0:  # every frame cancelled out: nothing to keep
                error = f'{name}: no frame left after denoising'
            if error is not None:
                if not skip_bad:
                    raise UserError(error + ' (pass --skip-bad to leave it out and go on)')
                log(f'skipped bad file: {error}')
                bad.append(error)
                continue
            annotations.append(annotation(name, result[0]))
            if done % step == 0:
                log(f'read+denoise: {done:,}/{len(samples):,} ({time.time() - t0:.0f} s)')
    finally:
        results.close()  # on an error, stops the worker pool at once
    if not annotations:
        raise UserError(f'no sample left to convert ({len(bad)} bad files)')
    if bad:
        log(f'{len(bad)} bad files left out')
    names = [a['frame_dir'] for a in annotations]
    return {'split': splits(names, dataset), 'annotations': annotations}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', choices=sorted(pipeline.DATASETS), default='ntu60',
                        help='which NTU set and benchmarks (default: ntu60)')
    parser.add_argument('--raw-root', type=Path, default=DEFAULT_RAW,
                        help='folder holding nturgb+d_skeletons/ (and nturgb+d_skeletons120/ for NTU120); '
                             f'default {DEFAULT_RAW}')
    parser.add_argument('--out', required=True, type=Path, help='the pickle to write')
    parser.add_argument('--workers', type=int, default=pipeline.default_workers(),
                        help='worker processes (default: all cores)')
    parser.add_argument('--skip-bad', action='store_true',
                        help='leave malformed .skeleton files out (each logged) instead of stopping')
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise UserError(f'--workers must be at least 1, got {args.workers}')
    if args.out.is_dir():
        raise UserError(f'--out {args.out} is a folder; give the pickle file to write')
    data = convert(args.raw_root, args.dataset, args.workers, args.skip_bad)
    io.save_pickle(args.out, data)
    two = sum(len(a['keypoint']) == 2 for a in data['annotations'])
    sizes = ', '.join(f'{name} {len(names):,}' for name, names in data['split'].items())
    print(f'wrote {args.out}: {len(data["annotations"]):,} samples ({two:,} with two actors; {sizes}), '
          "layout ntu, 3D")
    return 0


if __name__ == '__main__':
    run_cli(main)
