"""CTR-GCN and GAP's multi-part model, under the class paths upstream configs name.

`Model` is plain CTR-GCN (returns logits). `GAPModel` adds GAP's text-space heads and is the one
implementation behind the four upstream names; they differ only in data (default graph, classes,
persons, k of the I - A^k input transform, and which body-part joint lists to pool):

    Model_lst_4part            NTU, joint input (k=8)    Model_lst_4part_ucla       NW-UCLA, k=6
    Model_lst_4part_bone       NTU, bone input (k=1)     Model_lst_4part_bone_ucla  NW-UCLA, k=1

The joint count and input width follow from the graph (a layout, graph/layouts.py). Parameter and
buffer names are upstream's, so checkpoints load both ways.
"""
import math

import torch
import torch.nn as nn

from graph.layouts import layout_name, load_layout
from graph.parts import BODY_PARTS
from model.blocks import CHANNELS, Unit, bn_init, conv_init
from torchlight.errors import UserError

# Width of the text feature per text-encoder name (the `head` config entry).
TEXT_WIDTHS = {
    'ViT-B/32': 512, 'ViT-B/16': 512,
    'ViT-L/14': 768, 'ViT-L/14@336px': 768, 'RN50x16': 768,
    'RN50x64': 1024,
    'all-MiniLM-L6-v2': 384,
}
# Upstream's part_list index per part: [0] head, [1] hand, [2] foot, [3] hip.
PART_SLOT = {'head': 0, 'hand': 1, 'foot': 2, 'hip': 3}


def load_graph(graph, graph_args=None):
    """Build the graph of a layout: a name ('ntu', 'nw-ucla'), a module or class path such as
    'graph.ntu_rgb_d.Graph' (upstream's configs), or the class itself."""
    graph_class = graph if isinstance(graph, type) else load_layout(graph)
    try:
        return graph_class(**dict(graph_args or {}))
    except (TypeError, ValueError) as e:
        raise UserError(f'cannot build graph {graph!r} with graph_args {graph_args!r}: {e}') \
            from None


def count_parameters(model):
    """Number of trainable numbers (upstream's 'parameter count')."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def from_graph(graph, key, given, value, what):
    """A size the graph fixes: None takes the graph's; a given one (old configs say
    num_point: 25) must agree."""
    if given is not None and given != value:
        raise UserError(f'{key}={given} but graph {layout_name(graph)} has {value} {what} '
                        f'(leave {key} out: it follows the graph)')
    return value


class CTRGCN(nn.Module):
    """Shared encoder: data BN, ten CTR-GCN units, and the classifier `fc` (upstream names).
    `num_point` and `in_channels` default to the graph's num_node and channels."""

    def __init__(self, num_class=60, num_point=None, num_person=2, graph='graph.ntu_rgb_d.Graph',
                 graph_args=None, in_channels=None, drop_out=0, adaptive=True):
        super().__init__()
        self.graph = load_graph(graph, graph_args)
        self.num_point = from_graph(self.graph, 'num_point', num_point, self.graph.num_node, 'joints')
        self.in_channels = from_graph(self.graph, 'in_channels', in_channels, self.graph.channels,
                                      'channels')
        self.num_class, self.num_person = num_class, num_person
        self.data_bn = nn.BatchNorm1d(num_person * self.in_channels * self.num_point)
        bn_init(self.data_bn, 1)
        cin = self.in_channels
        for i, (cout, stride) in enumerate(CHANNELS, 1):
            unit = Unit(cin, cout, self.graph.A, stride, residual=i > 1, adaptive=adaptive)
            setattr(self, f'l{i}', unit)
            cin = cout
        self.feature_dim = cin
        self.fc = nn.Linear(cin, num_class)
        nn.init.normal_(self.fc.weight, 0, math.sqrt(2.0 / num_class))
        self.drop_out = nn.Dropout(drop_out) if drop_out else nn.Identity()

    def _as_5d(self, x):
        if x.dim() == 3:  # (N, T, V*C) -> (N, C, T, V, 1)
            N, T, _ = x.shape
            x = x.reshape(N, T, self.num_point, -1).permute(0, 3, 1, 2).unsqueeze(-1)
        N, C, T, V, M = x.shape
        if (C, V, M) != (self.in_channels, self.num_point, self.num_person):
            raise UserError(f'input of shape {tuple(x.shape)} does not fit the model (expects N, '
                            f'C={self.in_channels}, T, V={self.num_point}, M={self.num_person})')
        return x

    def transform_input(self, x):
        return x

    def encode(self, x):
        """(N, C, T, V, M) -> final feature map (N, M, C', T', V)."""
        x = self.transform_input(self._as_5d(x))
        N, C, T, V, M = x.shape
        # data_bn normalises each (person, joint, channel) over batch and time.
        x = self.data_bn(x.permute(0, 4, 3, 1, 2).reshape(N, M * V * C, T))
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).reshape(N * M, C, T, V)
        for i in range(1, len(CHANNELS) + 1):
            x = getattr(self, f'l{i}')(x)
        return x.view(N, M, *x.shape[1:])


class Model(CTRGCN):
    """Plain CTR-GCN: logits (N, num_class).

    GAP's `head` and `k` are refused by name: plain CTR-GCN has no text heads and no input
    transform, and silently training without them is the mistake they would hide.
    """

    def __init__(self, num_class=60, num_point=None, num_person=2, graph='graph.ntu_rgb_d.Graph',
                 graph_args=None, in_channels=None, drop_out=0, adaptive=True, head=None, k=None):
        given = [name for name, value in (('head', head), ('k', k)) if value is not None]
        if given:
            raise UserError(f'model.ctrgcn.Model is plain CTR-GCN without text heads: model_args '
                            f'{", ".join(given)} only apply to the GAP classes (e.g. '
                            f'model.ctrgcn.Model_lst_4part); remove them or pick a GAP model')
        super().__init__(num_class, num_point, num_person, graph, graph_args, in_channels,
                         drop_out, adaptive)

    def forward(self, x):
        feature = self.encode(x).mean((1, 3, 4))
        return self.fc(self.drop_out(feature))


