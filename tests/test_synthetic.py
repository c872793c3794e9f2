"""The synthetic NTU60 set: real raw format, through the real preparation, motions as claimed."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from data import pipeline
from data.skeleton_io import read_skeleton
from data.splits import NTU60_CS_TEST, NTU60_CS_TRAIN, parse_name
from data.synthetic import ACTIONS, generate

PER_CLASS = 6  # 4 cross-subject train + 2 test per action


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    paths = generate(root / 'raw', seed=3, per_class=PER_CLASS)
    pipeline.prepare(root / 'raw', root, 'ntu60', workers=2, log=[].append)
    return root, paths


def joints(x):
    """(N, T, 150) -> actor 1 (N, T, 25, 3) and the valid-frame mask (N, T)."""
    return x[..., :75].reshape(*x.shape[:2], 25, 3), np.abs(x).sum(-1) != 0


def test_names_cover_splits_cameras_and_setups(prepared):
    _, paths = prepared
    ids = [parse_name(p.stem) for p in paths]
    assert len({p.stem for p in paths}) == len(paths) == PER_CLASS * len(ACTIONS)
    assert {i['action'] for i in ids} == set(ACTIONS)
    assert {i['camera'] for i in ids} == {1, 2, 3}
    assert all(1 <= i['setup'] <= 17 for i in ids)
    performers = {i['performer'] for i in ids}
    assert performers & set(NTU60_CS_TRAIN) and performers & set(NTU60_CS_TEST)


def test_raw_files_exercise_denoising(prepared):
    _, paths = prepared
    skes = [read_skeleton(p) for p in paths]
    assert all(40 <= s.num_frames + s.dropped_frames <= 103 for s in skes)
    assert any(len(s.bodies) > 1 for s in skes)  # extra people / noise bodies
    assert any(s.dropped_frames for s in skes) or any(b.length <= 11 for s in skes for b in s.bodies)


def test_prepared_npz_has_every_class_in_both_splits(prepared):
    root, _ = prepared
    with np.load(root / 'NTU60_CS.npz') as z:
        for part, count in (('train', 4), ('test', 2)):
            labels = z[f'y_{part}'].argmax(1)
            assert z[f'x_{part}'].shape[1:] == (z['x_train'].shape[1], 150)
            assert {a - 1: count for a in ACTIONS} == dict(zip(*np.unique(labels, return_counts=True)))
    with np.load(root / 'NTU60_CV.npz') as z:
        assert len(z['y_train']) == 2 * len(z['y_test'])  # cameras 2, 3 vs camera 1


def test_class_motions_differ_where_claimed(prepared):
    root, _ = prepared
    with np.load(root / 'NTU60_CS.npz') as z:
        x = np.concatenate([z['x_train'], z['x_test']])
        labels = np.concatenate([z['y_train'], z['y_test']]).argmax(1) + 1
    j, valid = joints(x)

    def spread(action, joint):
        """Mean distance of a joint from its average position, relative to the spine base."""
        out = []
        for i in np.flatnonzero(labels == action):
            rel = j[i, valid[i], joint] - j[i, valid[i], 0]
            out.append(np.linalg.norm(rel - rel.mean(0), axis=1).mean())
        return np.mean(out)

    def hip_rise(action):
        hips = [j[i, valid[i], 0, 1] for i in np.flatnonzero(labels == action)]
        return np.mean([h[-1] - h[0] for h in hips])

    wrist_r, ankle_r, head = 10, 18, 3
    assert spread(23, wrist_r) > 3 * spread(24, wrist_r)  # hand waving moves the hand, kicking not
    assert spread(24, ankle_r) > 3 * spread(23, ankle_r)  # kicking moves the foot, waving not
    assert spread(35, head) > 3 * spread(23, head)  # nodding/bowing moves the head
    assert spread(38, wrist_r) > 3 * spread(38, 6)  # salute: right hand, not left
    assert hip_rise(8) < -0.2 < 0.2 < hip_rise(9)  # sit down lowers the hips, stand up raises them
    jump = [j[i, valid[i], 0, 1].max() - j[i, valid[i], 0, 1][0] for i in np.flatnonzero(labels == 27)]
    assert np.mean(jump) > 0.15


def test_generator_is_deterministic_and_has_a_cli(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / 'data' / 'synthetic.py'), '--out-dir',
                          str(tmp_path / 'a'), '--seed', '5', '--per-class', '1'],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    again = generate(tmp_path / 'b', seed=5, per_class=1)
    for p in again:
        assert (tmp_path / 'a' / 'nturgb+d_skeletons' / p.name).read_bytes() == p.read_bytes()
