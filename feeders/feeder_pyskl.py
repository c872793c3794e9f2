"""Feeder for pyskl annotation pickles: the one feeder (feeders/feeder.py) over feeders.pyskl's
PysklPickle, with the view the layout calls for, then the modality.

    layout 'nw-ucla'   views.nw_ucla, NW-UCLA's own preprocessing (centre on joint 1 of frame 0,
                       min-max per axis, 52 frames unless window_size is given; train: random
                       view rotation, scale and frame draws); body 0 only, as NW-UCLA's feeder
    any other layout   views.crop_resize (window_size frames, default 64; p_interval [p] centre
                       crop or [lo, hi] random crop; random_rot: one random rotation, 3D only),
                       3D data first centred as below; 2D data comes normalised by the source
                       (x, y in [-1, 1] by the image size, low-score joints zero), uncentred

3D centring, as the NTU prep's translation (data/translate.py): subtract the centre joint of
body 0 in its first non-zero frame from every joint, then frames where a body is absent (all
zero) are zero again. The centre joint: the layout's `center` (NTU's: joint 1, the spine
middle), else the root of the layout's bone_pairs (the joint paired with itself). Items draw the view's randomness when the split name contains 'train' or p_interval has
two values. num_class: max label of the whole pickle + 1 (train and test agree), or None.

A config:

    feeder: feeders.feeder_pyskl.Feeder
    train_feeder_args: {data_path: data/ntu60_3danno.pkl, split: xsub_train, layout: ntu,
                        p_interval: [0.5, 1], window_size: 64}
    test_feeder_args: {data_path: data/ntu60_3danno.pkl, split: xsub_val, layout: ntu}
"""
import numpy as np

from feeders import transforms, views
from feeders.feeder import ClipView, SkeletonFeeder, feeder_arguments
from feeders.pyskl import DEFAULT_IMG_SHAPE, PysklPickle, as_sample
from graph.layouts import layout_name, load_layout
from torchlight.errors import UserError

WINDOW = 64  # crop_resize's default frames per item


def centre_joint(layout_class):
    """The joint 3D samples are centred on: the layout's `center`, else the root of its bone pairs."""
    if layout_class.center is not None:
        return int(layout_class.center)
    return next((j for j, parent in layout_class.bone_pairs if j == parent), 0)


def centre_first_frame(raw, joint):
    """data/translate.py on a (C, T, V, M) sample: minus `joint` of body 0 in its first non-zero
    frame; the frames where a body's values sum to 0 before the shift are 0 after it."""
    present = np.flatnonzero(np.any(raw[..., 0] != 0, axis=(0, 2)))
    if len(present) == 0:  # nothing to centre on; left as is
        return raw
    origin = raw[:, present[0], joint, 0].copy()
    # summed per frame in translate's order (joint-major x, y, z), so a cancelling frame agrees
    absent = np.ascontiguousarray(raw.transpose(1, 3, 2, 0)).reshape(raw.shape[1], raw.shape[3], -1).sum(-1) == 0
    return np.where(absent[None, :, None, :], np.float32(0), raw - origin[:, None, None, None])


def centred_crop_resize(raw, centre=None, rng=None, score_channel=None, **crop):
    """views.crop_resize after centre_first_frame (centre None: no centring)."""
    if centre is not None:
        raw = centre_first_frame(raw, centre)
    return views.crop_resize(raw, rng=rng, score_channel=score_channel, **crop)


class Feeder(SkeletonFeeder):
    """data_path: a pyskl annotation pickle; split: one of its split names; layout: a layout
    name or module path that fits the pickle's joints and channels; modality: 'joint', 'bone',
    'joint_motion', 'bone_motion'; window_size: frames per item (None or <= 0: 64, NW-UCLA 52);
    p_interval, random_rot: crop_resize's (not for 'nw-ucla', whose view has its own train-time
    rotation); score_threshold, debug, img_shape, cache_dir, num_person: PysklPickle's."""

    def __init__(self, data_path, split, layout, modality='joint', window_size=None, p_interval=(0.95,),
                 random_rot=False, score_threshold=0.01, debug=False, img_shape=None, cache_dir=None,
                 num_person=2):
        layout_class = load_layout(layout)
        self.data_path, self.split = data_path, split
        self.p_interval = p_interval = transforms.as_interval(p_interval)
        source = PysklPickle(data_path, split, layout, score_threshold=score_threshold, img_shape=img_shape,
                             num_person=num_person, cache_dir=cache_dir, debug=debug)
        view, view_args = layout_view(layout_class, source.kind, window_size, p_interval, random_rot)
        super().__init__(source, layout_class, view, view_args, modality,
                         random='train' in split or len(p_interval) == 2)
        self.num_person = 1 if view is views.nw_ucla else num_person  # bodies per item

    @classmethod
    def clip_view(cls, args, num_class):
        """Predict's view of the items `args` (test_feeder_args) give: a clip as PysklPickle
        gives a sample (num_person bodies; 2D normalised by the clip's img_shape, else the args',
        else 1080 x 1920, and thresholded), then this feeder's test view and the modality."""
        a = feeder_arguments(cls, args)
        layout_class = load_layout(a['layout'])
        kind = '3d' if layout_class.score_channel is None else '2d'
        view, view_args = layout_view(layout_class, kind, a['window_size'], transforms.as_interval(a['p_interval']),
                                      random_rot=False)
        default_shape = tuple(a['img_shape']) if a['img_shape'] is not None else DEFAULT_IMG_SHAPE

        def prepare(clip):
            values = clip.keypoint if clip.score is None else np.concatenate(
                [clip.keypoint, clip.score[..., None]], axis=-1)
            return as_sample(values, a['num_person'], kind, clip.img_shape or default_shape, a['score_threshold'])

        return ClipView(layout_class, prepare, view, view_args, a['modality'])


def layout_view(layout_class, kind, window_size, p_interval, random_rot):
    """(view, view_args) for a layout: NW-UCLA's own view for 'nw-ucla', else crop_resize (3D
    data centred first)."""
    window = window_size if window_size is not None and window_size > 0 else None
    if layout_name(layout_class) == 'nw-ucla':
        if random_rot:
            raise UserError("random_rot is crop_resize's; the nw-ucla view rotates train items by itself")
        return views.nw_ucla, dict(window=window or views.UCLA_WINDOW)
    if random_rot and layout_class.score_channel is not None:
        raise UserError(f'random_rot rotates x, y, z; layout {layout_name(layout_class)} is 2D '
                        f'(x, y, score): turn random_rot off')
    return centred_crop_resize, dict(centre=centre_joint(layout_class) if kind == '3d' else None,
                                     p_interval=p_interval, window=window or WINDOW, random_rot=random_rot)
