"""The COCO-17 layout (graph/coco.py): pyskl's edges, the bone pairs, the body-part groups pinned,
its name, and GAP and CTR-GCN on (N, 3, T, 17, 2) 2D + score input."""
import numpy as np
import pytest
import torch

from graph import coco
from graph.layouts import layout_name, load_layout
from model.ctrgcn import Model, Model_lst_4part, Model_lst_4part_bone

# pyskl's `coco` layout, (child, parent), centre 0.
PYSKL_COCO = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8),
              (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)]


def test_registered_by_name_and_checked():
    assert load_layout('coco') is coco.Graph and load_layout('graph.coco') is coco.Graph
    assert layout_name(coco.Graph) == coco.Graph.name == 'coco'
    g = coco.Graph()
    assert (g.num_node, g.channels, g.score_channel, g.center) == (17, 3, 2, 0)
    assert g.A.shape == (3, 17, 17)
    assert len(coco.JOINTS) == 17 and coco.JOINTS[0] == 'nose' and coco.JOINTS[16] == 'right ankle'


def test_edges_are_pyskls_a_tree_rooted_at_the_nose():
    assert coco.Graph.inward == PYSKL_COCO
    parents = dict(PYSKL_COCO)
    assert sorted(parents) == list(range(1, 17))  # every joint but the centre has one parent
    for joint in range(17):  # and following parents reaches the nose
        seen = 0
        while joint != 0:
            joint, seen = parents[joint], seen + 1
            assert seen < 17


def test_vector_edges_make_bones_and_run_out_after_four_hops():
    g = coco.Graph()
    assert g.vector_edges == PYSKL_COCO  # (child, parent): k=1 is joint minus parent
    bones = g.A_vector(1)
    x = np.random.default_rng(0).normal(size=17)
    for child, parent in PYSKL_COCO:
        assert bones[child] @ x == pytest.approx(x[child] - x[parent])
    assert bones[0] @ x == pytest.approx(x[0])  # the root stays itself
    # ankle - knee - hip - shoulder - nose: A^4 reaches the nose, A^5 nothing; k=8 is the identity
    assert g.A_vector(4)[15].tolist() == [-1.0] + [0.0] * 14 + [1.0, 0.0]
    assert np.array_equal(g.A_vector(5), np.eye(17)) and np.array_equal(g.A_vector(8), np.eye(17))


def test_bone_pairs_are_the_edges_plus_the_centre_to_itself():
    assert coco.Graph.bone_pairs == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5),
                                     (8, 6), (9, 7), (10, 8), (11, 5), (12, 6), (13, 11), (14, 12),
                                     (15, 13), (16, 14)]


def test_parts_pinned():
    assert coco.Graph.parts == {
        'joint': {'head': [0, 1, 2, 3, 4], 'hand': [5, 6, 7, 8, 9, 10], 'hip': [5, 6, 11, 12],
                  'foot': [11, 12, 13, 14, 15, 16]},
        'bone': {'head': [0, 1, 2, 3, 4, 5, 6], 'hand': [5, 6, 7, 8, 9, 10],
                 'hip': [11, 12, 13, 14], 'foot': [13, 14, 15, 16]},
    }
    joint = coco.Graph.parts['joint']
    assert set().union(*joint.values()) == set(range(17))  # every joint in some part
    bone = coco.Graph.parts['bone']
    assert set().union(*bone.values()) == set(range(17))  # every bone in some part


@pytest.mark.parametrize('cls', [Model_lst_4part, Model_lst_4part_bone])
def test_gap_builds_runs_and_trains_on_coco(cls, one_thread):
    torch.manual_seed(0)
    model = cls(num_class=5, num_person=2, graph='coco', head=['all-MiniLM-L6-v2'])
    assert (model.num_point, model.in_channels) == (17, 3)
    assert model.part_joints == [coco.PARTS[model.representation][p]
                                 for p in ('head', 'hand', 'hip', 'foot')]
    x = torch.randn(2, 3, 8, 17, 2)
    logits, feats, scale, parts = model(x)
    assert logits.shape == (2, 5) and feats['all-MiniLM-L6-v2'].shape == (2, 384)
    assert len(parts) == 4 and all(p.shape == (2, 384) for p in parts)
    (logits.logsumexp(1).mean() + feats['all-MiniLM-L6-v2'].square().mean()
     + sum(p.square().mean() for p in parts)).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.l1.gcn1.convs[0].conv1.weight.shape[1] == 3


def test_ctrgcn_builds_and_runs_on_coco(one_thread):
    torch.manual_seed(0)
    model = Model(num_class=5, num_person=2, graph='coco')
    out = model(torch.randn(2, 3, 8, 17, 2))
    assert out.shape == (2, 5)
    out.sum().backward()
