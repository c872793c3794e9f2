"""Fuse the test scores of several streams (joint, bone, joint motion, bone motion) and report accuracy.

    python ensemble.py --datasets ntu120/xsub --joint-dir work_dir/ntu120/csub/lst_joint \
        --bone-dir work_dir/ntu120/csub/lst_bone \
        --joint-motion-dir work_dir/ntu120/csub/lst_joint_vel \
        --bone-motion-dir work_dir/ntu120/csub/lst_bone_vel

Each stream's `<dir>/epoch1_test_score.pkl` (written by the final re-test of training, or by
`--phase test --save-score True`) maps sample name -> score vector. Streams are aligned by sample
name, weighted, summed, and compared with the labels upstream reads. Weights as upstream:
four streams 0.8/0.8/0.2/0.2, three (joint, bone, joint motion) 0.6/0.6/0.4, two joint + alpha*bone;
`--weights` sets them for any subset.
"""
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

from feeders.modality import MODALITIES
from torchlight import unpickle
from torchlight.args import ArgumentParser  # argparse whose errors are one-line UserErrors
from torchlight.errors import UserError
from torchlight.metrics import top_k_accuracy

REPO = Path(__file__).resolve().parent

SCORE_FILE = 'epoch1_test_score.pkl'

# The label files upstream's ensemble reads, relative to the repository root.
LABEL_FILES = {
    'ntu/xsub': 'data/ntu/NTU60_CS.npz',
    'ntu/xview': 'data/ntu/NTU60_CV.npz',
    'ntu120/xsub': 'data/ntu120/NTU120_CSub.npz',
    'ntu120/xset': 'data/ntu120/NTU120_CSet.npz',
    'NW-UCLA': 'data/NW-UCLA/split.json',
}

# Stream order is the modality table's: --weights lists weights in this order for the streams given.
STREAMS = tuple(MODALITIES)

# Upstream's weights, by the set of streams given.
UPSTREAM_WEIGHTS = {
    ('joint', 'bone', 'joint_motion', 'bone_motion'): (0.8, 0.8, 0.2, 0.2),
    ('joint', 'bone', 'joint_motion'): (0.6, 0.6, 0.4),
}


# ----------------------------------------------------------------------------- labels

def load_labels(path):
    """Test labels (0-based int64 array) and, when the file has them, the sample names in order.

    .npz: the `y_test` member (one-hot rows as the NTU prep writes them, or integer labels); only
    that member is read. .h5: the `test/label` dataset of feeders/convert_h5.py's file. .json:
    NW-UCLA's split file ({"train": [...], "val": [...]}, the val list is used) or a bare list of
    {"file_name", "label"} records; labels there are 1-based."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'label file not found: {path} (prepare the dataset first, or pass --label-file)')
    suffix = path.suffix.lower()
    if suffix == '.npz':
        return _labels_from_npz(path), None
    if suffix in ('.h5', '.hdf5'):
        return _labels_from_h5(path), None
    if suffix == '.json':
        return _labels_from_json(path)
    raise UserError(f'{path}: unsupported label file, expected .npz (y_test), .h5 or .json (NW-UCLA split)')


def default_label_file(dataset):
    """Upstream's label file for a benchmark; its .h5 conversion when only that is left."""
    path = REPO / LABEL_FILES[dataset]
    converted = path.with_suffix('.h5')
    if not path.exists() and path.suffix == '.npz' and converted.exists():
        return converted
    return path


def _labels_from_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f'{path}: not a readable .npz file ({exc})') from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f'{path}: a single array, not an .npz archive with y_test')
    with archive:  # members load lazily: only y_test is read, never the large x_train/x_test
        if 'y_test' not in archive.files:
            raise UserError(f'{path}: no y_test array (members: {", ".join(archive.files)})')
        try:
            y = archive['y_test']
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f'{path}: cannot read y_test ({exc})') from None
    if y.ndim == 2:   # one-hot rows
        if y.shape[0] and not (y > 0).any(axis=1).all():
            raise UserError(f'{path}: y_test has rows without a positive entry, expected one-hot labels')
        return np.argmax(y, axis=1).astype(np.int64)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    raise UserError(f'{path}: y_test has shape {y.shape} and dtype {y.dtype}, expected one-hot rows or integer labels')


def _labels_from_h5(path):
    import h5py  # only needed for converted NTU data
    try:
        with h5py.File(path, 'r') as f:
            return np.asarray(f['test/label'][()], dtype=np.int64).reshape(-1)
    except KeyError:
        raise UserError(f'{path}: no test/label dataset (not written by feeders/convert_h5.py?)') from None
    except OSError as exc:
        raise UserError(f'{path}: not a readable HDF5 file ({exc})') from None


