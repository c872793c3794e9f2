"""graph/layouts.py and the layout contract of graph.tools.SkeletonGraph: names, a user's own
layout module, the checks when a layout is loaded, and a model on 2D and 2D+score layouts."""
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from graph import ntu_rgb_d, ucla
from graph.layouts import layout_name, load_layout
from graph.tools import SkeletonGraph
from model.blocks import CTRGC
from model.ctrgcn import GAPModel, Model
from torchlight.errors import UserError

# A user's 5-joint layout: pelvis 0, neck 1, head 2, hand 3, foot 4 (x, y and a confidence).
TOY_LAYOUT = '''
from graph.tools import SkeletonGraph

EDGES = [(1, 0), (2, 1), (3, 1), (4, 0)]


class Graph(SkeletonGraph):
    name = 'toy'
    num_node = 5
    channels = 3
    score_channel = 2
    inward = EDGES
    vector_edges = EDGES
    parts = {representation: {'head': [1, 2], 'hand': [3], 'hip': [0], 'foot': [4]}
             for representation in ('joint', 'bone')}
    bone_pairs = [(0, 0)] + EDGES
'''


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """'toypkg.toy_layout' importable from a folder of its own, as a user's package would be."""
    package = tmp_path / 'toypkg'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'toy_layout.py').write_text(TOY_LAYOUT)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield 'toypkg.toy_layout'
    for name in ('toypkg.toy_layout', 'toypkg'):
        sys.modules.pop(name, None)


class Toy2D(SkeletonGraph):
    """The toy layout with x, y only."""
    name = 'toy-2d'
    num_node = 5
    channels = 2
    score_channel = None
    inward = vector_edges = [(1, 0), (2, 1), (3, 1), (4, 0)]
    parts = {'joint': {'head': [1, 2], 'hand': [3], 'hip': [0], 'foot': [4]},
             'bone': {'head': [1, 2], 'hand': [3], 'hip': [0], 'foot': [4]}}
    bone_pairs = [(0, 0), (1, 0), (2, 1), (3, 1), (4, 0)]


class Toy2DScore(Toy2D):
    name = 'toy-2d-score'
    channels = 3
    score_channel = 2


# ------------------------------------------------------------------------------ names and paths
@pytest.mark.parametrize('name,expected', [
    ('ntu', ntu_rgb_d.Graph), ('nw-ucla', ucla.Graph), ('ucla', ucla.Graph),
    ('graph.ntu_rgb_d.Graph', ntu_rgb_d.Graph), ('graph.ucla', ucla.Graph)])
def test_load_layout_by_name_module_or_class_path(name, expected):
    assert load_layout(name) is expected


def test_layout_name_round_trips():
    assert layout_name(ntu_rgb_d.Graph) == ntu_rgb_d.Graph.name == 'ntu'
    assert layout_name(ucla.Graph()) == ucla.Graph.name == 'nw-ucla'
    assert load_layout(layout_name(Toy2D)) is Toy2D
    assert layout_name(Toy2D) == 'test_layouts.Toy2D'


def test_a_users_layout_module(toy_package):
    graph_class = load_layout(toy_package)
    assert graph_class.__module__ == toy_package and graph_class.name == 'toy'
    assert load_layout(f'{toy_package}.Graph') is graph_class
    g = graph_class()
    assert g.A.shape == (3, 5, 5) and g.A_vector(1)[2].tolist() == [0, -1, 1, 0, 0]


@pytest.mark.parametrize('name', ['kinetics', 'graph.kinetics.Graph', 'graph.ucla.Nope', '', None,
                                  '.ucla', 'nw ucla'])
def test_unknown_layout_is_one_line_listing_the_known_names(name):
    with pytest.raises(UserError, match=r"^unknown layout .*\(known: ntu, nw-ucla, coco; alias ucla = "
                                        r"nw-ucla; or a module path") as e:
        load_layout(name)
    assert '\n' not in str(e.value)


def test_something_else_than_a_layout():
    for name in ('graph.tools.zero_based', 'graph.parts'):
        with pytest.raises(UserError, match='neither a module that defines a Graph class nor a '
                                            'graph.tools.SkeletonGraph subclass'):
            load_layout(name)


def test_import_errors_inside_a_layout_module_propagate(toy_package, tmp_path):
    (tmp_path / 'toypkg' / 'broken.py').write_text('import no_such_dependency_xyz\n')
    with pytest.raises(ModuleNotFoundError, match='no_such_dependency_xyz'):
        load_layout('toypkg.broken')


