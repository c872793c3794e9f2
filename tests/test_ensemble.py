"""ensemble.py against hand-computed accuracies on tiny score files, and its one-line errors.

The tiny NTU-style set has 6 classes and 32 test samples made of six kinds, repeated 1, 2, 4, 8,
16 and 1 times, so a top-1 count (a sum of distinct powers of two) tells exactly which kinds were
right. In every stream a sample scores 10 + m on its label, 10 on class 5 and 0 elsewhere, so it
is right iff the weighted sum of its margins m is > 0. Margins per stream (J, B, JM, BM):

    kind   copies  label   J     B     JM    BM
    k0       1       0    +1    +1    +1    +1
    k1       2       1    +1    -2    +3    -1
    k2       4       2    -1    +3    -4    +5
    k4       8       4    +1    +1    -4    -1
    k5      16       0    -1   +0.5   +3    +3
    k3       1       3    label scores -100 in every stream: wrong, and outside the top 5

Weighted margins worked by hand ('+' right):
    J + B (alpha 1)                 k0 +2, k1 -1, k2 +2, k4 +2, k5 -0.5   -> 1+4+8      = 13/32
    J + 0.4 B                       k0 1.4, k1 .2, k2 .2, k4 1.4, k5 -.8  -> 1+2+4+8    = 15/32
    .6 J + .6 B + .4 JM             k0 1.6, k1 .6, k2 -.4, k4 -.4, k5 .9  -> 1+2+16     = 19/32
    .8 J + .8 B + .2 JM + .2 BM     k0 2, k1 -.4, k2 1.8, k4 .6, k5 .8    -> 1+4+8+16   = 29/32
    1 J + 2 BM (--weights 1 2)      k0 3, k1 -1, k2 9, k4 -1, k5 5        -> 1+4+16     = 21/32
Top-5 misses only k3: 31/32.
"""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

import ensemble
from conftest import REPO

NUM_CLASS = 6
KINDS = [  # (copies, label, margins J, B, JM, BM); None = label scored -100
    (1, 0, (1, 1, 1, 1)),
    (2, 1, (1, -2, 3, -1)),
    (4, 2, (-1, 3, -4, 5)),
    (8, 4, (1, 1, -4, -1)),
    (16, 0, (-1, 0.5, 3, 3)),
    (1, 3, None),
]
STREAM_FLAGS = {'joint': '--joint-dir', 'bone': '--bone-dir',
                'joint_motion': '--joint-motion-dir', 'bone_motion': '--bone-motion-dir'}


def _dataset():
    labels, rows = [], {s: [] for s in STREAM_FLAGS}
    for copies, label, margins in KINDS:
        for _ in range(copies):
            labels.append(label)
            for i, stream in enumerate(STREAM_FLAGS):
                row = np.zeros(NUM_CLASS, dtype=np.float32)
                row[5] = 10
                row[label] = -100 if margins is None else 10 + margins[i]
                rows[stream].append(row)
    return np.array(labels), rows


def _write_scores(directory, rows, keys=None, protocol=pickle.DEFAULT_PROTOCOL):
    directory.mkdir(parents=True, exist_ok=True)
    keys = keys or [f'test_{i}' for i in range(len(rows))]
    with open(directory / 'epoch1_test_score.pkl', 'wb') as f:
        pickle.dump(dict(zip(keys, rows)), f, protocol=protocol)
    return directory


@pytest.fixture
def tiny(tmp_path):
    """Label npz + one work dir per stream; returns (label file, {stream: dir})."""
    labels, rows = _dataset()
    one_hot = np.eye(NUM_CLASS, dtype=np.float32)[labels]
    label_file = tmp_path / 'NTU60_CS.npz'
    np.savez(label_file, x_test=np.zeros((len(labels), 4, 150), np.float32), y_test=one_hot)
    dirs = {s: _write_scores(tmp_path / s, rows[s]) for s in STREAM_FLAGS}
    return label_file, dirs


def _args(label_file, dirs, streams, *extra):
    argv = ['--label-file', str(label_file)]
    for s in streams:
        argv += [STREAM_FLAGS[s], str(dirs[s])]
    return argv + [str(x) for x in extra]