def _labels_from_json(path):
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f'{path}: not a readable JSON file ({exc})') from None
    records = data.get('val') if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise UserError(f'{path}: expected a "val" list of {{"file_name", "label"}} records')
    labels, names = [], []
    for i, record in enumerate(records):
        try:
            labels.append(int(record['label']) - 1)   # NW-UCLA labels are 1..10
            names.append(str(record['file_name']))
        except (TypeError, KeyError, ValueError):
            raise UserError(f'{path}: val record {i} lacks an integer "label" or a "file_name"') from None
    return np.asarray(labels, dtype=np.int64), names


# ----------------------------------------------------------------------------- scores

def load_scores(directory, stream):
    """`<directory>/epoch1_test_score.pkl` as a dict, read with the restricted unpickler."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f'--{stream.replace("_", "-")}-dir: no such directory: {directory}')
    scores = unpickle.load(directory / SCORE_FILE)
    if not isinstance(scores, dict) or not scores:
        raise UserError(f'{directory / SCORE_FILE}: expected a non-empty dict sample -> score vector')
    return scores


def _sample_index(key, name_index):
    """Dataset position a score key stands for, or None when the key says nothing about it.

    NTU keys are `test_<i>`; upstream's NW-UCLA keys are integer indices; a name found in the
    label file's sample names (NW-UCLA file names) gives its position there."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str):
        if key in name_index:
            return name_index[key]
        match = re.fullmatch(r'(?:test_)?(\d+)', key)
        if match:
            return int(match.group(1))
    return None


def align(stream_scores, num_labels, names=None):
    """Stack every stream's scores in dataset order: array (streams, N, classes), float64.

    Keys are mapped to dataset positions when all of them can be; otherwise streams are matched
    key by key and the first stream's order is taken as dataset order (upstream's assumption)."""
    name_index = {name: i for i, name in enumerate(names or [])}
    first = next(iter(stream_scores))
    keyed = {}
    for stream, scores in stream_scores.items():
        indices = [_sample_index(key, name_index) for key in scores]
        keyed[stream] = indices
    by_index = all(None not in indices for indices in keyed.values())

    if by_index:
        sets = {stream: set(indices) for stream, indices in keyed.items()}
        # index -> the key as written, for messages
        shown = {stream: dict(zip(keyed[stream], scores)) for stream, scores in stream_scores.items()}
        for stream, indices in keyed.items():
            if len(sets[stream]) != len(indices):
                raise UserError(f'{stream} scores name some samples twice')
    else:
        sets = {stream: set(scores) for stream, scores in stream_scores.items()}
        shown = {stream: {key: key for key in scores} for stream, scores in stream_scores.items()}
    for stream in stream_scores:
        if sets[stream] != sets[first]:
            only_here = sorted(sets[stream] - sets[first], key=str)
            only_there = sorted(sets[first] - sets[stream], key=str)
            example = (f'{shown[stream][only_here[0]]!r} only in {stream}' if only_here
                       else f'{shown[first][only_there[0]]!r} only in {first}')
            raise UserError(f'the streams score different samples: {first} has {len(sets[first])}, '
                            f'{stream} has {len(sets[stream])} ({example})')
    count = len(sets[first])
    if count != num_labels:
        raise UserError(f'the score files hold {count} samples but the labels list {num_labels}: '
                        'wrong --dataset / --label-file, or scores from another split?')
    if by_index and sets[first] != set(range(num_labels)):
        raise UserError(f'score keys do not cover samples 0..{num_labels - 1} of the labels')

    stacked = []
    for stream, scores in stream_scores.items():
        if by_index:
            ordered = [None] * num_labels
            for position, value in zip(keyed[stream], scores.values()):
                ordered[position] = value
        else:
            ordered = [scores[key] for key in stream_scores[first]]
        try:
            matrix = np.stack([np.asarray(value, dtype=np.float64).reshape(-1) for value in ordered])
        except (ValueError, TypeError):
            raise UserError(f'{stream} scores are not numeric vectors of one length') from None
        stacked.append(matrix)
    widths = {stream: m.shape[1] for stream, m in zip(stream_scores, stacked)}
    if len(set(widths.values())) > 1:
        raise UserError(f'the streams have different numbers of classes: {widths}')
    return np.stack(stacked)