def test_importing_layouts_imports_no_layout():
    code = ('import sys, graph.layouts; '
            'print(sorted(m for m in sys.modules if m.startswith("graph.")))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['graph.layouts', 'graph.parts', 'graph.tools']"


# ------------------------------------------------------------------------------ the checks
def broken(**changes):
    return type('Broken', (Toy2D,), changes)


def both(groups):
    return {'joint': groups, 'bone': groups}


@pytest.mark.parametrize('changes,problem', [
    (dict(num_node=0), 'num_node and channels must be positive integers'),
    (dict(channels=2.0), 'num_node and channels must be positive integers'),
    (dict(name=''), 'name must be a non-empty string'),
    (dict(score_channel=2), 'score_channel 2 is not one of the 2 channels'),
    (dict(inward=[(1, 0), (5, 1)]), 'inward names joint 5, outside 0..4'),
    (dict(vector_edges=[(1, -1)]), 'vector_edges names joint -1, outside 0..4'),
    (dict(inward=[(1, 0, 2)]), r'inward must be \(joint, joint\) pairs'),
    (dict(bone_pairs=[(0, 0), (1, 0), (2, 1), (3, 1)]), 'bone_pairs must give each of the 5 joints'),
    (dict(bone_pairs=[(0, 0), (1, 0), (1, 0), (3, 1), (4, 0)]), 'bone_pairs must give each'),
    (dict(parts={'joint': Toy2D.parts['joint']}),
     r"parts\['bone'\] must list the joints of head, hand, hip, foot"),
    (dict(parts=both({'head': [1], 'hands': [3], 'hip': [0], 'foot': [4]})),
     r"parts\['joint'\] must list the joints of head, hand, hip, foot"),
    (dict(parts=both({'head': [], 'hand': [3], 'hip': [0], 'foot': [4]})),
     r"parts\['joint'\]\['head'\] must be distinct joints, at least one"),
    (dict(parts=both({'head': [1], 'hand': [3, 3], 'hip': [0], 'foot': [4]})),
     r"parts\['joint'\]\['hand'\] must be distinct joints"),
    (dict(parts=both({'head': [1], 'hand': [7], 'hip': [0], 'foot': [4]})),
     r"parts\['joint'\]\['hand'\] names joint 7, outside 0..4"),
])
def test_a_broken_layout_is_one_line_naming_module_and_problem(changes, problem):
    with pytest.raises(UserError, match=rf'^layout test_layouts\.Broken: {problem}') as e:
        broken(**changes)()
    assert '\n' not in str(e.value)


def test_a_layout_missing_fields_names_them():
    class Bare(SkeletonGraph):
        num_node = 5

    with pytest.raises(UserError, match=r'Bare: does not define name, channels, score_channel, '
                                        r'inward, vector_edges, parts, bone_pairs'):
        Bare()


# ------------------------------------------------------------------------------ models on them
def test_relation_width_is_pyskls_rule_and_upstreams_for_every_width_in_use():
    for cin in (3, 9, 64, 128, 256):  # CTR-GCN's input and unit widths
        assert CTRGC(cin, 64).conv1.out_channels == (8 if cin in (3, 9) else cin // 8)
    for cin in (1, 2, 4, 8, 16):
        assert CTRGC(cin, 64).conv1.out_channels == 8
    assert CTRGC(32, 64).conv1.out_channels == 4


@pytest.mark.parametrize('graph,channels', [(Toy2D, 2), (Toy2DScore, 3), ('test_layouts.Toy2D', 2)])
def test_model_on_a_2d_layout_builds_runs_and_trains(graph, channels, one_thread):
    torch.manual_seed(0)
    model = GAPModel(num_class=4, num_person=1, graph=graph, k=1)
    assert (model.num_point, model.in_channels) == (5, channels)
    x = torch.randn(2, channels, 8, 5, 1)
    logits, feats, scale, parts = model(x)
    assert logits.shape == (2, 4)
    (logits.logsumexp(1).mean() + feats['ViT-B/32'].square().mean()
     + sum(p.square().mean() for p in parts)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.l1.gcn1.convs[0].conv1.weight.shape == (8, channels, 1, 1)
    assert Model(num_class=4, num_person=1, graph=graph)(x).shape == (2, 4)


def test_sizes_follow_the_layout_and_a_given_one_must_agree():
    assert Model(graph='nw-ucla', num_person=1).num_point == 20
    assert Model(graph='ntu', num_point=25, in_channels=3).num_point == 25
    with pytest.raises(UserError, match=r'^in_channels=3 but graph test_layouts\.Toy2D has 2 '
                                        r'channels \(leave in_channels out'):
        Model(graph=Toy2D, in_channels=3)
    with pytest.raises(UserError, match=r'^num_point=25 but graph nw-ucla has 20 joints'):
        Model(graph='ucla', num_point=25)

