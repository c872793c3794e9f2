"""Sources: readers that give each sample of a split as a raw `(C, T, V, M)` array, with its label
and name. What a feeder does with the array (crop, resize, rotate, modality) is not theirs.

A source is any object with
    label       list of int, 0-based class indices, one per sample
    names       list of str, one per sample (score files are keyed by them)
    num_class   int, or None when the source does not say
    __len__()   the number of samples
    sample(i)   sample i as a (C, T, V, M) numpy array (C and V as the layout says)
so a new dataset needs only such a class (a dotted path in the feeder args) and a layout module.

Here: `NtuFile` (the NTU prep's `.npz`, or its `.h5` conversion) and `UclaJson` (NW-UCLA's
`all_sqe` json files with the shipped split list).
"""
import json
from pathlib import Path

import numpy as np

from feeders.storage import open_split
from feeders.transforms import trim_trailing_zeros
from torchlight.errors import UserError

REPO = Path(__file__).resolve().parents[1]
UCLA_DIR = REPO / 'data' / 'NW-UCLA'
UCLA_ROOT = UCLA_DIR / 'all_sqe'
UCLA_SPLIT = UCLA_DIR / 'split.json'
UCLA_WHERE = ('download all_sqe.zip as the CTR-GCN README says (Data Preparation, NW-UCLA) '
              'and unpack it so the json files sit in data/NW-UCLA/all_sqe')
DEBUG_SAMPLES = 100  # upstream's `debug`: the first 100 samples only


class NtuFile:
    """One split ('train' / 'test') of an NTU file: rows of T x (M x V x C) values, body-major,
    zero-padded in time. `layout` gives V and C; the bodies M follow from the row width."""

    def __init__(self, data_path, split='train', layout=None, debug=False):
        from graph.layouts import load_layout
        layout = load_layout(layout or 'ntu')
        self.file = open_split(data_path, split)
        count = min(len(self.file), DEBUG_SAMPLES) if debug else len(self.file)
        self.file.check_finite(count)  # NaN / inf: one line naming the sample, before any run
        self.label = [int(v) for v in self.file.label[:count]]
        self.names = [f'{split}_{i}' for i in range(count)]
        self.num_class = self.file.num_class
        self.num_frames = self.file.num_frames  # the padded length T: the default window
        self.joints, self.channels = layout.num_node, layout.channels

    def __len__(self):
        return len(self.label)

    def sample(self, i):
        frames = trim_trailing_zeros(self.file.read(i))  # (T, M * V * C), padding dropped
        bodies = frames.shape[1] // (self.joints * self.channels)
        return np.ascontiguousarray(frames.reshape(len(frames), bodies, self.joints, self.channels).transpose(3, 0, 2, 1))


def load_ucla_split(name, split_file=None):
    """The upstream list for 'train' or 'val': [{'file_name', 'length', 'label' (1..10)}]."""
    split_file = UCLA_SPLIT if split_file is None else split_file
    if name not in ('train', 'val'):
        raise UserError(f"NW-UCLA label_path must be 'train' or 'val', got {name!r}")
    try:
        with open(split_file) as f:
            return json.load(f)[name]
    except FileNotFoundError:
        raise UserError(f'NW-UCLA split list {split_file} is missing (it ships with the project)') from None


def load_ucla_sequence(path, joints=20):
    """One all_sqe json as a (T, V, 3) float64 array; a UserError naming the file if it is
    missing, malformed or holds a NaN or infinite coordinate."""
    try:
        with open(path) as f:
            skeletons = json.load(f)['skeletons']
    except FileNotFoundError:
        raise UserError(f'NW-UCLA file {path} is missing; {UCLA_WHERE}') from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f'{path}: expected json with a "skeletons" list (frames x {joints} joints x 3)') from None
    seq = np.array(skeletons, dtype=np.float64)
    if seq.ndim != 3 or seq.shape[1:] != (joints, 3) or len(seq) == 0:
        raise UserError(f'{path}: expected skeletons of shape (T, {joints}, 3), got {seq.shape}')
    finite = np.isfinite(seq).all(axis=2)  # json reads NaN, Infinity and 1e999 as numbers
    if not finite.all():
        t, j = np.argwhere(~finite)[0]
        raise UserError(f'{path}: expected finite coordinates, frame {t + 1} joint {j + 1} (from 1) '
                        f'is {seq[t, j].tolist()}; the file is damaged: unpack it again from all_sqe.zip')
    return seq


class UclaJson:
    """NW-UCLA: the json files of a split list, all read at once (1484 small files), float64 as
    upstream computes; a sample is (3, T, V, 1)."""

    def __init__(self, split='train', data_root=None, split_file=None, layout=None, debug=False):
        from graph.layouts import load_layout
        joints = load_layout(layout or 'nw-ucla').num_node
        root = Path(data_root) if data_root is not None else UCLA_ROOT
        if not root.is_dir():
            raise UserError(f'NW-UCLA folder {root} not found; {UCLA_WHERE}')
        entries = load_ucla_split(split, split_file)
        if debug:
            entries = entries[:DEBUG_SAMPLES]
        self.names = [e['file_name'] for e in entries]
        self.label = [int(e['label']) - 1 for e in entries]  # the list says 1..10
        self.num_class = None  # not in the files; the label set's count applies
        self.sequences = [load_ucla_sequence(root / f'{n}.json', joints) for n in self.names]

    def __len__(self):
        return len(self.label)

    def sample(self, i):
        return self.sequences[i].transpose(2, 0, 1)[..., None]
