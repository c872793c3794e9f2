"""NW-UCLA feeder: data/NW-UCLA/all_sqe/<name>.json, split lists in data/NW-UCLA/split.json.

The one feeder (feeders/feeder.py) with the NW-UCLA json files as its source, the 'nw-ucla'
layout and the nw-ucla view: centre on joint 1 of frame 0, (train: random view rotation and
scale,) min-max normalise each axis to [-1, 1], take 52 frames (train: random sorted draws; val:
evenly spaced), then the modality; computed in float64 as upstream and returned as float32
(3, 52, 20, 1).
"""
import numpy as np

from feeders import modality as modality_table
from feeders import views
from feeders.feeder import ClipView, SkeletonFeeder, feeder_arguments
from feeders.sources import UCLA_SPLIT as SPLIT_FILE  # noqa: F401  (the renderer and tests name them here)
from feeders.sources import UclaJson
from feeders.sources import load_ucla_sequence as load_sequence  # noqa: F401
from feeders.sources import load_ucla_split as load_split  # noqa: F401
from graph.layouts import load_layout

TIME_STEPS = views.UCLA_WINDOW


class Feeder(SkeletonFeeder):
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
        self.data_path, self.label_path, self.repeat = data_path, label_path, repeat
        self.train = label_path == 'train'
        self.time_steps = window_size if window_size > 0 else TIME_STEPS
        source = UclaJson(label_path, data_root, layout='nw-ucla', debug=debug)
        super().__init__(source, load_layout('nw-ucla'), views.nw_ucla, dict(window=self.time_steps),
                         modality_table.resolve(modality, bone=bone, vel=vel, data_path=data_path),
                         random=self.train)
        self.data = source.sequences

    def __len__(self):
        return len(self.label) * self.repeat

    def score_keys(self):
        """Score pickles are keyed by position 0..N-1, as upstream's NW-UCLA pickles."""
        return list(range(len(self)))

    @classmethod
    def clip_view(cls, args, num_class):
        """Predict's view of the items `args` (test_feeder_args) give: a clip's first body as
        the json source gives it (float64 (3, T, 20, 1)), the nw-ucla test view, the modality."""
        a = feeder_arguments(cls, args)

        def prepare(clip):
            return np.asarray(clip.keypoint[0], dtype=np.float64).transpose(2, 0, 1)[..., None]

        return ClipView(load_layout('nw-ucla'), prepare, views.nw_ucla,
                        dict(window=a['window_size'] if a['window_size'] > 0 else TIME_STEPS),
                        modality_table.resolve(a['modality'], bone=a['bone'], vel=a['vel'],
                                               data_path=a['data_path']))
