"""feeders/feeder_ucla.py and the shipped split list data/NW-UCLA/split.json."""
import json

import numpy as np
import pytest
import torch

from conftest import FIXTURES, REFERENCE, UCLA_ALL_SQE, need
from feeders import feeder_ucla, sources, transforms
from feeders.feeder_ucla import Feeder
from torchlight.errors import UserError

MODALITIES = ('joint', 'bone', 'joint_motion', 'bone_motion')


@pytest.fixture
def tiny_ucla(tmp_path, monkeypatch):
    """Five train and three val sequences of random lengths, with their own split list."""
    rng = np.random.default_rng(0)
    root = tmp_path / 'all_sqe'
    root.mkdir()
    split = {'train': [], 'val': []}
    for i, (part, view) in enumerate([('train', 1)] * 5 + [('val', 3)] * 3):
        name = f'a{i + 1:02d}_s01_e00_v{view:02d}'
        # val sequences of at most 52 frames: the evenly spaced 52 indices then cover every frame
        length = int(rng.integers(5, 80 if part == 'train' else 52))
        skeletons = rng.normal(size=(length, 20, 3)).tolist()
        (root / f'{name}.json').write_text(json.dumps({'file_name': name, 'skeletons': skeletons}))
        split[part].append({'file_name': name, 'length': length, 'label': i % 10 + 1})
    split_file = tmp_path / 'split.json'
    split_file.write_text(json.dumps(split))
    monkeypatch.setattr(sources, 'UCLA_SPLIT', split_file)
    return root


# ------------------------------------------------------------------ upstream pins

def test_shipped_split_is_upstreams():
    with open(feeder_ucla.SPLIT_FILE) as f:
        split = json.load(f)
    assert len(split['train']) == 1020 and len(split['val']) == 464
    assert {e['label'] for e in split['train'] + split['val']} == set(range(1, 11))
    assert all(e['file_name'].endswith('_v03') for e in split['val'])
    with open(need(REFERENCE / 'nw_ucla_split.json')) as f:
        assert json.load(f) == split


@pytest.mark.parametrize('data_path', MODALITIES)
def test_val_path_equals_upstream(data_path):
    expected = np.load(need(FIXTURES / 'feeders' / 'upstream_feeder_outputs.npz'))
    feeder = Feeder(data_path, 'val', data_root=need(UCLA_ALL_SQE))
    got = [feeder[i] for i in range(64)]
    np.testing.assert_array_equal(np.stack([d for d, _, _ in got]),
                                  expected[f'ucla_val_{data_path}'])
    assert [label for _, label, _ in got] == expected['ucla_val_labels'].tolist()
    assert len(feeder) == 464 and feeder.sample_name[0] == 'a05_s04_e02_v03'


def test_modality_option_matches_data_path(tiny_ucla):
    for name in MODALITIES:
        np.testing.assert_array_equal(Feeder(None, 'val', modality=name, data_root=tiny_ucla)[1][0],
                                      Feeder(name, 'val', data_root=tiny_ucla)[1][0])
    with pytest.raises(UserError, match='conflicting'):
        Feeder('joint', 'val', modality='bone', data_root=tiny_ucla)


# ------------------------------------------------------------------ items

def test_val_item_contract(tiny_ucla):
    feeder = Feeder('joint', 'val', window_size=52, data_root=tiny_ucla)
    data, label, index = feeder[2]
    assert data.dtype == np.float32 and data.shape == (3, 52, 20, 1)
    assert type(label) is int and label == 7 and index == 2
    assert feeder.sample_name == ['a06_s01_e00_v03', 'a07_s01_e00_v03', 'a08_s01_e00_v03']
    # centred on joint 1 of frame 0, then each axis min-max normalised to [-1, 1]
    np.testing.assert_allclose(data.reshape(3, -1).min(1), -1, atol=1e-6)
    np.testing.assert_allclose(data.reshape(3, -1).max(1), 1, atol=1e-6)


def test_train_length_repeat_and_wrapping(tiny_ucla):
    feeder = Feeder('joint', 'train', repeat=5, window_size=52, data_root=tiny_ucla)
    assert len(feeder) == 25 and len(feeder.label) == 5
    data, label, index = feeder[7]
    assert data.shape == (3, 52, 20, 1) and label == feeder.label[2] and index == 7
    assert np.abs(data).max() <= 1 + 1e-6


def test_train_sampling_reproducible_under_torch_seed(tiny_ucla):
    def run(seed):
        torch.manual_seed(seed)
        feeder = Feeder('bone_motion', 'train', data_root=tiny_ucla)
        return np.stack([feeder[i][0] for i in range(len(feeder))])

    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_train_item_composes_centre_view_normalise_sample(tiny_ucla):
    feeder = Feeder('joint', 'train', data_root=tiny_ucla)
    torch.manual_seed(5)
    data = feeder[3][0]
    rng = np.random.default_rng(torch.initial_seed())  # the feeder's stream (feeders/rng.py)
    agx, agy = rng.integers(-60, 61, size=2)
    seq = transforms.ucla_view_transform(transforms.ucla_centre(feeder.data[3]), int(agx), int(agy),
                                         rng.uniform(0.5, 1.5))
    frames = transforms.ucla_train_indices(len(seq), 52, rng)
    expected = transforms.ucla_minmax(seq)[frames].transpose(2, 0, 1)[..., None]
    np.testing.assert_array_equal(data, expected.astype(np.float32))
    assert not np.array_equal(data, feeder[3][0])  # the next draw is another view


def test_top_k(tiny_ucla):
    feeder = Feeder('joint', 'val', data_root=tiny_ucla)
    score = np.zeros((3, 10))
    score[np.arange(3), feeder.label] = 1
    assert feeder.top_k(score, 1) == 1.0
    score[0] = np.arange(10)  # label 5 ranks 5th from the top
    assert feeder.top_k(score, 1) == pytest.approx(2 / 3)
    assert feeder.top_k(score, 5) == 1.0


# ------------------------------------------------------------------ bad input

def test_missing_folder_names_it_and_where_to_get_it(tmp_path):
    with pytest.raises(UserError, match=r'not found; download all_sqe\.zip .*data/NW-UCLA/all_sqe'):
        Feeder('joint', 'val', data_root=tmp_path / 'nowhere')


def test_missing_and_malformed_files(tiny_ucla):
    (tiny_ucla / 'a07_s01_e00_v03.json').unlink()
    with pytest.raises(UserError, match=r'a07_s01_e00_v03\.json is missing.*data/NW-UCLA/all_sqe'):
        Feeder('joint', 'val', data_root=tiny_ucla)
    (tiny_ucla / 'a07_s01_e00_v03.json').write_text('{"skeletons": [[[1, 2]]]}')
    with pytest.raises(UserError, match=r'expected skeletons of shape \(T, 20, 3\)'):
        Feeder('joint', 'val', data_root=tiny_ucla)
    (tiny_ucla / 'a07_s01_e00_v03.json').write_text('not json')
    with pytest.raises(UserError, match='expected json with a "skeletons" list'):
        Feeder('joint', 'val', data_root=tiny_ucla)


def test_bad_label_path_and_data_path(tiny_ucla):
    with pytest.raises(UserError, match="label_path must be 'train' or 'val'"):
        Feeder('joint', 'test', data_root=tiny_ucla)
    with pytest.raises(UserError, match="unknown NW-UCLA data_path 'skeleton'"):
        Feeder('skeleton', 'val', data_root=tiny_ucla)
