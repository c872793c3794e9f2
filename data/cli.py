"""Command lines of the preparation scripts (data/ntu*/..., data/prepare_ntu.py)."""
import argparse
from pathlib import Path

from torchlight.errors import UserError, run_cli

from . import pipeline

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO / 'data' / 'nturgbd_raw'
DEFAULT_OUT = {'ntu60': REPO / 'data' / 'ntu', 'ntu120': REPO / 'data' / 'ntu120'}

STEPS = {
    'raw': 'step 1/3: parse the raw .skeleton files into <out-dir>/raw_data/',
    'denoise': 'step 2/3: pick and lay out the actors of each sample into <out-dir>/denoised_data/',
    'translate': 'step 3/3: centre, pad and split into the benchmark npz files in <out-dir>',
    'all': 'all three steps in one go: raw .skeleton files -> benchmark npz files in <out-dir>',
}


def parser(step, dataset=None):
    p = argparse.ArgumentParser(description=f'NTU RGB+D preparation, {STEPS[step]}.')
    if dataset is None:
        p.add_argument('--dataset', choices=sorted(pipeline.DATASETS), default='ntu60')
    reads_raw = step in ('raw', 'all')
    p.add_argument('--raw-root', type=Path, default=DEFAULT_RAW,
                   help='folder holding nturgb+d_skeletons/ (and nturgb+d_skeletons120/ for NTU120); '
                        f'default {DEFAULT_RAW}' + ('' if reads_raw else ' (not read by this step)'))
    p.add_argument('--out-dir', type=Path, default=None,
                   help='where the intermediate folders and the npz files go; default '
                        + (str(DEFAULT_OUT[dataset]) if dataset else 'data/ntu or data/ntu120'))
    p.add_argument('--workers', type=int, default=pipeline.default_workers(),
                   help='worker processes (default: all cores)')
    if reads_raw:
        p.add_argument('--skip-bad', action='store_true',
                       help='record malformed .skeleton files in <out-dir>/bad_skeletons.txt and go on '
                            'instead of stopping')
    return p


def run(step, dataset=None, argv=None):
    args = parser(step, dataset).parse_args(argv)
    dataset = dataset or args.dataset
    out_dir = args.out_dir or DEFAULT_OUT[dataset]
    if args.workers < 1:
        raise UserError(f'--workers must be at least 1, got {args.workers}')
    made = not out_dir.exists()
    try:
        if step in ('raw', 'all'):
            fn = pipeline.extract_raw if step == 'raw' else pipeline.prepare
            fn(args.raw_root, out_dir, dataset, args.workers, args.skip_bad)
        elif step == 'denoise':
            pipeline.denoise_raw(out_dir, args.workers)
        else:
            pipeline.write_benchmarks(out_dir, dataset)
    except BaseException:  # the steps leave no half-written file; nor an out-dir made for nothing
        if made and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


def main(step, dataset=None, argv=None):
    run_cli(run, step, dataset, argv)
