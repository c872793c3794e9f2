"""The pyskl route against the npz route on the same raw `.skeleton` files.

data/convert_ntu_pyskl.py writes a pyskl pickle of the denoised, untranslated samples; the NTU prep
(data/pipeline.py) writes the upstream npz files. Read through their feeders (feeder_pyskl with
layout 'ntu', feeder_ntu), every sample of every benchmark split must give the same items, joint
and bone, bit for bit: the pickle keeps float32, and feeder_pyskl's centring does translate's
arithmetic. The one known difference is pinned: an NTU120 npz fills a one-actor sample's second
body with a copy of the actor, the pickle keeps one body and the feeder pads zeros.

Raw files: data/synthetic.py (seed 5, three per action: one-body files, noise bodies dropped by
the length or spread rule, two actors with and without a third, noise body, files opening with
empty frames), and the real NTU fixtures (29 NTU60, 24 NTU120 files) when the reference data is
there.
"""
import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import FIXTURES, need

from data import convert_ntu_pyskl, pipeline
from data.skeleton_io import read_skeleton
from data.splits import parse_name
from data.synthetic import generate
from data.translate import as_rows, to_150, translate
from feeders.feeder_ntu import Feeder as NpzFeeder
from feeders.feeder_pyskl import Feeder as PysklFeeder
from torchlight.errors import UserError

# npz file -> pyskl split-name prefix
BENCHMARKS = {'ntu60': (('NTU60_CS.npz', 'xsub'), ('NTU60_CV.npz', 'xview')),
              'ntu120': (('NTU120_CSub.npz', 'xsub'), ('NTU120_CSet.npz', 'xset'))}
PARTS = (('train', 'train'), ('test', 'val'))  # npz split -> pyskl split suffix
VIEW = dict(window_size=64, p_interval=[0.95])  # the test-time view, used on both parts
quiet = [].append


@pytest.fixture(autouse=True)
def _isolated_one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv('GAP_CACHE_DIR', str(tmp_path / 'cache'))  # no store outside tmp
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def synthetic_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp('synthetic') / 'raw'
    generate(raw, seed=5, per_class=3)
    return raw


def build(raw, out, dataset):
    """Both routes on `raw`: the npz folder and the pickle (written by the converter's CLI)."""
    pipeline.prepare(raw, out / 'npz', dataset, workers=1, log=quiet)
    pkl = out / f'{dataset}.pkl'
    assert convert_ntu_pyskl.main(['--dataset', dataset, '--raw-root', str(raw), '--out', str(pkl),
                                   '--workers', '1']) == 0
    with open(pkl, 'rb') as f:
        return out / 'npz', pkl, pickle.load(f)


def check_pickle(data, dataset):
    """The pickle itself: pyskl's format, the npz route's samples before translation."""
    ds = pipeline.get_dataset(dataset)
    annotations = data['annotations']
    names = [a['frame_dir'] for a in annotations]
    assert names == sorted(names)
    expected_splits = [f'{prefix}_{part}' for _, prefix in BENCHMARKS[dataset] for part in ('train', 'val')]
    assert list(data['split']) == expected_splits
    for _, prefix in BENCHMARKS[dataset]:  # each benchmark parts the whole set
        train, val = data['split'][f'{prefix}_train'], data['split'][f'{prefix}_val']
        assert sorted(train + val) == names
    for a in annotations:
        assert set(a) == {'frame_dir', 'label', 'total_frames', 'keypoint'}
        k = a['keypoint']
        assert k.dtype == np.float32 and k.shape[2:] == (25, 3) and k.shape[0] in (1, 2)
        assert a['total_frames'] == k.shape[1] > 0
        assert a['label'] == parse_name(a['frame_dir'])['action'] - 1
        # uncentred: camera-space depth, metres in front of the sensor, wherever body 0 is present
        z = k[0, np.any(k[0] != 0, axis=(1, 2)), :, 2]
        assert z.min() > 0.5, a['frame_dir']
    assert {len(a['keypoint']) for a in annotations} == {1, 2}
    return ds, {a['frame_dir']: a for a in annotations}


