"""NaN and inf are bad input: raw .skeleton files, the prep's stores, NW-UCLA json, prepared
.npz / .h5 files. Each gives one line naming the file (and the line or sample), and nothing
half-written."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, UCLA_ALL_SQE, need

from data import pipeline
from data.skeleton_io import read_skeleton
from data.synthetic import idle_sequence, skeleton_text, _with_pixels
from feeders import convert_h5, feeder_ucla, sources
from feeders.feeder_ntu import Feeder
from feeders.storage import first_nonfinite_row
from torchlight.errors import UserError

NAMES = ['S001C001P001R001A001', 'S001C001P002R001A002', 'S001C001P003R001A003']


def skeleton_lines(num_frames=20, seed=0):
    xyz = idle_sequence(num_frames, np.random.default_rng(seed)) + [0.0, 0.2, 3.0]
    vals = _with_pixels(xyz)
    return skeleton_text([[(7, vals[t])] for t in range(num_frames)]).splitlines()


def with_x(lines, lineno, token):
    """The lines with the x of (1-based) joint line `lineno` replaced by `token`."""
    out = list(lines)
    out[lineno - 1] = ' '.join([token] + out[lineno - 1].split(' ')[1:])
    return out


def raw_folder(root, bad_lines=None):
    folder = root / 'nturgb+d_skeletons'
    folder.mkdir(parents=True)
    for k, name in enumerate(NAMES):
        lines = bad_lines if (bad_lines is not None and k == 1) else skeleton_lines(seed=k)
        (folder / f'{name}.skeleton').write_text('\n'.join(lines) + '\n')
    return folder


def one_line(message):
    assert '\n' not in message, message
    return message


# ------------------------------------------------------------------ raw .skeleton files

@pytest.mark.parametrize('token', ['nan', 'NaN', 'inf', '-Infinity', '1e39'])
@pytest.mark.parametrize('layout', ['canonical', 'tabs'])
def test_nonfinite_xyz_names_file_and_line(tmp_path, token, layout):
    # line 1 frame count; frame 1: 2 body count, 3 info, 4 joint count, 5-29 joints; frame 2: 30...
    lines = with_x(skeleton_lines(), 36, token)  # joint 4 of body 1 of frame 2
    text = '\n'.join(lines) + '\n'
    path = tmp_path / f'{NAMES[0]}.skeleton'
    path.write_text(text if layout == 'canonical' else text.replace(' ', '\t'))
    with pytest.raises(UserError) as err:
        read_skeleton(path)
    msg = one_line(str(err.value))
    assert str(path) in msg and 'line 36:' in msg and 'joint 4 of body 1 of frame 2' in msg, msg
    assert 'finite' in msg and token in msg


def test_nonfinite_in_an_unused_column_is_not_read(tmp_path):
    """Only x y z reach the output; the other nine values per joint are never converted."""
    lines = skeleton_lines()
    tok = lines[35].split(' ')
    lines[35] = ' '.join(tok[:3] + ['nan'] + tok[4:])  # depthX
    path = tmp_path / f'{NAMES[0]}.skeleton'
    path.write_text('\n'.join(lines) + '\n')
    assert np.isfinite(read_skeleton(path).bodies[0].joints).all()


def test_prep_stops_in_one_line_and_writes_nothing(tmp_path):
    raw_folder(tmp_path / 'raw', with_x(skeleton_lines(seed=1), 7, 'nan'))
    out = tmp_path / 'out'
    run = subprocess.run([sys.executable, str(REPO / 'data' / 'prepare_ntu.py'), '--raw-root',
                          str(tmp_path / 'raw'), '--out-dir', str(out), '--workers', '2'],
                         capture_output=True, text=True)
    assert run.returncode == 2 and 'Traceback' not in run.stderr, run.stderr
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: '), run.stderr
    assert f'{NAMES[1]}.skeleton: line 7:' in err[0] and 'finite' in err[0]
    assert not out.exists()  # not even an empty out-dir or store folder


def test_prep_keeps_an_existing_output_and_skip_bad_records_the_file(tmp_path):
    raw_folder(tmp_path / 'raw', with_x(skeleton_lines(seed=1), 7, 'inf'))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'NTU60_CS.npz').write_bytes(b'an earlier output')
    with pytest.raises(UserError, match=f'{NAMES[1]}.skeleton: line 7: .*--skip-bad'):
        pipeline.prepare(tmp_path / 'raw', out, 'ntu60', workers=1, log=[].append)
    assert sorted(p.name for p in out.rglob('*')) == ['NTU60_CS.npz']
    assert (out / 'NTU60_CS.npz').read_bytes() == b'an earlier output'
    pipeline.prepare(tmp_path / 'raw', out, 'ntu60', workers=1, skip_bad=True, log=[].append)
    assert NAMES[1] in (out / pipeline.BAD_LIST).read_text()
    with np.load(out / 'NTU60_CS.npz') as z:
        assert len(z['x_train']) + len(z['x_test']) == 2
        assert np.isfinite(z['x_train']).all() and np.isfinite(z['x_test']).all()


def poke_store(folder, index):
    values = np.load(folder / 'values.npy', mmap_mode='r+')
    values[index] = np.nan
    values.flush()
    del values


def test_stores_holding_nan_name_the_sample_and_write_nothing(tmp_path):
    """Stores from before the reader refused NaN (or damaged since) are checked as they are read."""
    raw_folder(tmp_path / 'raw')
    pipeline.extract_raw(tmp_path / 'raw', tmp_path, 'ntu60', workers=1, log=[].append)
    poke_store(tmp_path / pipeline.RAW_DIR, 20 * 75 + 5)  # sample 2's first body
    with pytest.raises(UserError) as err:
        pipeline.denoise_raw(tmp_path, workers=1, log=[].append)
    msg = one_line(str(err.value))
    assert 'raw_data/values.npy: sample S001C001P002R001A002 holds NaN' in msg, msg
    assert not (tmp_path / pipeline.DENOISED_DIR).exists()

    pipeline.extract_denoised(tmp_path / 'raw', tmp_path, 'ntu60', workers=1, log=[].append)
    poke_store(tmp_path / pipeline.DENOISED_DIR, 2 * 20 * 75 + 3)  # sample 3
    with pytest.raises(UserError, match='denoised_data/values.npy: sample S001C001P003R001A003 holds'):
        pipeline.write_benchmarks(tmp_path, 'ntu60', log=[].append)
    assert not list(tmp_path.glob('NTU60_*'))


# ------------------------------------------------------------------ NW-UCLA json

def ucla_root(tmp_path, monkeypatch, texts):
    root = tmp_path / 'all_sqe'
    root.mkdir()
    split = {'train': [], 'val': []}
    for i, text in enumerate(texts):
        name = f'a{i + 1:02d}_s01_e00_v03'
        (root / f'{name}.json').write_text(text)
        split['val'].append({'file_name': name, 'length': 5, 'label': i + 1})
    (tmp_path / 'split.json').write_text(json.dumps(split))
    monkeypatch.setattr(sources, 'UCLA_SPLIT', tmp_path / 'split.json')
    return root


@pytest.mark.parametrize('token', ['NaN', 'Infinity', '-Infinity', '1e999'])
def test_ucla_json_with_nonfinite_coordinate_names_the_file(tmp_path, monkeypatch, token):
    rng = np.random.default_rng(0)
    good = [json.dumps({'skeletons': rng.normal(size=(5, 20, 3)).tolist()}) for _ in range(2)]
    bad = good[1].replace(good[1].split('[[[')[1].split(',')[1], f' {token}', 1)  # frame 1 joint 1 y
    root = ucla_root(tmp_path, monkeypatch, [good[0], bad])
    with pytest.raises(UserError) as err:
        feeder_ucla.Feeder('joint', 'val', data_root=root)
    msg = one_line(str(err.value))
    assert str(root / 'a02_s01_e00_v03.json') in msg and 'frame 1 joint 1' in msg and 'finite' in msg


def test_real_ucla_clip_with_nan_is_refused(tmp_path, monkeypatch):
    source = need(UCLA_ALL_SQE)
    names = ['a01_s01_e00_v01', 'a02_s01_e00_v01']
    texts = [(source / f'{n}.json').read_text() for n in names]
    first = texts[1].split('[[[')[1].split(',')[0]
    root = ucla_root(tmp_path, monkeypatch, [texts[0], texts[1].replace(first, 'NaN', 1)])
    with pytest.raises(UserError, match=r'a02_s01_e00_v03\.json: expected finite coordinates, '
                                        r'frame 1 joint 1 \(from 1\) is \[nan, '):
        feeder_ucla.Feeder('joint', 'val', data_root=root)
    shutil.copy(source / f'{names[1]}.json', root / 'a02_s01_e00_v03.json')
    assert len(feeder_ucla.Feeder('joint', 'val', data_root=root)) == 2


# ------------------------------------------------------------------ prepared .npz / .h5

def save_npz(path, x_test, n_train=3, save=np.savez):
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(n_train, 8, 150)).astype(np.float32)
    save(path, x_train=x_train, y_train=np.eye(60)[np.arange(n_train)],
         x_test=x_test, y_test=np.eye(60)[np.arange(len(x_test)) % 60])
    return path


def samples_with(n=5, bad=None, value=np.nan):
    x = np.random.default_rng(1).normal(size=(n, 8, 150)).astype(np.float32)
    x[:, 6:] = 0  # padding
    if bad is not None:
        x[bad, 3, 100] = value
    return x


@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_npz_sample_with_nonfinite_value_is_named_at_open(tmp_path, value):
    path = save_npz(tmp_path / 'NTU60_CS.npz', samples_with(bad=3, value=value))
    with pytest.raises(UserError) as err:
        Feeder(path, split='test')
    msg = one_line(str(err.value))
    assert msg.startswith(f'{path} x_test: sample test_3 (row 3) holds NaN or infinite values'), msg
    assert 'get_raw_skes_data.py' in msg
    assert len(Feeder(path, split='train')) == 3  # the other split is fine


def test_scan_finds_the_first_bad_row_across_blocks_and_layouts(tmp_path):
    x = samples_with(n=40)
    x[33, 7, 1] = np.nan
    x[37, 0, 0] = np.inf
    for name, arr in (('c.npz', x), ('f.npz', np.asfortranarray(x))):
        path = save_npz(tmp_path / name, arr)
        with pytest.raises(UserError, match='sample test_33 '):
            Feeder(path, split='test')
    flat = x.reshape(40, -1)

    def read_rows(start, out):
        out[...] = flat[start:start + len(out)]
    for block_bytes in (1, 4800 * 3, 4800 * 7, 1 << 20):  # a row is 8 x 150 x 4 = 4800 bytes
        assert first_nonfinite_row(read_rows, 40, flat.shape[1], flat.dtype, block_bytes) == 33
        assert first_nonfinite_row(read_rows, 33, flat.shape[1], flat.dtype, block_bytes) is None
    assert first_nonfinite_row(read_rows, 40, 1200, np.int64) is None  # integers are finite


def test_debug_scans_only_the_samples_it_serves(tmp_path):
    path = save_npz(tmp_path / 'NTU60_CS.npz', samples_with(n=102, bad=101))
    assert len(Feeder(path, split='test', debug=True)) == 100
    with pytest.raises(UserError, match='sample test_101 '):
        Feeder(path, split='test')


def test_nonfinite_one_hot_label_is_named(tmp_path):
    y = np.eye(60)[[0, 1, 2]]
    y[1, 5] = np.nan
    path = tmp_path / 'NTU60_CS.npz'
    np.savez(path, x_train=samples_with(3), y_train=np.eye(60)[[0, 1, 2]], x_test=samples_with(3), y_test=y)
    with pytest.raises(UserError, match=r'y_test: label row 1 holds NaN or infinite values'):
        Feeder(path, split='test')


def test_h5_sample_with_nonfinite_value_is_named_at_open(tmp_path):
    import h5py
    npz = save_npz(tmp_path / 'NTU60_CS.npz', samples_with())
    h5 = tmp_path / 'NTU60_CS.h5'
    convert_h5.convert(npz, h5, log=lambda *_: None)
    with h5py.File(h5, 'r+') as f:
        offsets = f['test']['offsets'][()]
        f['test']['frames'][offsets[2] + 4, 9] = np.inf
    with pytest.raises(UserError) as err:
        Feeder(h5, split='test')
    msg = one_line(str(err.value))
    assert msg.startswith(f'{h5} test: sample test_2 (frame 4) holds NaN or infinite values'), msg
    assert 'convert_h5.py' in msg
    assert len(Feeder(h5, split='train')) == 3


def test_convert_refuses_nonfinite_npz_in_one_line_and_writes_nothing(tmp_path):
    npz = save_npz(tmp_path / 'NTU60_CS.npz', samples_with(bad=4))
    run = subprocess.run([sys.executable, str(REPO / 'feeders' / 'convert_h5.py'), str(npz)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 2 and 'Traceback' not in run.stderr, run.stderr
    assert run.stderr.startswith(f'error: {npz} x_test: sample test_4 (row 4) holds NaN')
    assert run.stderr.count('\n') == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['NTU60_CS.npz']
