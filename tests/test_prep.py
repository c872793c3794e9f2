"""NTU preparation: identical to upstream's npz on the fixtures, through both entry paths."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES, REPO, need

from data import pipeline
from data.skeleton_io import _parse_fast, _parse_slow

EXPECTED = {'ntu60': ('NTU60_CS.npz', 'NTU60_CV.npz'), 'ntu120': ('NTU120_CSub.npz', 'NTU120_CSet.npz')}


def assert_same_npz(ours, expected):
    with np.load(ours) as a, np.load(expected) as b:
        assert a.files == b.files == ['x_train', 'y_train', 'x_test', 'y_test']
        for k in b.files:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize('dataset,workers', [('ntu60', 2), ('ntu120', 1)])
def test_prepare_matches_upstream(tmp_path, dataset, workers):
    fixture = need(FIXTURES / dataset)
    logs = []
    written = pipeline.prepare(fixture / 'raw', tmp_path, dataset, workers=workers, log=logs.append)
    assert [p.name for p in written] == list(EXPECTED[dataset])
    for name in EXPECTED[dataset]:
        assert_same_npz(tmp_path / name, fixture / 'expected' / name)
        # the npz is written member by member: still a plain np.savez file, bytes included
        assert (tmp_path / name).read_bytes() == (fixture / 'expected' / name).read_bytes()
    full = '56,880' if dataset == 'ntu60' else '114,480'
    assert any('found' in m and full in m for m in logs)


def test_three_steps_equal_fused_ntu60(tmp_path):
    fixture = need(FIXTURES / 'ntu60')
    quiet = [].append
    pipeline.extract_raw(fixture / 'raw', tmp_path, 'ntu60', workers=2, log=quiet)
    assert (tmp_path / 'raw_data' / 'values.npy').exists()
    pipeline.denoise_raw(tmp_path, workers=2, log=quiet)
    pipeline.write_benchmarks(tmp_path, 'ntu60', log=quiet)
    for name in EXPECTED['ntu60']:
        assert_same_npz(tmp_path / name, fixture / 'expected' / name)
    assert not list(tmp_path.rglob('*.txt'))  # no per-sample logs, no bad-file list


def test_upstream_scripts_run_from_their_folder_ntu120(tmp_path):
    fixture = need(FIXTURES / 'ntu120')
    folder = REPO / 'data' / 'ntu120'
    for script in ('get_raw_skes_data.py', 'get_raw_denoised_data.py', 'seq_transformation.py'):
        run = subprocess.run([sys.executable, script, '--raw-root', str(fixture / 'raw'),
                              '--out-dir', str(tmp_path), '--workers', '2'],
                             cwd=folder, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    for name in EXPECTED['ntu120']:
        assert_same_npz(tmp_path / name, fixture / 'expected' / name)


def test_fast_reader_equals_careful_reader_on_fixtures():
    files = sorted(need(FIXTURES).glob('ntu*/raw/*/*.skeleton'))
    assert files
    for path in files:
        raw = path.read_bytes()
        fast, slow = _parse_fast(raw), _parse_slow(raw, path)
        assert fast is not None, path  # the fixtures are in the canonical layout
        assert fast[0] == slow[0] and fast[2] == slow[2]
        for a, b in zip(fast[1], slow[1], strict=True):
            assert (a.id, a.start) == (b.id, b.start)
            np.testing.assert_array_equal(a.joints, b.joints)
