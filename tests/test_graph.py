import numpy as np
import pytest

from conftest import REFERENCE, need
from graph import ntu_rgb_d, ucla

GRAPHS = {'ntu': ntu_rgb_d.Graph, 'ucla': ucla.Graph}


@pytest.mark.parametrize('name,k', [('ntu', 1), ('ntu', 8), ('ucla', 1), ('ucla', 6)])
def test_matrices_match_upstream(name, k):
    ref = np.load(need(REFERENCE / 'upstream_graph_matrices.npz'))
    g = GRAPHS[name]()
    np.testing.assert_array_equal(g.A, ref[f'{name}_A_spatial'])
    np.testing.assert_array_equal(g.A_outward_binary, ref[f'{name}_A_outward_binary'])
    np.testing.assert_array_equal(g.A_vector(k), ref[f'{name}_A_vector_k{k}'])


@pytest.mark.parametrize('name', GRAPHS)
def test_parts_inside_graph(name):
    g = GRAPHS[name]()
    for representation, parts in g.parts.items():
        assert list(parts) == ['head', 'hand', 'hip', 'foot']
        for joints in parts.values():
            assert joints and len(set(joints)) == len(joints)
            assert all(0 <= j < g.num_node for j in joints), (name, representation)


@pytest.mark.parametrize('name', GRAPHS)
def test_bone_pairs_cover_every_joint_once(name):
    g = GRAPHS[name]()
    assert sorted(v for v, _ in g.bone_pairs) == list(range(g.num_node))
    assert g.A_vector(0).tolist() == np.eye(g.num_node).tolist()


@pytest.mark.parametrize('name,layout,V', [('ntu', 'ntu', 25), ('ucla', 'nw-ucla', 20)])
def test_each_module_defines_its_whole_layout(name, layout, V):
    cls = GRAPHS[name]
    assert (cls.name, cls.num_node, cls.channels, cls.score_channel) == (layout, V, 3, None)
    for field in ('inward', 'vector_edges', 'bone_pairs'):
        assert isinstance(getattr(cls, field), list), field
    assert list(cls.parts) == ['joint', 'bone']


def test_unknown_labeling_mode():
    with pytest.raises(ValueError, match='labeling_mode'):
        ntu_rgb_d.Graph('uniform')
