"""The one feeder: a source x a layout x a view, then the modality.

Item i: `(float32 (C, T, V, M), label, i)` where the array is view(source.sample(i)) and then the
modality (bone pairs and score channel from the layout). `feeders.feeder_ntu.Feeder` and
`feeders.feeder_ucla.Feeder` are this class under upstream's argument names; a new dataset names
its own source and layout:

    feeder: feeders.feeder.Feeder
    train_feeder_args: {source: mypkg.MySource, source_args: {split: train}, layout: mypkg.my_layout,
                        view: crop_resize, view_args: {p_interval: [0.5, 1], window: 32}, train: true}
"""
import inspect

import numpy as np
from torch.utils.data import Dataset

from feeders import modality as modality_table
from feeders import transforms
from feeders.rng import WorkerRNG
from feeders.views import VIEWS
from graph.layouts import load_layout
from torchlight.errors import UserError
from torchlight.importing import build, import_class, signature_keywords
from torchlight.metrics import top_k_accuracy

SOURCES = {'ntu-file': 'feeders.sources.NtuFile', 'nw-ucla-json': 'feeders.sources.UclaJson',
           'pyskl': 'feeders.pyskl.PysklPickle'}


def make_item(raw, layout, view, view_args, modality, rng=None):
    """A raw (C, T, V, M) sample as a feeder item array: `view` (rng None: its test-time view),
    then the modality (bone pairs and score channel from the `layout` class)."""
    score = layout.score_channel
    data = view(raw, rng=rng, score_channel=score, **view_args)
    bone, vel = modality_table.flags(modality)
    if bone:
        data = transforms.bone(data, layout.bone_pairs, score)
    if vel:
        data = transforms.motion(data, score)
    return np.ascontiguousarray(data, dtype=np.float32)


def feeder_arguments(cls, args, what='test_feeder_args'):
    """`args` over the defaults of `cls.__init__` (the feeder's arguments as a test item would
    see them, without opening any data); a key it does not take is one UserError line."""
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop('self', None)
    unknown = [key for key in args if key not in params]
    if unknown:
        raise UserError(f'{what}: {cls.__module__}.{cls.__name__} takes no argument {unknown[0]!r}')
    return {name: args.get(name, p.default) for name, p in params.items()}


class ClipView:
    """What predict applies to a clip (feeders/clips.py) for one feeder's test items: `prepare`
    turns the clip into the raw sample the feeder's source would give, then the test-time view
    and the modality. `layout` is the Graph class, `modality` its name."""

    def __init__(self, layout, prepare, view, view_args, modality):
        self.layout, self.prepare = layout, prepare
        self.view, self.view_args = view, dict(view_args)
        self.modality = modality_table.canonical(modality)

    def __call__(self, clip):
        return make_item(self.prepare(clip), self.layout, self.view, self.view_args, self.modality)


class SkeletonFeeder(Dataset):
    """`source`: an object as feeders/sources.py describes; `layout`: a graph module's Graph class;
    `view(raw, rng=None, **view_args)`; `random`: whether items draw from the worker's RNG."""

    def __init__(self, source, layout, view, view_args=None, modality='joint', random=False):
        self.source, self.layout_class = source, layout
        self.layout = layout.name
        self.view, self.view_args = view, dict(view_args or {})
        self.modality = modality_table.canonical(modality)
        self.random = random
        self.label = list(source.label)
        self.sample_name = list(source.names)
        self.num_class = source.num_class
        self.rng = WorkerRNG()

    def __len__(self):
        return len(self.label)

    def transform(self, raw, rng=None):
        """The item array of a raw sample: the view (rng None: the test-time view), the modality."""
        return make_item(raw, self.layout_class, self.view, self.view_args, self.modality, rng)

    def __getitem__(self, index):
        i = index % len(self.label)
        return self.transform(self.source.sample(i), self.rng.get() if self.random else None), self.label[i], int(index)

    def score_keys(self):
        """Score pickles are keyed by sample name."""
        return list(self.sample_name)

    def top_k(self, score, top_k):
        return top_k_accuracy(score, self.label, top_k)


class Feeder(SkeletonFeeder):
    """A feeder from names: `source` ('ntu-file', 'nw-ucla-json' or a class path) built with
    `source_args`, `layout` (a name or a layout module path), `view` ('crop_resize', 'nw-ucla'),
    `view_args`, `modality`; `train` draws the view's randomness (crops, rotations)."""

    def __init__(self, source, layout, source_args=None, view='crop_resize', view_args=None, modality='joint',
                 train=False):
        if view not in VIEWS:
            raise UserError(f'unknown view {view!r}; expected one of: {", ".join(VIEWS)}')
        layout_class = load_layout(layout)
        path, args = SOURCES.get(source, source), dict(source_args or {})
        takes, _ = signature_keywords(import_class(path))
        if takes is not None and 'layout' in takes:
            args.setdefault('layout', layout)  # named once, here
        reader = build(path, args, 'source_args')
        for key in ('label', 'names', 'num_class', 'sample'):
            if not hasattr(reader, key):
                raise UserError(f'source {source} has no {key!r} (see feeders/sources.py for what a source gives)')
        super().__init__(reader, layout_class, VIEWS[view], view_args, modality, random=train)