def _run(capsys, argv):
    code = ensemble.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize('streams, extra, top1', [
    (['joint', 'bone'], [], '40.6250'),                                    # 13/32
    (['joint', 'bone'], ['--alpha', 1], '40.6250'),
    (['joint', 'bone'], ['--alpha', 0.4], '46.8750'),                      # 15/32
    (['joint', 'bone', 'joint_motion'], [], '59.3750'),                   # 19/32
    (['joint', 'bone', 'joint_motion', 'bone_motion'], [], '90.6250'),    # 29/32
    (['joint', 'bone', 'joint_motion', 'bone_motion'],
     ['--weights', 0.8, 0.8, 0.2, 0.2], '90.6250'),
    (['joint', 'bone', 'joint_motion'], ['--weights', 0.6, 0.6, 0.4], '59.3750'),
    (['joint', 'bone'], ['--weights', 1, 0.4], '46.8750'),
    (['joint', 'bone_motion'], ['--weights', 1, 2], '65.6250'),           # 21/32
    (['joint'], [], '34.3750'),                                            # J: k0, k1, k4 -> 11/32
])
def test_hand_computed_accuracies(tiny, capsys, streams, extra, top1):
    label_file, dirs = tiny
    code, out, err = _run(capsys, _args(label_file, dirs, streams, *extra))
    assert code == 0, err
    assert out.splitlines() == [f'Top1 Acc: {top1}%', 'Top5 Acc: 96.8750%']


def test_datasets_alias_and_default_label_file(tiny, capsys, monkeypatch):
    # --datasets (the paper README's spelling) picks upstream's label file under the repo root.
    label_file, dirs = tiny
    (label_file.parent / 'data' / 'ntu').mkdir(parents=True)
    label_file.rename(label_file.parent / 'data' / 'ntu' / 'NTU60_CS.npz')
    monkeypatch.setattr(ensemble, 'REPO', label_file.parent)
    argv = ['--datasets', 'ntu/xsub', '--joint-dir', str(dirs['joint']), '--bone-dir', str(dirs['bone'])]
    code, out, err = _run(capsys, argv)
    assert code == 0, err
    assert out.splitlines()[0] == 'Top1 Acc: 40.6250%'
    code, out, err = _run(capsys, ['--dataset', 'ntu/xview'] + argv[2:])
    assert code == 2 and 'NTU60_CV.npz' in err


def test_streams_are_aligned_by_sample_name(tiny, capsys, tmp_path):
    # Insertion order must not matter: the bone stream written in reverse gives the same numbers.
    label_file, dirs = tiny
    _, rows = _dataset()
    keys = [f'test_{i}' for i in range(len(rows['bone']))]
    _write_scores(tmp_path / 'bone_rev', rows['bone'][::-1], keys[::-1], protocol=5)
    dirs = dict(dirs, bone=tmp_path / 'bone_rev')
    code, out, _ = _run(capsys, _args(label_file, dirs, ['joint', 'bone']))
    assert code == 0 and out.splitlines()[0] == 'Top1 Acc: 40.6250%'


def test_ucla_labels_from_split_json_with_index_or_name_keys(tmp_path, capsys):
    # Val labels are 1-based in the split file. Joint keyed by index (upstream), bone by file name.
    val = [{'file_name': f'a0{i + 1}_s01_e00_v03', 'length': 30, 'label': i + 1} for i in range(3)]
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'train': [], 'val': val}))
    eye = np.eye(NUM_CLASS, dtype=np.float32)
    # joint: right on samples 0 and 1, says class 5 for sample 2; bone alone: right only on sample 2.
    joint = [eye[0], eye[1], eye[5]]
    bone = [0.5 * eye[5], 0.5 * eye[5], 3 * eye[2]]
    _write_scores(tmp_path / 'j', joint, keys=[0, 1, 2])
    _write_scores(tmp_path / 'b', bone[::-1], keys=[v['file_name'] for v in val][::-1])
    base = ['--label-file', str(split), '--joint-dir', str(tmp_path / 'j'), '--bone-dir', str(tmp_path / 'b')]
    # alpha 1: sample 0 scores 1 on class 0 vs 0.5 on 5 -> right; 1 likewise; 2: 3 on class 2 vs 1 -> right
    code, out, err = _run(capsys, base)
    assert code == 0, err
    assert out.splitlines()[0] == 'Top1 Acc: 100.0000%'
    # alpha 0.25: sample 2 scores 0.75 on class 2 vs 1 on class 5 -> wrong: 2/3
    code, out, _ = _run(capsys, base + ['--alpha', '0.25'])
    assert out.splitlines()[0] == 'Top1 Acc: 66.6667%'


