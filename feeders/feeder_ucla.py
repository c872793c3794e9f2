"""NW-UCLA feeder: data/NW-UCLA/all_sqe/<name>.json, split lists in data/NW-UCLA/split.json.

Item: centre on joint 1 of frame 0, (train: random view rotation and scale,) min-max normalise
each axis to [-1, 1], take 52 frames (train: random sorted draws; val: evenly spaced), then the
modality; computed in float64 as upstream and returned as float32 (3, 52, 20, 1).
"""
import json
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from feeders import modality as modality_table
from feeders import transforms
from feeders.class_names import class_names
from feeders.rng import WorkerRNG
from graph.ucla import Graph
from torchlight.errors import UserError
from torchlight.metrics import top_k_accuracy

REPO = Path(__file__).resolve().parents[1]
UCLA_DIR = REPO / 'data' / 'NW-UCLA'
SPLIT_FILE = UCLA_DIR / 'split.json'
DEFAULT_ROOT = UCLA_DIR / 'all_sqe'
NUM_JOINTS = 20
TIME_STEPS = 52
WHERE_TO_GET = ('download all_sqe.zip as the CTR-GCN README says (Data Preparation, NW-UCLA) '
                'and unpack it so the json files sit in data/NW-UCLA/all_sqe')


def load_split(name, split_file=None):
    """The upstream list for 'train' or 'val': [{'file_name', 'length', 'label' (1..10)}]."""
    split_file = SPLIT_FILE if split_file is None else split_file
    if name not in ('train', 'val'):
        raise UserError(f"NW-UCLA label_path must be 'train' or 'val', got {name!r}")
    try:
        with open(split_file) as f:
            return json.load(f)[name]
    except FileNotFoundError:
        raise UserError(f'NW-UCLA split list {split_file} is missing (it ships with the project)') \
            from None


def load_sequence(path):
    """One all_sqe json as a (T, 20, 3) float64 array; a UserError naming the file if it is
    missing, malformed or holds a NaN or infinite coordinate."""
    try:
        with open(path) as f:
            skeletons = json.load(f)['skeletons']
    except FileNotFoundError:
        raise UserError(f'NW-UCLA file {path} is missing; {WHERE_TO_GET}') from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f'{path}: expected json with a "skeletons" list (frames x 20 joints x 3)') \
            from None
    seq = np.array(skeletons, dtype=np.float64)
    if seq.ndim != 3 or seq.shape[1:] != (NUM_JOINTS, 3) or len(seq) == 0:
        raise UserError(f'{path}: expected skeletons of shape (T, {NUM_JOINTS}, 3), '
                        f'got {seq.shape}')
    finite = np.isfinite(seq).all(axis=2)  # json reads NaN, Infinity and 1e999 as numbers
    if not finite.all():
        t, j = np.argwhere(~finite)[0]
        raise UserError(f'{path}: expected finite coordinates, frame {t + 1} joint {j + 1} (from 1) '
                        f'is {seq[t, j].tolist()}; the file is damaged: unpack it again from all_sqe.zip')
    return seq


class Feeder(Dataset):
    """Upstream's arguments, plus `modality` and `data_root`.

    data_path: upstream's modality string 'joint' | 'bone' | 'joint_motion' | 'bone_motion'
    (an alias of modality=; may be None when modality is given).
    label_path: 'train' or 'val'. repeat: the train list is walked `repeat` times per epoch.
    window_size: frames per item; <= 0 means upstream's fixed 52.
    debug: only the first 100 samples.
    random_choose, random_shift, random_move, normalization, use_mmap: accepted for upstream
    configs and ignored, as upstream ignores them. bone / vel: aliases like the NTU feeder's.
    data_root: the all_sqe folder (default <repo>/data/NW-UCLA/all_sqe).
    """

    def __init__(self, data_path=None, label_path=None, repeat=1, random_choose=False, random_shift=False,
                 random_move=False, window_size=-1, normalization=False, debug=False,
                 use_mmap=True, bone=False, vel=False, modality=None, data_root=None):
        self.data_path, self.label_path = data_path, label_path
        self.modality = modality_table.resolve(modality, bone=bone, vel=vel, data_path=data_path)
        self.bone, self.vel = modality_table.flags(self.modality)
        self.train = label_path == 'train'
        self.repeat = repeat
        self.time_steps = window_size if window_size > 0 else TIME_STEPS
        self.data_root = Path(data_root) if data_root is not None else DEFAULT_ROOT
        if not self.data_root.is_dir():
            raise UserError(f'NW-UCLA folder {self.data_root} not found; {WHERE_TO_GET}')
        entries = load_split(label_path)
        if debug:
            entries = entries[:100]
        self.sample_name = [e['file_name'] for e in entries]
        self.label = [int(e['label']) - 1 for e in entries]
        self.data = [load_sequence(self.data_root / f'{n}.json') for n in self.sample_name]
        self.rng = WorkerRNG()

    def __len__(self):
        return len(self.data) * self.repeat

    def __getitem__(self, index):
        i = index % len(self.data)
        seq = transforms.ucla_centre(self.data[i])
        if self.train:
            rng = self.rng.get()
            agx, agy = rng.integers(-60, 61, size=2)
            seq = transforms.ucla_view_transform(seq, int(agx), int(agy), rng.uniform(0.5, 1.5))
            frames = transforms.ucla_train_indices(len(seq), self.time_steps, rng)
        else:
            frames = transforms.ucla_val_indices(len(seq), self.time_steps)
        data = transforms.ucla_to_ctvm(transforms.ucla_minmax(seq)[frames])
        if self.bone:
            data = transforms.bone(data, Graph.bone_pairs)
        if self.vel:
            data = transforms.motion(data)
        return np.ascontiguousarray(data, dtype=np.float32), self.label[i], int(index)

    text_set = 'ucla'
    num_class = 10

    def score_keys(self):
        """Score pickles are keyed by position 0..N-1, as upstream's NW-UCLA pickles."""
        return list(range(len(self)))

    def class_names(self, num_class):
        return class_names(self.text_set, num_class)

    def top_k(self, score, top_k):
        return top_k_accuracy(score, self.label, top_k)
