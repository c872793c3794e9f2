"""Clips for prediction: raw skeleton files read into one form, before any dataset's preprocessing.

A clip is what a pyskl annotation holds: `keypoint` (M, T, V, C) with C = 3 (x, y, z) or, for 2D
data, C = 2 (x, y) plus `score` (M, T, V) and optionally `img_shape` (H, W). Readers by suffix:

    .skeleton   a raw NTU RGB+D file: parsed and denoised as the NTU prep does (its bodies, at most
                two, not yet translated: the feeder's view decides that)
    .json       an NW-UCLA all_sqe file: (1, T, 20, 3), float64 as the NW-UCLA feeder reads it
    .pkl        a pyskl annotation pickle (restricted unpickler): every annotation, or those of
                one split; each clip is named `file.pkl:frame_dir`
    .npy        an array (M, T, V, C) as a pyskl keypoint: 3D coordinates, or 2D (x, y, score)
                with x, y in pixels of a 1920 x 1080 image (pyskl's default image size)

Every reader checks what it reads (one UserError line naming the file): the joint and channel
counts against the layout (both named), finite values, and a clip that is empty or all zero.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graph.layouts import layout_name
from torchlight.errors import UserError

SUFFIXES = ('.skeleton', '.json', '.pkl', '.npy')


@dataclass
class Clip:
    name: str
    keypoint: np.ndarray       # (M, T, V, C)
    score: np.ndarray = None   # (M, T, V) for 2D clips
    img_shape: tuple = None    # (H, W) for 2D clips, where the data says it

    @property
    def kind(self):
        return '2d' if self.score is not None else '3d'


def read_clips(path, layout, split=None):
    """The clips in `path` (a str or Path), checked against `layout` (a layout Graph class)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f'{path}: unknown kind of input {suffix or "(no suffix)"!r}; predict reads '
                        f'{", ".join(SUFFIXES)} files')
    if not path.is_file():
        raise UserError(f'{path}: no such file')
    if split is not None and suffix != '.pkl':
        raise UserError(f'--split names a split of a pyskl pickle; {path} is not one')
    clips = READERS[suffix](path, layout, split)
    for clip in clips:
        check_clip(clip, layout)
    return clips


def _skeleton(path, layout, split):
    from data.denoise import denoised_sequence
    from data.skeleton_io import read_skeleton
    from data.translate import as_bodies
    return [Clip(path.name, as_bodies(denoised_sequence(read_skeleton(path))))]


def _json(path, layout, split):
    from feeders.sources import load_ucla_sequence
    seq = load_ucla_sequence(path, layout.num_node)  # checks shape and finiteness
    return [Clip(path.name, seq[None])]


def _pickle(path, layout, split):
    from feeders.pyskl import _split_members, read_pickle
    table = read_pickle(path, split, layout_name(layout))  # the pickle checked whole, against the layout
    annotations = table['annotations']
    if split is not None:
        annotations = [annotations[i] for i in _split_members(table, split, path)]
    clips = []
    for a in annotations:
        score = a.get('keypoint_score') if a['keypoint'].shape[3] == 2 else None
        shape = tuple(float(v) for v in a['img_shape']) if score is not None and 'img_shape' in a else None
        clips.append(Clip(f'{path.name}:{a["frame_dir"]}', a['keypoint'], score, shape))
    return clips


def _npy(path, layout, split):
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f'{path}: not a readable .npy array ({e})') from None
    if array.ndim != 4 or array.dtype.kind not in 'fiu':
        raise UserError(f'{path}: expected a number array (M, T, V, C) (bodies, frames, joints, '
                        f'channels), got {array.dtype} {array.shape}')
    if layout.score_channel is None:
        return [Clip(path.name, array.astype(np.float32, copy=False))]
    if array.shape[3] != 3:  # a 2D layout: x, y and the score, as one array
        raise UserError(f'{path}: layout {layout_name(layout)} is 2D: expected (M, T, V, 3) with x, y '
                        f'in pixels and a score, got {array.shape}')
    array = array.astype(np.float32, copy=False)
    return [Clip(path.name, array[..., :2], array[..., 2])]


READERS = {'.skeleton': _skeleton, '.json': _json, '.pkl': _pickle, '.npy': _npy}


def check_clip(clip, layout):
    """A UserError naming the clip if it does not fit `layout` or holds no usable skeleton."""
    M, T, V, C = clip.keypoint.shape
    two_d = layout.score_channel is not None
    wants = f'{layout.num_node} joints x ' + ('(x, y) + score' if two_d else '(x, y, z)')
    has = f'{V} joints x ' + ('(x, y) + score' if clip.kind == '2d' else f'{C} coordinates')
    if V != layout.num_node or (clip.kind == '2d') != two_d or (C != (2 if two_d else 3)):
        raise UserError(f'{clip.name}: the clip has {has} but the checkpoint\'s layout '
                        f'{layout_name(layout)} takes {wants}')
    if M == 0 or T == 0:
        raise UserError(f'{clip.name}: empty clip, keypoint shape {clip.keypoint.shape} (bodies, frames, joints, coords)')
    if not np.isfinite(clip.keypoint).all() or (clip.score is not None and not np.isfinite(clip.score).all()):
        raise UserError(f'{clip.name}: holds NaN or infinite values')
    if not clip.keypoint.any():
        raise UserError(f'{clip.name}: no skeleton in it (every coordinate is 0)')