def compare(raw, out, dataset):
    """Every split and modality of both routes; returns what was compared, for the callers' pins."""
    npz_dir, pkl, data = build(raw, out, dataset)
    ds, by_name = check_pickle(data, dataset)
    stats = {'items': 0, 'one_actor_copies': 0, 'bodies': {}}
    for npz_name, prefix in BENCHMARKS[dataset]:
        with np.load(npz_dir / npz_name) as npz:
            arrays = {part: (npz[f'x_{part}'], npz[f'y_{part}']) for part, _ in PARTS}
        for part, suffix in PARTS:
            split = f'{prefix}_{suffix}'
            names = data['split'][split]
            x, y = arrays[part]
            assert len(names) == len(x) > 0, split
            # the arrays: translating and padding the pickle's sample gives the npz row
            for i, name in enumerate(names):
                a = by_name[name]
                T = a['total_frames']
                row = to_150(translate(as_rows(a['keypoint'])), ds.repeat_single)
                np.testing.assert_array_equal(x[i, :T], row, err_msg=name)
                assert not x[i, T:].any(), name
                assert y[i].argmax() == a['label']
                stats['bodies'][name] = len(a['keypoint'])
            for modality in ('joint', 'bone'):
                ours = NpzFeeder(npz_dir / npz_name, split=part, modality=modality, **VIEW)
                theirs = PysklFeeder(pkl, split, layout='ntu', modality=modality, **VIEW)
                assert len(ours) == len(theirs) == len(names)
                assert theirs.sample_name == names
                for i, name in enumerate(names):
                    a, label_a, _ = ours[i]
                    b, label_b, _ = theirs[i]
                    assert a.shape == b.shape == (3, 64, 25, 2) and a.dtype == b.dtype == np.float32
                    assert label_a == label_b == by_name[name]['label']
                    if ds.repeat_single and len(by_name[name]['keypoint']) == 1:
                        # NTU120 npz: body 1 copies body 0; the pickle's padding is zeros
                        np.testing.assert_array_equal(a[..., 0], b[..., 0], err_msg=name)
                        np.testing.assert_array_equal(a[..., 1], a[..., 0], err_msg=name)
                        assert a[..., 1].any() and not b[..., 1].any(), name
                        stats['one_actor_copies'] += 1
                    else:
                        np.testing.assert_array_equal(a, b, err_msg=f'{split} {modality} {name}')
                    stats['items'] += 1
    return data, stats


@pytest.mark.parametrize('dataset', ['ntu60', 'ntu120'])
def test_parity_on_synthetic(synthetic_raw, tmp_path, dataset):
    data, stats = compare(synthetic_raw, tmp_path, dataset)
    names = [a['frame_dir'] for a in data['annotations']]
    assert len(names) == 24  # 8 actions x 3; none on either missing-skeleton list
    assert stats['items'] == 2 * 2 * 24  # two benchmarks x two modalities, every sample once each
    files = {n: read_skeleton(synthetic_raw / 'nturgb+d_skeletons' / f'{n}.skeleton') for n in names}
    bodies = {n: len(ske.bodies) for n, ske in files.items()}
    assert sum(ske.dropped_frames > 0 for ske in files.values()) == 2  # open with empty frames
    # the denoising paths the comparison went through: (bodies in the file, actors kept) -> samples
    paths = Counter((bodies[n], stats['bodies'][n]) for n in names)
    assert paths == {(1, 1): 11,               # one body, kept as is
                     (2, 1): 5, (3, 1): 3,     # noise bodies dropped (length or spread rule)
                     (2, 2): 3, (3, 2): 2}     # two actors, with and without a noise body
    for _, prefix in BENCHMARKS[dataset]:  # both actor counts in every test split
        assert {stats['bodies'][n] for n in data['split'][f'{prefix}_val']} == {1, 2}
    # NTU120 only: every one-actor item differs in body 1 (a copy against zeros), twice per benchmark
    assert stats['one_actor_copies'] == (2 * 2 * 19 if dataset == 'ntu120' else 0)


@pytest.mark.parametrize('dataset', ['ntu60', 'ntu120'])
def test_parity_on_real_fixtures(tmp_path, dataset):
    raw = need(FIXTURES / dataset / 'raw')
    data, stats = compare(raw, tmp_path, dataset)
    assert stats['items'] == 2 * 2 * len(data['annotations'])
    assert sum(m == 2 for m in stats['bodies'].values()) >= 5


def test_bad_input_is_one_line(synthetic_raw, tmp_path):
    with pytest.raises(UserError, match='raw skeleton folder not found'):
        convert_ntu_pyskl.main(['--raw-root', str(tmp_path / 'nothing'), '--out', str(tmp_path / 'a.pkl')])
    with pytest.raises(UserError, match='--workers must be at least 1'):
        convert_ntu_pyskl.main(['--raw-root', str(synthetic_raw), '--out', str(tmp_path / 'a.pkl'),
                                '--workers', '0'])
    # a broken file: named, and left out with --skip-bad
    raw = tmp_path / 'raw' / 'nturgb+d_skeletons'
    raw.mkdir(parents=True)
    good = sorted((synthetic_raw / 'nturgb+d_skeletons').iterdir())[0]
    (raw / good.name).write_bytes(good.read_bytes())
    (raw / 'S001C001P001R001A010.skeleton').write_text('2\n1\n72057594037927936 0 1 1 1 1 0 0 0 2\n25\n0 0\n')
    out = tmp_path / 'b.pkl'
    with pytest.raises(UserError, match=r'S001C001P001R001A010\.skeleton.*--skip-bad'):
        convert_ntu_pyskl.main(['--raw-root', str(raw.parent), '--out', str(out), '--workers', '1'])
    assert not out.exists() and not list(tmp_path.glob('.b.pkl.*'))
    assert convert_ntu_pyskl.main(['--raw-root', str(raw.parent), '--out', str(out), '--workers', '1',
                                   '--skip-bad']) == 0
    with open(out, 'rb') as f:
        data = pickle.load(f)
    assert [a['frame_dir'] for a in data['annotations']] == [good.name[:-len('.skeleton')]]