@pytest.mark.parametrize('mutate, message', [
    ('drop_bone_sample', "the streams score different samples: joint has 32, bone has 32 ('test_99' only in bone)"),
    ('too_few_for_labels', 'hold 31 samples but the labels list 32'),
    ('weights_count', '--weights has 3 values for 2 streams'),
    ('weights_and_alpha', 'either --weights or --alpha'),
    ('no_upstream_weights', 'give them with --weights'),
    ('missing_dir', 'no such directory'),
    ('missing_labels', 'label file not found'),
])
def test_bad_inputs_exit_2_with_one_line(tiny, capsys, tmp_path, mutate, message):
    label_file, dirs = tiny
    _, rows = _dataset()
    streams, extra = ['joint', 'bone'], []
    if mutate == 'drop_bone_sample':
        _write_scores(dirs['bone'], rows['bone'][:-1] + [rows['bone'][-1]],
                      keys=[f'test_{i}' for i in range(31)] + ['test_99'])
    elif mutate == 'too_few_for_labels':
        for s in streams:
            _write_scores(dirs[s], rows[s][:31])
    elif mutate == 'weights_count':
        extra = ['--weights', 1, 2, 3]
    elif mutate == 'weights_and_alpha':
        extra = ['--weights', 1, 2, '--alpha', 0.5]
    elif mutate == 'no_upstream_weights':
        streams = ['joint', 'bone', 'bone_motion']
    elif mutate == 'missing_dir':
        dirs = dict(dirs, bone=tmp_path / 'nowhere')
    elif mutate == 'missing_labels':
        label_file = tmp_path / 'absent.npz'
    code, out, err = _run(capsys, _args(label_file, dirs, streams, *extra))
    assert code == 2 and out == ''
    assert err.startswith('error: ') and message in err and err.count('\n') == 1


