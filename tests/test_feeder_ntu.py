"""feeders/feeder_ntu.py, feeders/storage.py and feeders/convert_h5.py."""
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import FIXTURES, need
from feeders import convert_h5
from feeders.feeder_ntu import Feeder
from feeders.storage import npz_member_memmap
from torchlight.errors import UserError

MODALITY_KWARGS = {'joint': {}, 'joint_vel': {'vel': True}, 'bone': {'bone': True},
                   'bone_vel': {'bone': True, 'vel': True}}
TEST_ARGS = dict(split='test', window_size=64, p_interval=[0.95])
TRAIN_ARGS = dict(split='train', window_size=64, p_interval=[0.5, 1], random_rot=True)


def make_split(rng, n, T, num_class):
    x = np.zeros((n, T, 150), dtype=np.float32)
    for i, length in enumerate(rng.integers(1, T + 1, size=n)):
        x[i, :length] = rng.normal(size=(length, 150))
        if i % 2:  # one-actor sample: the second body is zeros
            x[i, :length, 75:] = 0
    y = np.eye(num_class)[rng.integers(0, num_class, size=n)]
    return x, y


def write_npz(path, n_train=6, n_test=4, T=40, num_class=60, seed=0, save=np.savez):
    rng = np.random.default_rng(seed)
    x_train, y_train = make_split(rng, n_train, T, num_class)
    x_test, y_test = make_split(rng, n_test, T, num_class)
    save(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture
def npz(tmp_path):
    return write_npz(tmp_path / 'NTU60_CS.npz')


def items(feeder):
    return [feeder[i] for i in range(len(feeder))]


# ------------------------------------------------------------------ upstream pins

@pytest.mark.parametrize('name', list(MODALITY_KWARGS))
def test_test_path_equals_upstream(name, tmp_path):
    expected = np.load(need(FIXTURES / 'feeders' / 'upstream_feeder_outputs.npz'))
    npz_path = need(FIXTURES / 'ntu60' / 'expected' / 'NTU60_CS.npz')
    h5_path = tmp_path / 'NTU60_CS.h5'
    convert_h5.convert(npz_path, h5_path, log=lambda *_: None)
    for path in (npz_path, h5_path):
        feeder = Feeder(path, **TEST_ARGS, **MODALITY_KWARGS[name])
        got = items(feeder)
        np.testing.assert_array_equal(np.stack([d for d, _, _ in got]),
                                      expected[f'ntu_test_{name}'])
        assert [label for _, label, _ in got] == expected['ntu_test_labels'].tolist()
        assert feeder.label == expected['ntu_test_labels'].tolist()


# ------------------------------------------------------------------ items and attributes

def test_item_contract(npz):
    feeder = Feeder(npz, **TEST_ARGS)
    data, label, index = feeder[3]
    assert data.dtype == np.float32 and data.shape == (3, 64, 25, 2)
    assert type(label) is int and type(index) is int and index == 3
    assert len(feeder) == 4 and feeder.sample_name == ['test_0', 'test_1', 'test_2', 'test_3']
    assert all(type(v) is int for v in feeder.label)
    train = Feeder(npz, split='train', window_size=32, p_interval=[0.5, 1])
    assert train.sample_name[0] == 'train_0' and train[0][0].shape == (3, 32, 25, 2)
    # window_size <= 0 keeps the file's padded length
    assert Feeder(npz, split='test')[0][0].shape == (3, 40, 25, 2)


def test_item_reads_sample_layout_as_ctvm(npz):
    raw = np.load(npz)['x_test'][0]
    valid = int((raw != 0).any(1).sum())
    feeder = Feeder(npz, split='test', window_size=valid, p_interval=[1.0])  # no resampling: the sample itself
    data = feeder[0][0]
    # 150 = body (2) x joint (25) x xyz (3)
    np.testing.assert_array_equal(data, raw[:valid].reshape(valid, 2, 25, 3).transpose(3, 0, 2, 1))


def test_modality_option_equals_upstream_aliases(npz):
    for name, kwargs in MODALITY_KWARGS.items():
        alias = Feeder(npz, **TEST_ARGS, **kwargs)
        named = Feeder(npz, **TEST_ARGS, modality=name)
        assert named.modality == alias.modality
        np.testing.assert_array_equal(named[1][0], alias[1][0])
    with pytest.raises(UserError, match='conflicting'):
        Feeder(npz, **TEST_ARGS, modality='joint', bone=True)


def test_top_k(npz):
    feeder = Feeder(npz, **TEST_ARGS)
    score = np.random.default_rng(0).normal(size=(len(feeder), 60))
    for k in (1, 5, 60):
        rank = score.argsort()
        expected = np.mean([label in rank[i, -k:] for i, label in enumerate(feeder.label)])
        assert feeder.top_k(score, k) == pytest.approx(expected)
    assert feeder.top_k(score, 60) == 1.0


def test_all_zero_sample_gives_zero_item(tmp_path):
    path = tmp_path / 'zero.npz'
    x = np.zeros((2, 10, 150), np.float32)
    x[1, :4] = 1
    np.savez(path, x_train=x, y_train=np.eye(60)[[0, 1]], x_test=x, y_test=np.eye(60)[[0, 1]])
    convert_h5.convert(path, tmp_path / 'zero.h5', log=lambda *_: None)
    for source in (path, tmp_path / 'zero.h5'):
        data, label, _ = Feeder(source, **TEST_ARGS)[0]
        assert data.shape == (3, 64, 25, 2) and not data.any() and label == 0


def test_debug_keeps_first_100(tmp_path):
    path = write_npz(tmp_path / 'big.npz', n_train=105, T=4)
    assert len(Feeder(path, split='train', debug=True)) == 100


# ------------------------------------------------------------------ training-time randomness

def test_train_items_reproducible_under_torch_seed(npz):
    def run(seed):
        torch.manual_seed(seed)
        return np.stack([d for d, _, _ in items(Feeder(npz, **TRAIN_ARGS))])

    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dataloader_workers_draw_different_augmentations(tmp_path):
    # every sample identical: with one shared RNG state the two workers would return equal items
    path = tmp_path / 'same.npz'
    x = np.repeat(np.random.default_rng(0).normal(size=(1, 20, 150)).astype(np.float32), 4, 0)
    y = np.eye(60)[[0, 0, 0, 0]]
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    torch.manual_seed(0)
    loader = DataLoader(Feeder(path, **TRAIN_ARGS), batch_size=1, num_workers=2)
    batches = [data[0].numpy() for data, _, _ in loader]
    assert not np.array_equal(batches[0], batches[1])  # index 0 -> worker 0, index 1 -> worker 1


def test_feeder_pickles_without_its_data(npz):
    feeder = Feeder(npz, **TEST_ARGS)
    feeder[0]  # opens the memory map
    blob = pickle.dumps(feeder)
    assert len(blob) < 4000  # 10 samples x 40 x 150 floats would be 24 kB
    np.testing.assert_array_equal(pickle.loads(blob)[2][0], feeder[2][0])


# ------------------------------------------------------------------ storage: npz memmap, HDF5

def test_npz_member_is_memory_mapped(npz):
    mm = npz_member_memmap(npz, 'x_train')
    assert isinstance(mm, np.memmap)
    np.testing.assert_array_equal(mm, np.load(npz)['x_train'])
    with pytest.raises(UserError, match="no array 'x_val'"):
        npz_member_memmap(npz, 'x_val')


def test_compressed_npz_is_refused_clearly_and_converts(tmp_path):
    path = write_npz(tmp_path / 'c.npz', save=np.savez_compressed)
    with pytest.raises(UserError, match='compressed.*convert_h5'):
        Feeder(path, **TEST_ARGS)
    convert_h5.convert(path, tmp_path / 'c.h5', log=lambda *_: None)
    plain = write_npz(tmp_path / 'p.npz')  # same seed: same arrays, uncompressed
    np.testing.assert_array_equal(Feeder(tmp_path / 'c.h5', **TEST_ARGS)[2][0],
                                  Feeder(plain, **TEST_ARGS)[2][0])


def test_h5_stores_true_lengths_and_reads_identically(npz, tmp_path):
    import h5py
    h5_path = tmp_path / 'out.h5'
    convert_h5.main([str(npz), '-o', str(h5_path), '--chunk-frames', '16'])
    raw = np.load(npz)
    with h5py.File(h5_path) as f:
        for split in ('train', 'test'):
            x = raw[f'x_{split}']
            lengths = [int(np.flatnonzero(s.any(1)).max()) + 1 for s in x]
            np.testing.assert_array_equal(np.diff(f[split]['offsets'][()]), lengths)
            np.testing.assert_array_equal(f[split]['label'][()], raw[f'y_{split}'].argmax(1))
        assert f.attrs['num_frames'] == 40 and f.attrs['num_class'] == 60
    for kwargs in (TEST_ARGS, dict(TRAIN_ARGS, modality='bone_motion'), dict(split='test')):
        torch.manual_seed(3)
        a = items(Feeder(npz, **kwargs))
        torch.manual_seed(3)
        b = items(Feeder(h5_path, **kwargs))
        for (da, la, _), (db, lb, _) in zip(a, b):
            np.testing.assert_array_equal(da, db)
            assert la == lb


# ------------------------------------------------------------------ bad input

def test_missing_npz_names_file_and_prep_command(tmp_path):
    with pytest.raises(UserError, match=r'NTU60_CV\.npz not found.*cd data/ntu && python '
                                        r'get_raw_skes_data\.py'):
        Feeder(tmp_path / 'NTU60_CV.npz', **TEST_ARGS)
    with pytest.raises(UserError, match='cd data/ntu120 &&'):
        Feeder(tmp_path / 'NTU120_CSub.npz', **TEST_ARGS)
    with pytest.raises(UserError, match='convert_h5.py'):
        Feeder(tmp_path / 'NTU60_CS.h5', **TEST_ARGS)


def test_wrong_shapes_and_labels_say_what_was_expected(tmp_path):
    def save(name, **arrays):
        full = dict(x_train=np.zeros((2, 5, 150), np.float32), y_train=np.eye(60)[[0, 1]],
                    x_test=np.zeros((2, 5, 150), np.float32), y_test=np.eye(60)[[0, 1]])
        full.update(arrays)
        np.savez(tmp_path / name, **full)
        return tmp_path / name

    cases = [
        (save('a.npz', x_test=np.zeros((2, 5, 75), np.float32)),
         r'expected samples of shape \(N, T, 150\)'),
        (save('b.npz', y_test=np.zeros((2, 60))), 'expected exactly one positive entry'),
        (save('c.npz', y_test=np.eye(60)[[0, 1, 2]]), '2 samples but 3 labels'),
        (save('d.npz', y_test=np.arange(2)), r'one-hot labels of shape \(N, num_class\)'),
    ]
    for path, message in cases:
        with pytest.raises(UserError, match=message):
            Feeder(path, split='test')
    with pytest.raises(UserError, match="unknown split 'val'"):
        Feeder(cases[0][0], split='val')
    not_npz = tmp_path / 'x.npz'
    not_npz.write_text('hello')
    with pytest.raises(UserError, match='not an .npz'):
        Feeder(not_npz, split='test')


def test_h5_label_range_is_checked(npz, tmp_path):
    import h5py
    h5_path = tmp_path / 'bad.h5'
    convert_h5.convert(npz, h5_path, log=lambda *_: None)
    with h5py.File(h5_path, 'r+') as f:
        f['test']['label'][0] = 60
    with pytest.raises(UserError, match=r'labels must lie in \[0, 59\]'):
        Feeder(h5_path, split='test')


def test_convert_script_prints_one_line_error(tmp_path):
    script = Path(convert_h5.__file__)
    run = subprocess.run([sys.executable, str(script), str(tmp_path / 'NTU60_CS.npz')],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode != 0 and run.stdout == ''
    assert run.stderr.startswith('error: NTU data file') and run.stderr.count('\n') == 1