def describe_scores(directory):
    """Which checkpoint produced a stream's score file, from the record the trainer writes beside it."""
    record_path = Path(directory) / SCORE_FILE.replace('.pkl', '.json')
    try:
        record = json.loads(record_path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return f'{Path(directory) / SCORE_FILE} (no record beside it: written by upstream or an older version)'
    source = record.get('checkpoint') or f'epoch {record.get("epoch")} of {directory}'
    accuracy = record.get('accuracy')
    shown = f', its top-1 {100 * accuracy:.2f}%' if isinstance(accuracy, (int, float)) else ''
    return f'{source}{shown}, scored {record.get("written", "?")}'


# ----------------------------------------------------------------------------- fusion

def choose_weights(streams, weights=None, alpha=None):
    """Per-stream weights: explicit --weights, else upstream's for this set of streams."""
    streams = tuple(streams)
    if weights is not None:
        if alpha is not None:
            raise UserError('give either --weights or --alpha, not both')
        if len(weights) != len(streams):
            raise UserError(f'--weights has {len(weights)} values for {len(streams)} streams '
                            f'({", ".join(streams)}, in that order)')
        return tuple(float(w) for w in weights)
    if streams in UPSTREAM_WEIGHTS:
        if alpha is not None:
            print('note: --alpha only weighs the two-stream (joint + bone) case; ignored',
                  file=sys.stderr)
        return UPSTREAM_WEIGHTS[streams]
    if streams == ('joint', 'bone'):
        return (1.0, 1.0 if alpha is None else float(alpha))
    if len(streams) == 1:
        return (1.0,)
    raise UserError(f'no upstream weights for the streams {", ".join(streams)}; '
                    'give them with --weights (one per stream, in that order)')


def ensemble(scores, weights, labels):
    """scores (S, N, C), weights (S,), labels (N,) -> (top-1, top-5) accuracies in [0, 1]."""
    if labels.size and labels.max() >= scores.shape[2]:
        raise UserError(f'labels go up to {labels.max()} but the scores have {scores.shape[2]} classes')
    fused = np.tensordot(np.asarray(weights, dtype=np.float64), scores, axes=1)
    return top_k_accuracy(fused, labels, 1), top_k_accuracy(fused, labels, 5)


# ----------------------------------------------------------------------------- command line

def build_parser():
    parser = ArgumentParser(description='Ensemble the test scores of GAP streams.')
    parser.add_argument('--dataset', '--datasets', dest='dataset', choices=list(LABEL_FILES),
                        metavar='NAME', help='benchmark whose test labels to use: '
                        f'{", ".join(LABEL_FILES)} (the paper README spells it --datasets)')
    parser.add_argument('--label-file', default=None, metavar='PATH',
                        help='read labels from this .npz (y_test), .h5 or NW-UCLA split .json instead')
    for stream in STREAMS:
        parser.add_argument(f'--{stream.replace("_", "-")}-dir', default=None, metavar='DIR',
                            help=f'work dir of the {stream.replace("_", " ")} stream')
    parser.add_argument('--alpha', type=float, default=None,
                        help='two streams only: score = joint + alpha * bone (default 1)')
    parser.add_argument('--weights', type=float, nargs='+', default=None, metavar='W',
                        help='one weight per given stream, in the order joint, bone, joint motion, bone motion')
    return parser


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        if args.dataset is None and args.label_file is None:
            raise UserError('give --dataset (or --datasets) or --label-file')
        dirs = {s: getattr(args, f'{s}_dir') for s in STREAMS}
        streams = [s for s in STREAMS if dirs[s] is not None]
        if not streams:
            raise UserError('give at least one of ' + ', '.join(f'--{s.replace("_", "-")}-dir' for s in STREAMS))
        weights = choose_weights(streams, args.weights, args.alpha)
        label_path = Path(args.label_file) if args.label_file else default_label_file(args.dataset)
        labels, names = load_labels(label_path)
        scores = align({s: load_scores(dirs[s], s) for s in streams}, len(labels), names)
        top1, top5 = ensemble(scores, weights, labels)
    except UserError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    for stream, weight in zip(streams, weights):  # stderr: stdout stays upstream's two lines
        print(f'fused {stream} (x{weight:g}): {describe_scores(dirs[stream])}', file=sys.stderr)
    print('Top1 Acc: {:.4f}%'.format(top1 * 100))
    print('Top5 Acc: {:.4f}%'.format(top5 * 100))
    return 0


if __name__ == '__main__':
    sys.exit(main())
