"""Views: what a feeder makes of a raw (C, T, V, M) sample before the modality, as pure functions.

A view takes the raw sample, a numpy Generator and the layout's score channel: with `rng=None` it
is the deterministic test-time view (what evaluation, prediction and the renderer show), with one
the train-time view.

    crop_resize   NTU's: the valid frames cropped ([p]: centre; [lo, hi]: random) and resized to
                  `window` frames, optionally one random rotation (train)
    nw-ucla       NW-UCLA's: centred on joint 1 of frame 0, (train: random view rotation and
                  scale,) min-max normalised per axis, `window` frames (train: random sorted
                  draws; test: evenly spaced); float64 as upstream
"""
import numpy as np

from feeders import transforms
from torchlight.errors import UserError

UCLA_WINDOW = 52  # upstream's fixed NW-UCLA length


def crop_resize(raw, p_interval=(0.95,), window=64, rng=None, random_rot=False, score_channel=None):
    valid = transforms.valid_frame_count(raw)
    data = transforms.crop_resize(raw, valid, transforms.as_interval(p_interval), window, rng)
    if random_rot and rng is not None:
        data = transforms.random_rot(data, rng, score_channel=score_channel)
    return data


def nw_ucla(raw, window=UCLA_WINDOW, rng=None, score_channel=None):
    if score_channel is not None:
        raise UserError('the nw-ucla view normalises x, y, z: it takes no layout with a score channel')
    seq = transforms.ucla_centre(np.ascontiguousarray(raw[..., 0].transpose(1, 2, 0)))  # (T, V, 3)
    if rng is not None:
        agx, agy = rng.integers(-60, 61, size=2)
        seq = transforms.ucla_view_transform(seq, int(agx), int(agy), rng.uniform(0.5, 1.5))
        frames = transforms.ucla_train_indices(len(seq), window, rng)
    else:
        frames = transforms.ucla_val_indices(len(seq), window)
    return transforms.ucla_to_ctvm(transforms.ucla_minmax(seq)[frames])


VIEWS = {'crop_resize': crop_resize, 'nw-ucla': nw_ucla}