class GAPModel(CTRGCN):
    """CTR-GCN plus GAP's heads: forward -> (logits, {encoder: global feature}, logit_scale (1, 5),
    [head, hand, hip, foot] part features).

    `linear_head[name]` maps the pooled feature to each text encoder's width; `part_list` maps the
    feature pooled over each body part's joints to the (first) encoder's width. With `k`, each
    frame's joints are first replaced by (I - A^k) @ joints along the graph's vector_edges (k=0:
    unchanged; k=1 on NTU: each joint minus its parent, i.e. bones; on NW-UCLA, upstream's
    'bone' stream: each joint minus all its children, see graph/ucla.py).
    `parts` picks the graph's joint lists for the 'joint' or the 'bone' representation.
    Arguments left at None take the class's DEFAULTS / REPRESENTATION, then the graph's
    (num_point, in_channels).
    """

    DEFAULTS = dict(num_class=60, num_person=2, graph='graph.ntu_rgb_d.Graph', k=8)
    REPRESENTATION = 'joint'  # which body-part joint lists of the graph to pool

    def __init__(self, num_class=None, num_point=None, num_person=None, graph=None, graph_args=None,
                 in_channels=None, drop_out=0, adaptive=True, head=None, k=None, parts=None):
        d = self.DEFAULTS
        super().__init__(d['num_class'] if num_class is None else num_class,
                         d.get('num_point') if num_point is None else num_point,
                         d['num_person'] if num_person is None else num_person,
                         d['graph'] if graph is None else graph,
                         graph_args, d.get('in_channels') if in_channels is None else in_channels,
                         drop_out, adaptive)
        k = d['k'] if k is None else k
        if not isinstance(k, int) or k < 0:
            raise UserError(f'k must be a non-negative integer, got {k!r}')
        self.k = k
        head = ['ViT-B/32'] if head is None else head
        self.head = [head] if isinstance(head, str) else list(head)
        unknown = [h for h in self.head if h not in TEXT_WIDTHS]
        if unknown or not self.head:
            what = f'unknown text encoder(s) {unknown}' if unknown else 'no text encoder'
            raise UserError(f'{what} in head (known: {", ".join(TEXT_WIDTHS)})')
        self.text_width = TEXT_WIDTHS[self.head[0]]

        # Constants (not in the state dict): the input transform and the part-pooling lists.
        self.register_buffer('A_vector', torch.from_numpy(self.graph.A_vector(k)), persistent=False)
        self.representation = self.REPRESENTATION if parts is None else parts
        if self.representation not in self.graph.parts:
            raise UserError(f'unknown parts {self.representation!r} '
                            f'(known: {", ".join(self.graph.parts)})')
        groups = self.graph.parts[self.representation]
        self.part_joints = [list(groups[name]) for name in BODY_PARTS]
        # as device buffers: indexing with a Python list would copy it to the GPU every forward
        for name, joints in zip(BODY_PARTS, self.part_joints):
            self.register_buffer(f'{name}_joints', torch.tensor(joints), persistent=False)

        self.logit_scale = nn.Parameter(torch.full((1, 5), math.log(1 / 0.07)))
        self.linear_head = nn.ModuleDict()
        for name in self.head:
            self.linear_head[name] = nn.Linear(self.feature_dim, TEXT_WIDTHS[name])
            conv_init(self.linear_head[name])
        self.part_list = nn.ModuleList(nn.Linear(self.feature_dim, self.text_width)
                                       for _ in PART_SLOT)

    def transform_input(self, x):
        # (I - A^k) applied to the joint axis of every frame at once.
        return torch.einsum('uv,nctvm->nctum', self.A_vector.to(x.dtype), x)

    def forward(self, x):
        fmap = self.encode(x)                      # (N, M, C, T', V)
        per_joint = fmap.mean((1, 3))              # (N, C, V)
        feature = per_joint.mean(-1)               # (N, C)
        pooled = {name: per_joint.index_select(2, getattr(self, f'{name}_joints')).mean(-1)
                  for name in BODY_PARTS}
        parts = [self.part_list[PART_SLOT[name]](pooled[name]) for name in BODY_PARTS]
        text_features = {name: self.linear_head[name](feature) for name in self.head}
        return self.fc(self.drop_out(feature)), text_features, self.logit_scale, parts


class Model_lst_4part(GAPModel):
    """NTU RGB+D, joint input: I - A^8 by default, joint part lists."""


class Model_lst_4part_bone(GAPModel):
    """NTU RGB+D, bone input made in the model (I - A, k=1), bone part lists."""
    DEFAULTS = dict(GAPModel.DEFAULTS, k=1)
    REPRESENTATION = 'bone'


class Model_lst_4part_ucla(GAPModel):
    """NW-UCLA, joint input: I - A^6 by default, joint part lists."""
    DEFAULTS = dict(num_class=10, num_person=1, graph='graph.ucla.Graph', k=6)


class Model_lst_4part_bone_ucla(GAPModel):
    """NW-UCLA, k=1 (upstream's bone stream; on this graph each joint minus all its children),
    bone part lists."""
    DEFAULTS = dict(Model_lst_4part_ucla.DEFAULTS, k=1)
    REPRESENTATION = 'bone'