def test_cli_refuses_malicious_pickle_without_traceback(tiny, tmp_path):
    # Run as users do: a real process, so exit status and stderr are what a shell sees.
    label_file, dirs = tiny
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil'
    evil.mkdir()
    # A pickle whose loading would call os.system('touch <marker>').
    payload = (b'cposix\nsystem\n(V' + f'touch {marker}'.encode() + b'\ntR.')
    (evil / 'epoch1_test_score.pkl').write_bytes(payload)
    result = subprocess.run(
        [sys.executable, str(REPO / 'ensemble.py'), '--label-file', str(label_file),
         '--joint-dir', str(evil), '--bone-dir', str(dirs['bone'])],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith('error: ') and result.stderr.count('\n') == 1
    assert 'refusing to unpickle posix.system' in result.stderr and 'Traceback' not in result.stderr
    assert not marker.exists()


def test_cli_prints_upstream_lines(tiny):
    label_file, dirs = tiny
    result = subprocess.run(
        [sys.executable, str(REPO / 'ensemble.py')] + _args(label_file, dirs, list(STREAM_FLAGS)),
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'Top1 Acc: 90.6250%\nTop5 Acc: 96.8750%\n'


def test_labels_from_converted_h5(tiny, capsys, tmp_path):
    # feeders/convert_h5.py keeps integer labels in test/label; the default falls back to it.
    h5py = pytest.importorskip('h5py')
    label_file, dirs = tiny
    labels, _ = _dataset()
    h5_file = tmp_path / 'NTU60_CS.h5'
    with h5py.File(h5_file, 'w') as f:
        f.create_dataset('test/label', data=labels.astype(np.int64))
    code, out, err = _run(capsys, _args(h5_file, dirs, ['joint', 'bone']))
    assert code == 0, err
    assert out.splitlines()[0] == 'Top1 Acc: 40.6250%'


def test_nw_ucla_default_labels_from_shipped_split(tmp_path, capsys):
    # The 464 val samples of data/NW-UCLA/split.json; upstream-style integer keys.
    split = json.loads((REPO / 'data' / 'NW-UCLA' / 'split.json').read_text())['val']
    labels = np.array([record['label'] - 1 for record in split])
    assert len(labels) == 464 and labels.min() == 0 and labels.max() == 9
    right = np.eye(10, dtype=np.float32)[labels]
    wrong = np.eye(10, dtype=np.float32)[(labels + 1) % 10]
    # joint right everywhere; bone right on the first 100, elsewhere it says label + 1
    bone = np.concatenate([right[:100], wrong[100:]])
    _write_scores(tmp_path / 'j', list(right), keys=list(range(464)))
    _write_scores(tmp_path / 'b', list(bone), keys=list(range(464)))
    base = ['--dataset', 'NW-UCLA', '--joint-dir', str(tmp_path / 'j'), '--bone-dir', str(tmp_path / 'b')]
    # joint + 0.5 bone: the label scores 1, the wrong class 0.5 -> all right
    code, out, err = _run(capsys, base + ['--alpha', '0.5'])
    assert code == 0, err
    assert out.splitlines() == ['Top1 Acc: 100.0000%', 'Top5 Acc: 100.0000%']
    # bone alone (weights 0 1): right on the first 100 of 464 -> 21.5517%
    code, out, err = _run(capsys, base + ['--weights', '0', '1'])
    assert out.splitlines()[0] == 'Top1 Acc: 21.5517%'


def test_bad_flag_values_are_one_line_errors(capsys):
    code, out, err = _run(capsys, ['--datasets', 'kinetics', '--joint-dir', '.'])
    assert code == 2 and err.startswith('error: ') and err.count('\n') == 1 and 'kinetics' in err
    code, out, err = _run(capsys, ['--joint-dir', '.'])
    assert code == 2 and 'give --dataset' in err


def test_label_file_forms(tmp_path):
    ints = tmp_path / 'ints.npz'
    np.savez(ints, y_test=np.array([2, 0, 1]))
    assert ensemble.load_labels(ints)[0].tolist() == [2, 0, 1]
    one_hot = tmp_path / 'onehot.npz'
    np.savez(one_hot, y_test=np.eye(4)[[3, 1]], x_test=np.zeros((2, 1)))
    assert ensemble.load_labels(one_hot)[0].tolist() == [3, 1]
    no_y = tmp_path / 'no_y.npz'
    np.savez(no_y, x_test=np.zeros(2))
    with pytest.raises(ensemble.UserError, match='no y_test'):
        ensemble.load_labels(no_y)
    not_zip = tmp_path / 'bad.npz'
    not_zip.write_text('hello')
    with pytest.raises(ensemble.UserError, match='bad.npz'):
        ensemble.load_labels(not_zip)
    single = tmp_path / 'single.npz'
    with open(single, 'wb') as f:
        np.save(f, np.arange(3))
    with pytest.raises(ensemble.UserError, match='not an .npz archive'):
        ensemble.load_labels(single)
    with pytest.raises(ensemble.UserError, match='unsupported label file'):
        ensemble.load_labels(__file__)   # a .py file


def test_says_which_checkpoints_it_fused(tmp_path, capsys):
    split = json.loads((REPO / 'data' / 'NW-UCLA' / 'split.json').read_text())['val']
    right = list(np.eye(10, dtype=np.float32)[[r['label'] - 1 for r in split]])
    _write_scores(tmp_path / 'j', right, keys=list(range(464)))
    _write_scores(tmp_path / 'b', right, keys=list(range(464)))
    (tmp_path / 'j' / 'epoch1_test_score.json').write_text(json.dumps(
        {'checkpoint': '/runs/joint/runs-17-1071.pt', 'accuracy': 0.9052, 'written': '2026-12-01T12:00:00'}))
    code, out, err = _run(capsys, ['--dataset', 'NW-UCLA', '--joint-dir', str(tmp_path / 'j'),
                                   '--bone-dir', str(tmp_path / 'b')])
    assert code == 0 and out.splitlines()[0] == 'Top1 Acc: 100.0000%'  # stdout: upstream's lines only
    joint, bone = err.strip().splitlines()
    assert joint.startswith('fused joint (x1): /runs/joint/runs-17-1071.pt, its top-1 90.52%')
    assert bone.startswith('fused bone (x1): ') and 'no record' in bone
