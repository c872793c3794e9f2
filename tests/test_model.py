"""model.ctrgcn: upstream names/shapes, upstream outputs, every class and dataset, errors."""
import importlib.util
import re

import pytest
import torch

from conftest import REFERENCE, REPO, need
from graph import ntu_rgb_d, ucla
from model import ctrgcn
from model.ctrgcn import (TEXT_WIDTHS, Model, Model_lst_4part, Model_lst_4part_bone,
                          Model_lst_4part_bone_ucla, Model_lst_4part_ucla, count_parameters)
from torchlight.checkpoint import load_weights
from torchlight.errors import UserError

# Each upstream class as its upstream config builds it: (class, kwargs, graph module, k, parts).
NTU = dict(num_class=60, num_point=25, num_person=2, graph='graph.ntu_rgb_d.Graph',
           graph_args={'labeling_mode': 'spatial'})
UCLA = dict(num_class=10, num_point=20, num_person=1, graph='graph.ucla.Graph',
            graph_args={'labeling_mode': 'spatial'})
GAP_CLASSES = {
    'Model_lst_4part': (Model_lst_4part, NTU, ntu_rgb_d, 8, 'joint'),
    'Model_lst_4part_bone': (Model_lst_4part_bone, NTU, ntu_rgb_d, 1, 'bone'),
    'Model_lst_4part_ucla': (Model_lst_4part_ucla, UCLA, ucla, 6, 'joint'),
    'Model_lst_4part_bone_ucla': (Model_lst_4part_bone_ucla, UCLA, ucla, 1, 'bone'),
}
ALL_CLASSES = dict(GAP_CLASSES, Model=(Model, NTU, ntu_rgb_d, 0, None))


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    # Small convs on a shared 2-core machine: a second intra-op thread mostly waits at barriers.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name, **overrides):
    cls, kwargs, _, k, _ = ALL_CLASSES[name]
    kwargs = dict(kwargs, **overrides)
    if name != 'Model':
        kwargs.setdefault('k', k)
        kwargs.setdefault('head', ['ViT-B/32'])
    return cls(**kwargs)


def tiny_input(model, n=2, t=12):
    return torch.randn(n, 3, t, model.num_point, model.num_person)


def upstream_keys():
    """{class name: ({key: shape tuple}, trainable count)} from upstream_state_dict_keys.txt."""
    sections, current = {}, None
    for line in need(REFERENCE / 'upstream_state_dict_keys.txt').read_text().splitlines():
        header = re.match(r'\[model\.ctrgcn\.(\w+)\]\s+(\d+) entries, (\d+) trainable', line)
        if header:
            current = sections[header[1]] = ({}, int(header[3]))
        elif current is not None and line.strip():
            key, shape = line.split()
            current[0][key] = () if shape == 'scalar' else tuple(int(s) for s in shape.split('x'))
    return sections


