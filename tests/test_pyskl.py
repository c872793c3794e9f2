"""pyskl annotation pickles (feeders/pyskl.py, feeders/feeder_pyskl.py) on tiny synthetic files:
3D and 2D round trips against hand-computed values, the memory-mapped store written once and
reused, refused pickles, every bad input as one line with no store left behind, the feeder's
items for the ntu, nw-ucla and a toy 2D layout."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO
from feeders import pyskl
from feeders.pyskl import PysklPickle
from torchlight.errors import UserError

TOY2D = '''
"""A toy 2D skeleton of 5 joints: x, y and a detection score per joint."""
from graph.tools import SkeletonGraph


class Graph(SkeletonGraph):
    name = 'toy2d'
    num_node = 5
    channels = 3
    score_channel = 2
    inward = [(1, 0), (2, 0), (3, 0), (4, 3)]
    vector_edges = [(1, 0), (2, 0), (3, 0), (4, 3)]
    parts = {'joint': {'head': [1], 'hand': [2], 'hip': [0], 'foot': [3, 4]},
             'bone': {'head': [1], 'hand': [2], 'hip': [0], 'foot': [3, 4]}}
    bone_pairs = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 3)]
'''


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('GAP_CACHE_DIR', str(tmp_path / 'cache'))


@pytest.fixture(scope='module')
def toy2d(tmp_path_factory):
    folder = tmp_path_factory.mktemp('layout')
    (folder / 'toy2d_layout.py').write_text(textwrap.dedent(TOY2D))
    sys.path.insert(0, str(folder))
    yield 'toy2d_layout'
    sys.path.remove(str(folder))
    sys.modules.pop('toy2d_layout', None)


def ann3d(name, label, bodies, frames, joints=25, seed=0):
    rng = np.random.default_rng(seed)
    return {'frame_dir': name, 'label': label, 'total_frames': frames,
            'keypoint': rng.normal(0, 1, (bodies, frames, joints, 3)).astype(np.float16)}


def ann2d(name, label, bodies, frames, joints=5, img_shape=(100, 200), seed=0):
    rng = np.random.default_rng(seed)
    a = {'frame_dir': name, 'label': label, 'total_frames': frames,
         'keypoint': rng.uniform(0, 100, (bodies, frames, joints, 2)).astype(np.float32),
         'keypoint_score': rng.uniform(0.5, 1, (bodies, frames, joints)).astype(np.float16)}
    if img_shape is not None:
        a['img_shape'] = img_shape
    return a


def write(path, annotations, split=None):
    if split is None:
        names = [a['frame_dir'] for a in annotations]
        split = {'train': names[:-1], 'val': names[-1:]}
    with open(path, 'wb') as f:
        pickle.dump({'split': split, 'annotations': annotations}, f, protocol=2)  # mmcv's protocol
    return path


def store_root(pkl):
    return pkl.with_name(pkl.name + '.gapstore')


def assert_nothing_written(tmp_path, pkl):
    assert not store_root(pkl).exists()
    assert not (tmp_path / 'cache').exists() or not any((tmp_path / 'cache').iterdir())


def refused(pkl, match, **kwargs):
    with pytest.raises(UserError, match=match) as info:
        PysklPickle(pkl, kwargs.pop('split', 'train'), **kwargs)
    assert '\n' not in str(info.value)
    return str(info.value)


# ------------------------------------------------------------------------------- round trips

def test_3d_round_trip(tmp_path):
    annotations = [ann3d('a', 0, 1, 4, seed=1), ann3d('b', 4, 2, 6, seed=2), ann3d('c', 1, 3, 5, seed=3),
                   ann3d('d', 2, 1, 3, seed=4)]
    pkl = write(tmp_path / 'ntu.pkl', annotations)
    source = PysklPickle(pkl, 'train')
    assert len(source) == 3 and source.label == [0, 4, 1] and source.names == ['a', 'b', 'c']
    assert source.num_class == 5  # the whole pickle's labels
    assert np.load(source.store / 'frames.npy', mmap_mode='r').dtype == np.float16  # as stored: exact
    for i, a in enumerate(annotations[:3]):
        x = source.sample(i)
        kp = a['keypoint'].astype(np.float32)
        M, T = kp.shape[:2]
        assert x.dtype == np.float32 and x.shape == (3, T, 25, 2)
        for m in range(2):  # bodies beyond two are dropped, a missing one is zeros
            np.testing.assert_array_equal(x[..., m], kp[m].transpose(2, 0, 1) if m < M else 0)
    val = PysklPickle(pkl, 'val')
    assert val.names == ['d'] and val.num_class == 5
    one = PysklPickle(pkl, 'train', num_person=1)
    assert one.sample(1).shape == (3, 6, 25, 1)


def test_2d_normalisation_by_hand(tmp_path, toy2d):
    a = ann2d('a', 1, 1, 2, img_shape=(100, 200))
    a['keypoint'][0, 0, :, 0] = [150, 100, 0, 200, 50]  # x: (x - 100) / 100
    a['keypoint'][0, 0, :, 1] = [25, 50, 100, 0, 75]  # y: (y - 50) / 50
    a['keypoint_score'][0, 0] = [0.9, 0.5, 0.005, 0.02, 0.0]  # <= 0.01: the joint becomes 0
    b = ann2d('b', 0, 2, 1, img_shape=None)  # 1080 x 1920 by default
    b['keypoint'][1, 0, 0] = [1440, 270]
    b['keypoint_score'][1, 0, 0] = 1
    pkl = write(tmp_path / 'd2.pkl', [a, b], split={'train': ['a', 'b']})
    source = PysklPickle(pkl, 'train', layout=toy2d)
    x = source.sample(0)
    assert x.shape == (3, 2, 5, 2)
    assert np.load(source.store / 'frames.npy', mmap_mode='r').dtype == np.float32  # float32 keypoints
    np.testing.assert_allclose(x[:, 0, :, 0], [[0.5, 0, 0, 1, 0], [-0.5, 0, 0, -1, 0], [0.9, 0.5, 0, 0.02, 0]],
                               rtol=1e-3)  # float16 scores
    assert not x[..., 1].any()  # the padding body stays zero
    y = source.sample(1)
    np.testing.assert_allclose(y[:, 0, 0, 1], [0.5, -0.5, 1])
    # the settings are read-time ones: another threshold and default size reuse the same store
    loose = PysklPickle(pkl, 'train', layout=toy2d, score_threshold=-1, img_shape=(540, 960))
    assert loose.store == source.store
    np.testing.assert_allclose(loose.sample(0)[:, 0, 2, 0], [-1, 1, 0.005], rtol=1e-3)
    np.testing.assert_allclose(loose.sample(1)[:, 0, 0, 1], [2, 0, 1])
    assert not loose.sample(0)[..., 1].any()
    strict = PysklPickle(pkl, 'train', layout=toy2d, score_threshold=0.5)  # <=: a score of 0.5 is dropped
    np.testing.assert_array_equal(strict.sample(0)[:, 0, :, 0] != 0, [[1, 0, 0, 0, 0]] * 3)


# ------------------------------------------------------------------------------------ the store

def test_store_written_once_and_reused(tmp_path, monkeypatch):
    pkl = write(tmp_path / 'ntu.pkl', [ann3d('a', 0, 1, 4), ann3d('b', 1, 2, 5)])
    first = PysklPickle(pkl, 'train')
    expected = first.sample(0)
    files = {p: p.stat().st_mtime_ns for p in store_root(pkl).rglob('*')}
    assert {p.name for p in files} == {first.store.name, 'frames.npy', 'index.npz'}

    def no_read(*args):
        raise AssertionError('the pickle was read again')
    with monkeypatch.context() as m:
        m.setattr(pyskl, 'read_pickle', no_read)
        again = PysklPickle(pkl, 'train')
        other_split = PysklPickle(pkl, 'val')
    assert {p: p.stat().st_mtime_ns for p in store_root(pkl).rglob('*')} == files
    np.testing.assert_array_equal(again.sample(0), expected)
    assert other_split.names == ['b']
    # DataLoader workers get a copy without the open map, and open their own
    copy = pickle.loads(pickle.dumps(again))
    assert copy._handle is None
    np.testing.assert_array_equal(copy.sample(0), expected)

    # a changed pickle gets a new store; the old one goes
    write(pkl, [ann3d('a', 0, 1, 4, seed=9), ann3d('b', 1, 2, 5)])
    st = pkl.stat()
    os.utime(pkl, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    changed = PysklPickle(pkl, 'train')
    assert changed.store != first.store and not first.store.exists()
    assert [p.name for p in store_root(pkl).iterdir()] == [changed.store.name]
    assert not np.array_equal(changed.sample(0), expected)


def test_store_in_cache_dir_and_stale_temporaries_removed(tmp_path):
    pkl = write(tmp_path / 'ntu.pkl', [ann3d('a', 0, 1, 4), ann3d('b', 1, 1, 5)])
    cache = tmp_path / 'elsewhere'
    root = pyskl.store_roots(pkl, cache)[0]
    root.mkdir(parents=True)
    (root / f'.{pyskl.store_key(pkl)}.killed.tmp').mkdir()  # a writer killed before its rename
    source = PysklPickle(pkl, 'train', cache_dir=cache)
    assert source.store.parent == root and not store_root(pkl).exists()
    assert [p.name for p in root.iterdir()] == [source.store.name]


def test_unwritable_pickle_folder(tmp_path, monkeypatch):
    (tmp_path / 'data').mkdir()
    pkl = write(tmp_path / 'data' / 'ntu.pkl', [ann3d('a', 0, 1, 4), ann3d('b', 1, 1, 5)])
    beside = PysklPickle(pkl, 'train').store  # a store made beside the pickle once ...
    real_access = os.access
    monkeypatch.setattr(pyskl.os, 'access', lambda p, mode: real_access(p, mode) and 'data' not in str(p))
    assert PysklPickle(pkl, 'train').store == beside  # ... is read from a folder now read-only
    other = write(tmp_path / 'data' / 'other.pkl', [ann3d('a', 0, 1, 4), ann3d('b', 1, 1, 5)])
    moved = PysklPickle(other, 'train')  # a new one goes to $GAP_CACHE_DIR
    assert moved.store.parent.parent == tmp_path / 'cache' and not store_root(other).exists()
    monkeypatch.setenv('GAP_CACHE_DIR', str(tmp_path / 'data' / 'cache'))
    third = write(tmp_path / 'data' / 'third.pkl', [ann3d('a', 0, 1, 4), ann3d('b', 1, 1, 5)])
    refused(third, r'cannot write the store of .*third\.pkl: .*not writable; .*not writable '
                   r'\(set GAP_CACHE_DIR or cache_dir to a writable folder\)')


def test_debug_takes_the_first_samples(tmp_path, monkeypatch):
    pkl = write(tmp_path / 'ntu.pkl', [ann3d(n, 0, 1, 4) for n in 'abcd'])
    monkeypatch.setattr(pyskl, 'DEBUG_SAMPLES', 2)
    assert PysklPickle(pkl, 'train', debug=True).names == ['a', 'b']


def test_concurrent_first_runs_read_the_pickle_once(tmp_path):
    pkl = write(tmp_path / 'ntu.pkl', [ann3d('a', 0, 2, 30), ann3d('b', 1, 1, 20)])
    child = textwrap.dedent(f'''
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from feeders import pyskl
        read = pyskl.read_pickle
        def slow_read(*args):
            print('read', flush=True)
            time.sleep(0.5)  # every writer is inside the build at once without the lock
            return read(*args)
        pyskl.read_pickle = slow_read
        print(pyskl.PysklPickle({str(pkl)!r}, 'train').sample(0).sum())
    ''')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    procs = [subprocess.Popen([sys.executable, '-c', child], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(out.count('read') for out in outs) == 1
    assert len({out[-1] for out in outs}) == 1
    assert len(list(store_root(pkl).iterdir())) == 1  # the store; no temporary folder


# --------------------------------------------------------------------------------- refused input

def test_foreign_object_refused(tmp_path):
    import pathlib
    a = ann3d('a', 0, 1, 4)
    a['source'] = pathlib.PurePosixPath('/x')
    pkl = write(tmp_path / 'evil.pkl', [a, ann3d('b', 0, 1, 4)])
    refused(pkl, r'evil\.pkl: refusing to unpickle pathlib')
    assert_nothing_written(tmp_path, pkl)


def _missing(field):
    def change(anns):
        del anns[1][field]
    return change


def _set(field, value, i=1):
    def change(anns):
        anns[i][field] = value
    return change


def _nonfinite(field, index, value):
    def change(anns):
        anns[1][field][index] = value
    return change


@pytest.mark.parametrize('kind, change, match', [
    ('3d', _missing('total_frames'), r'b has no "total_frames"'),
    ('3d', _missing('label'), r'b has no "label"'),
    ('3d', _missing('keypoint'), r'b has no "keypoint"'),
    ('3d', _missing('frame_dir'), r'annotation 1 has no "frame_dir"'),
    ('2d', _missing('keypoint_score'), r'b has no "keypoint_score"'),
    ('3d', _set('total_frames', 7), r'b: total_frames is 7 but keypoint \(1, 5, 25, 3\) holds 5 frames'),
    ('3d', _set('label', -1), r'b: label must be a class index >= 0'),
    ('3d', _set('keypoint', np.zeros((1, 0, 25, 3), np.float16)), r'b: total_frames is 5'),
    ('3d', lambda anns: anns[1].update(keypoint=np.zeros((1, 0, 25, 3), np.float16), total_frames=0),
     r'b: empty sequence'),
    ('3d', lambda anns: anns[1].update(keypoint=np.zeros((0, 5, 25, 3), np.float16)), r'b: empty sequence'),
    ('3d', _nonfinite('keypoint', (0, 2, 3, 1), np.nan),
     r'b: keypoint holds NaN or infinite values \(body 0, frame 2, joint 3'),
    ('3d', _nonfinite('keypoint', (0, 4, 0, 0), np.inf), r'b: keypoint holds NaN or infinite'),
    ('2d', _nonfinite('keypoint_score', (0, 1, 2), np.inf), r'b: keypoint_score holds NaN or infinite'),
    ('2d', _set('img_shape', (0, 100)), r'b: img_shape must be two positive numbers'),
    ('3d', _set('keypoint', np.zeros((1, 5, 24, 3), np.float16)),
     r'b holds 24 joints x \(x, y, z\) but the annotations before it 25'),
    ('3d', _set('frame_dir', 'a'), r'frame_dir a appears twice'),
])
def test_bad_annotation_is_one_line_and_writes_nothing(tmp_path, toy2d, kind, change, match):
    if kind == '3d':
        anns, layout = [ann3d('a', 0, 1, 4), ann3d('b', 1, 1, 5), ann3d('c', 0, 1, 3)], 'ntu'
    else:
        anns, layout = [ann2d('a', 0, 1, 4), ann2d('b', 1, 1, 5), ann2d('c', 0, 1, 3)], toy2d
    change(anns)
    pkl = write(tmp_path / 'bad.pkl', anns, split={'train': ['a', 'c'], 'val': []})
    message = refused(pkl, match, layout=layout)
    assert message.startswith(str(pkl))
    assert_nothing_written(tmp_path, pkl)


def test_bad_pickles_are_one_line_and_write_nothing(tmp_path, toy2d):
    anns = [ann3d('a', 0, 1, 4), ann3d('b', 1, 1, 5)]
    cases = [
        (anns, r'expected a pyskl annotation pickle, .*got list \(pyskl\'s custom-data script writes a bare list'),
        ({'annotations': anns},
         r'expected a pyskl annotation pickle, a dict with "split" and "annotations"; '
         r'got a dict with keys \[\'annotations\'\]'),
        ({'split': {'train': ['a']}, 'annotations': anns}, r"has no split 'xsub_train'; it has: train$"),
        ({'split': {'xsub_train': ['a', 'zz']}, 'annotations': anns},
         r"split 'xsub_train' names 'zz', which has no annotation"),
        ({'split': {'xsub_train': ['a']}, 'annotations': []}, r'"annotations" is empty'),
    ]
    for i, (data, match) in enumerate(cases):
        pkl = tmp_path / f'bad{i}.pkl'
        pkl.write_bytes(pickle.dumps(data))
        refused(pkl, match, split='xsub_train')
        assert_nothing_written(tmp_path, pkl)
    refused(tmp_path / 'missing.pkl', r'missing\.pkl not found')
    not_pickle = tmp_path / 'text.pkl'
    not_pickle.write_text('hello')
    refused(not_pickle, 'not a readable pickle')
    assert_nothing_written(tmp_path, not_pickle)


def test_layout_must_fit(tmp_path, toy2d):
    pkl = write(tmp_path / 'd3.pkl', [ann3d('a', 0, 1, 4, joints=5), ann3d('b', 1, 1, 5, joints=5)])
    refused(pkl, r'holds 5 joints x \(x, y, z\) but layout ntu takes 25 joints x 3 channels \(no score channel\)')
    refused(pkl, r'holds 5 joints x \(x, y, z\) but layout toy2d_layout.Graph takes 5 joints x 3 channels '
                 r'\(channel 2 a score\)', layout=toy2d)
    assert_nothing_written(tmp_path, pkl)
    pkl2 = write(tmp_path / 'd2.pkl', [ann2d('a', 0, 1, 4, joints=25), ann2d('b', 1, 1, 5, joints=25)])
    refused(pkl2, r'holds 25 joints x \(x, y\) \+ score but layout ntu takes 25 joints x 3 channels', layout='ntu')
    assert_nothing_written(tmp_path, pkl2)
    # a store once written is checked again against each layout named later
    ok = write(tmp_path / 'ok.pkl', [ann3d('a', 0, 1, 4), ann3d('b', 1, 1, 5)])
    PysklPickle(ok, 'train', layout='ntu')
    refused(ok, r'holds 25 joints x \(x, y, z\) but layout nw-ucla takes 20 joints', layout='nw-ucla')


# ---------------------------------------------------------------------------------- the feeder

def test_feeder_items(tmp_path, toy2d):
    from feeders.feeder_pyskl import Feeder
    ntu = write(tmp_path / 'ntu.pkl', [ann3d('a', 0, 2, 40), ann3d('b', 2, 1, 30)])
    train = Feeder(ntu, 'train', 'ntu', window_size=16, p_interval=[0.5, 1], random_rot=True)
    data, label, index = train[0]
    assert data.shape == (3, 16, 25, 2) and data.dtype == np.float32 and (label, index) == (0, 0)
    assert train.random and train.num_class == 3 and train.num_person == 2
    test = Feeder(ntu, 'val', 'ntu', modality='bone')
    assert not test.random and test[0][0].shape == (3, 64, 25, 2)

    ucla = write(tmp_path / 'ucla.pkl', [ann3d('a', 0, 1, 40, joints=20), ann3d('b', 9, 1, 30, joints=20)])
    ucla_train = Feeder(ucla, 'train', 'nw-ucla')
    assert ucla_train[0][0].shape == (3, 52, 20, 1) and ucla_train.num_person == 1
    assert Feeder(ucla, 'val', 'nw-ucla', window_size=20, modality='joint_motion')[0][0].shape == (3, 20, 20, 1)

    d2 = write(tmp_path / 'd2.pkl', [ann2d('a', 0, 2, 40), ann2d('b', 1, 1, 30)])
    item = Feeder(d2, 'val', toy2d, window_size=8)[0][0]
    assert item.shape == (3, 8, 5, 2) and -1 <= item[:2].min() and item[:2].max() <= 1
    assert 0.5 <= item[2, ..., 0].min() and item[2].max() <= 1 and not item[..., 1].any()  # one body, scored
    assert Feeder(d2, 'train', toy2d, modality='bone_motion')[0][0].shape == (3, 64, 5, 2)
    with pytest.raises(UserError, match='random_rot rotates x, y, z; layout toy2d_layout.Graph is 2D'):
        Feeder(d2, 'train', toy2d, random_rot=True)

    # the generic feeder names the source 'pyskl'
    from feeders.feeder import Feeder as Generic
    generic = Generic('pyskl', 'ntu', source_args={'data_path': str(ntu), 'split': 'val'})
    assert generic[0][0].shape == (3, 64, 25, 2) and generic.sample_name == ['b']


def test_3d_centring_is_the_ntu_preps_translation():
    from data.translate import translate
    from feeders.feeder_pyskl import centre_first_frame, centre_joint
    from graph.layouts import load_layout
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1, (3, 6, 25, 2)).astype(np.float32)
    raw[:, 0, :, 0] = 0  # body 0 appears in frame 1
    raw[:, 3:5, :, 1] = 0  # body 1 absent in frames 3-4
    assert centre_joint(load_layout('ntu')) == 1
    as_rows = lambda x: np.ascontiguousarray(x.transpose(1, 3, 2, 0)).reshape(len(x[0]), 150)  # noqa: E731
    np.testing.assert_array_equal(as_rows(centre_first_frame(raw, 1)), translate(as_rows(raw)))
    assert centre_joint(load_layout('nw-ucla')) == 2  # the root of its bone pairs
