"""NTU RGB+D 60/120 feeder: upstream-format .npz (memory-mapped) or converted .h5 (per item).

The one feeder (feeders/feeder.py) with an NTU file as its source, the 'ntu' layout and the
crop_resize view: item i is the sample (T, 150) as (3, T, 25, 2), cropped to its valid frames and
resized to window_size, then optionally rotated (train), then the modality.
"""
import numpy as np

from feeders import modality as modality_table
from feeders import transforms, views
from feeders.feeder import ClipView, SkeletonFeeder, feeder_arguments
from feeders.sources import NtuFile
from graph.layouts import load_layout

LONGEST = 300  # the prep pads to the longest sample: 300 frames in NTU60 and NTU120 (window_size <= 0)


class Feeder(SkeletonFeeder):
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
        self.p_interval = p_interval = transforms.as_interval(p_interval)
        self.random_rot, self.window_size, self.debug = random_rot, window_size, debug
        source = NtuFile(data_path, split, layout='ntu', debug=debug)
        window = window_size if window_size > 0 else source.num_frames
        super().__init__(source, load_layout('ntu'), views.crop_resize,
                         dict(p_interval=p_interval, window=window, random_rot=random_rot),
                         modality_table.resolve(modality, bone=bone, vel=vel),
                         random=len(p_interval) == 2 or random_rot)

    @classmethod
    def clip_view(cls, args, num_class):
        """Predict's view of the items `args` (test_feeder_args) give: a clip's bodies (at most
        two) as the NTU prep leaves them (translated; a lone actor padded with zeros, or for
        NTU120, num_class > 60, with its copy), trailing empty frames dropped as the feeder
        drops the padding, then the crop_resize test view and the modality."""
        from data.translate import as_rows, to_150, translate
        a = feeder_arguments(cls, args)
        repeat_single = num_class is not None and num_class > 60

        def prepare(clip):
            seq = as_rows(np.asarray(clip.keypoint[:2], dtype=np.float32))  # (T, 75 * M)
            seq = transforms.trim_trailing_zeros(to_150(translate(seq), repeat_single))
            return np.ascontiguousarray(seq.reshape(len(seq), 2, 25, 3).transpose(3, 0, 2, 1))

        window = a['window_size'] if a['window_size'] > 0 else LONGEST
        return ClipView(load_layout('ntu'), prepare, views.crop_resize,
                        dict(p_interval=transforms.as_interval(a['p_interval']), window=window),
                        modality_table.resolve(a['modality'], bone=a['bone'], vel=a['vel']))