@pytest.fixture(scope='module')
def upstream_baseline():
    """The benchmark's structure-for-structure re-implementation of upstream's computation."""
    path = REPO / 'tests' / 'benchmarks' / 'bench_model.py'
    spec = importlib.util.spec_from_file_location('bench_model', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Upstream4Part


# ---------------------------------------------------------------------------- names and sizes
@pytest.mark.parametrize('name', ALL_CLASSES)
def test_state_dict_names_shapes_and_counts_are_upstreams(name):
    expected, trainable = upstream_keys()[name]
    model = build(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected
    assert count_parameters(model) == trainable


def test_published_parameter_counts():
    assert count_parameters(build('Model')) == 1_446_672
    assert count_parameters(build('Model_lst_4part')) == 2_104_597
    assert count_parameters(build('Model_lst_4part_ucla')) == 2_084_817


@pytest.mark.parametrize('name', GAP_CLASSES)
def test_input_transform_is_a_constant_outside_the_state_dict(name):
    _, _, graph_module, k, _ = GAP_CLASSES[name]
    model = build(name)
    assert 'A_vector' not in model.state_dict()
    assert torch.equal(model.A_vector, torch.from_numpy(graph_module.Graph().A_vector(k)))
    assert model.k == k


@pytest.mark.parametrize('name', GAP_CLASSES)
def test_aliases_default_to_their_upstream_config(name):
    cls, kwargs, graph_module, k, parts = GAP_CLASSES[name]
    model = cls()  # nothing given: the dataset's classes, joints, persons, k and parts
    assert (model.num_class, model.num_point, model.num_person, model.k) == (
        kwargs['num_class'], kwargs['num_point'], kwargs['num_person'], k)
    assert model.part_joints == UPSTREAM_PART_JOINTS[name]


# Body-part joints (0-based) of each upstream class, typed from upstream's model code: head, hand,
# hip, foot.
UPSTREAM_PART_JOINTS = {
    'Model_lst_4part': [[2, 3, 20], [4, 5, 6, 7, 8, 9, 10, 11, 21, 22, 23, 24], [0, 1, 2, 12, 16],
                        [12, 13, 14, 15, 16, 17, 18, 19]],
    'Model_lst_4part_bone': [[2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 20, 22, 23, 24], [0, 1, 12, 16],
                             [12, 13, 14, 15, 16, 17, 18, 19]],
    'Model_lst_4part_ucla': [[2, 3], [10, 11, 6, 7, 8, 9, 4, 5], [0, 1, 12, 16],
                             [16, 17, 18, 19, 12, 13, 14, 15]],
    'Model_lst_4part_bone_ucla': [[2], [7, 8, 9, 10, 3, 4, 5, 6], [0, 1, 11, 15],
                                  [11, 12, 13, 14, 15, 16, 17, 18]],
}


# ------------------------------------------------------------------------------ upstream parity
def _fixture():
    return torch.load(need(REFERENCE / 'upstream_Model_lst_4part_ntu60.pt'),
                      map_location='cpu', weights_only=True)


def _assert_fixture_outputs(model, ref):
    model.eval()
    with torch.no_grad():
        logits, global_feats, scale, parts = model(ref['x'])
    assert (logits - ref['logits']).abs().max() < 1e-4
    assert global_feats.keys() == ref['global'].keys()
    for key in global_feats:
        assert (global_feats[key] - ref['global'][key]).abs().max() < 1e-4
    assert (scale - ref['scale']).abs().max() < 1e-4
    assert len(parts) == len(ref['parts']) == 4
    for ours, theirs in zip(parts, ref['parts']):
        assert (ours - theirs).abs().max() < 1e-4


def test_upstream_checkpoint_loads_strictly_and_gives_upstreams_outputs():
    ref = _fixture()
    model = build('Model_lst_4part')
    model.load_state_dict(ref['state_dict'], strict=True)
    _assert_fixture_outputs(model, ref)


def test_upstream_checkpoint_with_dataparallel_prefix(tmp_path):
    ref = _fixture()
    path = tmp_path / 'runs-1-100.pt'
    torch.save({f'module.{k}': v for k, v in ref['state_dict'].items()}, path)
    model = build('Model_lst_4part')
    load_weights(model, path, log=lambda *_: None)
    _assert_fixture_outputs(model, ref)


def _perturbed_state(model, seed):
    """Upstream init makes the graph convs nearly silent (BN weight 1e-6, alpha 0): perturb
    every tensor so that each path of the computation shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for key, value in state.items():
        if value.is_floating_point():
            value.add_(0.1 * torch.randn(value.shape, generator=g))
            if key.endswith('running_var'):
                value.abs_().add_(0.5)
    return state


@pytest.mark.parametrize('name', ['Model_lst_4part', 'Model_lst_4part_bone_ucla'])
def test_same_outputs_and_gradients_as_upstreams_computation(name, upstream_baseline):
    """Against upstream's way of computing (bmm per frame, a loop over the CTR-GC subsets), in
    float64 so that agreement to 1e-9 shows the same maths, in train and eval mode."""
    cls, kwargs, _, k, parts = GAP_CLASSES[name]
    reference = upstream_baseline(num_class=kwargs['num_class'], num_person=kwargs['num_person'],
                                  graph=kwargs['graph'], k=k, representation=parts)
    state = _perturbed_state(reference, seed=1)
    ours = build(name)
    ours.load_state_dict(state, strict=True)
    reference.load_state_dict(state, strict=True)
    ours.double()
    reference.double()
    x = tiny_input(ours, t=16).double()
    for mode in (True, False):
        ours.train(mode)
        reference.train(mode)
        ours.zero_grad()
        reference.zero_grad()
        a, b = ours(x), reference(x)
        flat_a = [a[0], *a[1].values(), a[2], *a[3]]
        flat_b = [b[0], *b[1].values(), b[2], *b[3]]
        for p, q in zip(flat_a, flat_b):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9 * q.abs().max().item())
        sum(t.square().mean() for t in flat_a).backward()
        sum(t.square().mean() for t in flat_b).backward()
        grads_b = {key: p.grad for key, p in reference.named_parameters()}
        # Biases of convs followed by train-mode BN have zero true gradient (round-off only):
        # tolerances scale with the largest gradient of the model as well as the tensor's own.
        floor = max(g.abs().max().item() for g in grads_b.values())
        for key, param in ours.named_parameters():
            scale = grads_b[key].abs().max().item()
            torch.testing.assert_close(param.grad, grads_b[key], rtol=1e-7,
                                       atol=1e-9 * (scale + floor), msg=lambda m: f'{key}: {m}')


# ------------------------------------------------------------------ shapes, gradients, parts
@pytest.mark.parametrize('name', GAP_CLASSES)
def test_gap_forward_shapes_and_gradients(name):
    torch.manual_seed(0)
    model = build(name, drop_out=0.5)
    x = tiny_input(model)
    for mode in (True, False):  # the same four things in train and eval
        model.train(mode)
        logits, global_feats, scale, parts = model(x)
        assert logits.shape == (2, model.num_class)
        assert list(global_feats) == ['ViT-B/32'] and global_feats['ViT-B/32'].shape == (2, 512)
        assert scale.shape == (1, 5)
        assert [p.shape for p in parts] == [(2, 512)] * 4
    model.train()
    model.zero_grad()
    logits, global_feats, scale, parts = model(x)
    loss = logits.logsumexp(1).mean() + global_feats['ViT-B/32'].square().mean() + scale.sum()
    (loss + sum(p.square().mean() for p in parts)).backward()
    for key, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), key
    # At upstream's init alpha = 0 gates conv1/conv2/conv4 of every CTR-GC; alpha itself learns.
    assert all(model.get_submodule(f'l{i}.gcn1').alpha.grad.abs() > 0 for i in range(1, 11))
    assert model.l1.gcn1.convs[0].conv3.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('dataset', ['ntu', 'ucla'])
def test_plain_ctrgcn_returns_logits_and_trains(dataset):
    model = Model(**(NTU if dataset == 'ntu' else UCLA))
    x = tiny_input(model)
    logits = model(x)
    assert logits.shape == (2, model.num_class)
    logits.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_three_dimensional_input_is_one_person_per_sample():
    model = build('Model_lst_4part_ucla').eval()
    x = tiny_input(model)                          # (N, C, T, V, 1)
    flat = x[..., 0].permute(0, 2, 3, 1).reshape(2, 12, -1)   # (N, T, V*C)
    torch.testing.assert_close(model(flat)[0], model(x)[0])


def test_part_features_pool_the_graphs_part_joints_in_upstream_slots():
    model = build('Model_lst_4part').eval()
    x = tiny_input(model)
    with torch.no_grad():
        _, _, _, parts = model(x)
        fmap = model.encode(x)                     # (N, M, C, T', V)
        # upstream: part_list[0] head, [1] hand, [2] foot, [3] hip; returned head, hand, hip, foot
        for out, slot, joints in zip(parts, (0, 1, 3, 2), model.part_joints):
            expected = model.part_list[slot](fmap[..., joints].mean(4).mean(3).mean(1))
            torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize('name', GAP_CLASSES)
def test_part_groups_lie_inside_the_graph(name):
    model = build(name)
    assert len(model.part_joints) == 4
    for joints in model.part_joints:
        assert joints and len(set(joints)) == len(joints)
        assert all(0 <= j < model.graph.num_node for j in joints)


@pytest.mark.parametrize('encoder', sorted(TEXT_WIDTHS))
def test_text_heads_take_the_encoders_width(encoder):
    model = build('Model_lst_4part_ucla', head=[encoder])
    width = TEXT_WIDTHS[encoder]
    assert model.text_width == width
    assert model.linear_head[encoder].weight.shape == (width, 256)
    assert all(p.weight.shape == (width, 256) for p in model.part_list)
    _, feats, _, parts = model.eval()(tiny_input(model, t=8))
    assert feats[encoder].shape == (2, width) and all(p.shape == (2, width) for p in parts)


def test_text_width_table():
    assert TEXT_WIDTHS == {'ViT-B/32': 512, 'ViT-B/16': 512, 'ViT-L/14': 768,
                           'ViT-L/14@336px': 768, 'RN50x16': 768, 'RN50x64': 1024,
                           'all-MiniLM-L6-v2': 384}


def test_k_zero_leaves_joints_unchanged_and_k_one_makes_bones():
    model = build('Model_lst_4part', k=0)
    x = tiny_input(model)
    torch.testing.assert_close(model.transform_input(x), x)
    bones = build('Model_lst_4part_bone').transform_input(x)
    for child, parent in ntu_rgb_d.Graph().vector_edges:   # joint minus its parent
        torch.testing.assert_close(bones[:, :, :, child], x[:, :, :, child] - x[:, :, :, parent])


def test_ucla_k_one_is_each_joint_minus_its_children():
    """Upstream's NW-UCLA 'bone' input: I - A over the outward (parent, child) edges, so a joint
    loses its children, not its parent. Pinned as upstream computes it."""
    A_vector = build('Model_lst_4part_bone_ucla').A_vector
    row = {j: -1.0 for j in (2, 4, 5, 9)}  # 1-based joint 3: x3 - x2 - x4 - x5 - x9
    row[3] = 1.0
    assert A_vector[2].tolist() == [row.get(v, 0.0) for v in range(1, 21)]
    assert A_vector[19].tolist() == [float(v == 20) for v in range(1, 21)]   # joint 20, a foot tip
    # x of 1-based joint v is v^2: joint 3 gives 9 - 4 - 16 - 25 - 81, the leaf 20 stays 400
    x = torch.zeros(1, 3, 1, 20, 1)
    x[0, 0, 0, :, 0] = torch.arange(1, 21).double() ** 2
    out = build('Model_lst_4part_bone_ucla').transform_input(x)[0, 0, 0, :, 0]
    assert (out[2].item(), out[19].item()) == (-117.0, 400.0)


def test_one_class_serves_every_variant():
    bone = ctrgcn.GAPModel(num_class=10, num_point=20, num_person=1, graph='graph.ucla.Graph',
                           k=1, parts='bone')
    alias = Model_lst_4part_bone_ucla()
    assert bone.part_joints == alias.part_joints and torch.equal(bone.A_vector, alias.A_vector)
    assert issubclass(Model_lst_4part_bone_ucla, ctrgcn.GAPModel)


def test_defaults_naming_num_point_still_work():
    class Old(ctrgcn.GAPModel):  # a subclass written when DEFAULTS had to give num_point
        DEFAULTS = dict(num_class=10, num_point=20, num_person=1, graph='graph.ucla.Graph', k=6)

    assert Old().num_point == 20
    Old.DEFAULTS = dict(Old.DEFAULTS, num_point=25)
    with pytest.raises(UserError, match='num_point=25 but graph nw-ucla has 20 joints'):
        Old()


def test_non_adaptive_graph_is_a_constant():
    model = build('Model_lst_4part_ucla', adaptive=False)
    assert not any(k.endswith('.PA') for k in model.state_dict())
    assert model(tiny_input(model))[0].shape == (2, 10)


# ------------------------------------------------------------------------------------- errors
def test_unknown_graph_is_a_user_error():
    with pytest.raises(UserError, match=r"unknown layout 'graph\.kinetics\.Graph' \(known: ntu, "):
        build('Model_lst_4part', graph='graph.kinetics.Graph')
    with pytest.raises(UserError, match='unknown layout'):
        build('Model', graph='nonsense')


@pytest.mark.parametrize('name', ALL_CLASSES)
def test_graph_by_layout_name_and_sizes_from_the_graph(name):
    """'ntu' / 'nw-ucla' name the same graph as upstream's class paths; num_point and
    in_channels, left out, are the graph's."""
    cls, kwargs, graph_module, _, _ = ALL_CLASSES[name]
    layout = graph_module.Graph.name
    kwargs = {k: v for k, v in kwargs.items() if k != 'num_point'}
    model = cls(**dict(kwargs, graph=layout))
    assert type(model.graph) is graph_module.Graph
    assert (model.num_point, model.in_channels) == (graph_module.Graph.num_node, 3)
    assert model.state_dict().keys() == build(name).state_dict().keys()


def test_unknown_text_encoder_lists_the_known_ones():
    with pytest.raises(UserError, match=r"unknown text encoder.*'ViT-H/14'.*ViT-B/32.*all-MiniLM-L6-v2"):
        build('Model_lst_4part', head=['ViT-H/14'])
    with pytest.raises(UserError, match=r'no text encoder in head \(known: ViT-B/32'):
        build('Model_lst_4part', head=[])


def test_config_and_input_mismatches_are_user_errors():
    with pytest.raises(UserError, match='num_point=25 but graph nw-ucla has 20 joints'):
        build('Model_lst_4part_ucla', num_point=25)
    with pytest.raises(UserError, match='in_channels=2 but graph ntu has 3 channels'):
        build('Model_lst_4part', in_channels=2)
    with pytest.raises(UserError, match='labeling_mode'):
        build('Model_lst_4part', graph_args={'labeling_mode': 'uniform'})
    with pytest.raises(UserError, match=r"unknown parts 'arms' \(known: joint, bone\)"):
        build('Model_lst_4part', parts='arms')
    with pytest.raises(UserError, match='k must be'):
        build('Model_lst_4part', k=-1)
    model = build('Model_lst_4part')
    with pytest.raises(UserError, match=r'does not fit the model'):
        model(torch.zeros(2, 3, 8, 20, 1))

