"""NTU RGB+D 60/120 feeder: upstream-format .npz (memory-mapped) or converted .h5 (per item).

Item i: the sample (T, 150) as (3, T, 25, 2), cropped to its valid frames and resized to
window_size (feeders/transforms.py), then optionally rotated (train), then the modality.
"""
import numpy as np
from torch.utils.data import Dataset

from feeders import modality as modality_table
from feeders import transforms
from feeders.class_names import class_names
from feeders.rng import WorkerRNG
from feeders.storage import open_split
from graph.ntu_rgb_d import Graph
from torchlight.metrics import top_k_accuracy

NUM_JOINTS, NUM_BODIES = 25, 2


class Feeder(Dataset):
    """Upstream's arguments, plus `modality` ('joint', 'bone', 'joint_motion', 'bone_motion').

    data_path: .npz from the NTU prep scripts, or .h5 from feeders/convert_h5.py.
    label_path: unused (labels live in the data file), kept for upstream configs.
    p_interval: [p] centre crop (test) or [low, high] random crop (train); a number means [p].
    window_size: frames per item; <= 0 keeps the file's padded length T.
    random_rot: one random rotation per item (train-time).
    bone / vel: upstream's modality switches, aliases of modality 'bone' / '*_motion'.
    debug: only the first 100 samples.
    random_choose, random_shift, random_move, normalization, use_mmap: accepted for upstream
    configs and ignored, as upstream's NTU feeder ignores them (it never applies them in
    __getitem__); the data is always read lazily, whatever use_mmap says.
    """

    def __init__(self, data_path, label_path=None, p_interval=1, split='train',
                 random_choose=False, random_shift=False, random_move=False, random_rot=False,
                 window_size=-1, normalization=False, debug=False, use_mmap=False,
                 bone=False, vel=False, modality=None):
        self.data_path, self.label_path, self.split = data_path, label_path, split
        self.p_interval = transforms.as_interval(p_interval)
        self.random_rot = random_rot
        self.window_size = window_size
        self.debug = debug
        self.modality = modality_table.resolve(modality, bone=bone, vel=vel)
        self.bone, self.vel = modality_table.flags(self.modality)
        self.source = open_split(data_path, split)
        count = min(len(self.source), 100) if debug else len(self.source)
        self.source.check_finite(count)  # NaN / inf: one line naming the sample, before any run
        self.label = [int(v) for v in self.source.label[:count]]
        self.sample_name = [f'{split}_{i}' for i in range(count)]
        self.num_class = self.source.num_class
        self.rng = WorkerRNG()

    def __len__(self):
        return len(self.label)

    def __getitem__(self, index):
        frames = transforms.trim_trailing_zeros(self.source.read(index))  # (T, 150)
        # 150 = body, joint, xyz -> (C, T, V, M)
        data = np.ascontiguousarray(
            frames.reshape(-1, NUM_BODIES, NUM_JOINTS, 3).transpose(3, 0, 2, 1))
        window = self.window_size if self.window_size > 0 else self.source.num_frames
        valid = transforms.valid_frame_count(data)
        rng = self.rng.get() if len(self.p_interval) == 2 or self.random_rot else None
        data = transforms.crop_resize(data, valid, self.p_interval, window, rng)
        if self.random_rot:
            data = transforms.random_rot(data, rng)
        if self.bone:
            data = transforms.bone(data, Graph.bone_pairs)
        if self.vel:
            data = transforms.motion(data)
        return data, self.label[index], int(index)

    text_set = 'ntu'  # its action descriptions: text/ntu (NTU60 = the first 60 of NTU120's)

    def score_keys(self):
        """Score pickles are keyed by sample name (`test_0`, ...), as upstream's."""
        return list(self.sample_name)

    def class_names(self, num_class):
        return class_names(self.text_set, num_class)

    def top_k(self, score, top_k):
        return top_k_accuracy(score, self.label, top_k)

