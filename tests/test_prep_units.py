"""NTU preparation pieces on small inputs written here: reader errors, denoising, translation,
splits, missing lists, the streamed npz writer and the command-line error paths."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from data import pipeline
from data.arraystore import NpzStreamWriter
from data.denoise import denoise_bodies, denoised_sequence, two_actors
from data.skeleton_io import Body, Skeleton, parse_decimals, parse_skeleton, read_skeleton
from data.splits import DATASETS, one_hot, split_indices
from data.synthetic import idle_sequence, skeleton_text, _with_pixels
from data.translate import to_150, translate
from torchlight.errors import UserError


def person(num_frames, seed=0, dx=0.0):
    xyz = idle_sequence(num_frames, np.random.default_rng(seed)) + [dx, 0.2, 3.0]
    return _with_pixels(xyz)


def text_of(tracks, num_frames):
    """tracks: [(body id, start frame, (n, 25, 7) values)] -> .skeleton text."""
    frames = [[] for _ in range(num_frames)]
    for body_id, start, vals in tracks:
        for t, v in enumerate(vals):
            frames[start + t].append((body_id, v))
    return skeleton_text(frames)


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'{name}.skeleton'
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ reader
def test_reader_reads_what_was_written():
    vals = person(5)
    ske = parse_skeleton(text_of([(72057594037927936, 0, vals)], 5).encode(), 'X')
    assert ske.num_frames == 5 and len(ske.bodies) == 1
    assert ske.bodies[0].id == '72057594037927936'
    np.testing.assert_allclose(ske.bodies[0].joints, vals[..., :3], atol=1e-4)


def test_vectorised_decimals_are_the_doubles_float_gives():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0, 1e-4, 300), rng.normal(0, 300, 300)])
    tokens = [('%.7g' % v).replace('e', 'E') for v in values] + ['0', '-0', '-0.0', '5.', '.5', '12.25', '+1']
    for fmt_tokens in (tokens, ['%.4f' % v for v in values], ['%.9g' % v for v in values]):
        text = (' '.join(fmt_tokens) + ' ').encode()
        buf = np.frombuffer(text, dtype=np.uint8)
        ends = np.flatnonzero(buf == 32)
        starts = np.concatenate(([0], ends[:-1] + 1))
        got, want = parse_decimals(buf, starts, ends), np.array([float(t) for t in fmt_tokens])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    for bad in (b'1.2.3 ', b'- ', b'1- ', b'x ', b'--1.5 '):
        buf = np.frombuffer(bad, dtype=np.uint8)
        assert parse_decimals(buf, np.array([0]), np.array([len(bad) - 1])) is None


def test_reader_tolerates_crlf_and_odd_spacing_the_same_way():
    text = text_of([(7, 0, person(3))], 3)
    canonical = parse_skeleton(text.encode(), 'X')
    for variant in (text.replace('\n', '\r\n'), text.replace(' ', '  '), text.replace(' ', '\t')):
        other = parse_skeleton(variant.encode(), 'X')
        np.testing.assert_array_equal(other.bodies[0].joints, canonical.bodies[0].joints)


def test_reader_drops_empty_frames_and_keeps_upstream_interval():
    a, b = person(6, 0), person(3, 1, dx=1.0)
    # frame 0 is empty; body 8 is seen in (valid) frames 0 and 4 and 5 only, but upstream numbers
    # its frames start, start+1, ...: 0, 1, 2
    frames = [[]] + [[(7, a[t])] for t in range(6)]
    for t, f in zip((1, 5, 6), range(3)):
        frames[t].append((8, b[f]))
    ske = parse_skeleton(skeleton_text(frames).encode(), 'X')
    assert ske.num_frames == 6 and ske.dropped_frames == 1
    body8 = ske.bodies[1]
    assert (body8.start, body8.end, body8.length) == (0, 2, 3)


@pytest.mark.parametrize('mutate,line,expected', [
    # lines: 1 frame count; frame 1: 2 body count, 3 info, 4 joint count, 5-29 joints; frame 2: 30...
    (lambda ls: ls[:40], 41, 'file ends early, expected joint 9 of body 1 of frame 2'),
    (lambda ls: ls[:34] + ['0.1 0.2 oops 1 2 3 4 0 0 0 0 2'] + ls[35:], 35,
     'expected joint 3 of body 1 of frame 2'),
    (lambda ls: ls[:34] + ['0.1 0.2 0.3 1 2 3 4 0 0 0 2'] + ls[35:], 35, '(12 values), got 11'),
    (lambda ls: ls[:3] + ['24'] + ls[4:], 4, 'expected the joint count of body 1 of frame 1 (25)'),
    (lambda ls: ['x'] + ls[1:], 1, 'expected the frame count'),
    (lambda ls: ls[:2] + ['1 2 3'] + ls[3:], 3, 'expected the info line of body 1 of frame 1'),
    (lambda ls: ls + ['1'], 86, 'expected the end of the file after 3 frames'),
])
def test_malformed_file_names_file_line_and_expectation(tmp_path, mutate, line, expected):
    lines = text_of([(7, 0, person(3))], 3).splitlines()
    path = write(tmp_path, 'S001C001P001R001A001', '\n'.join(mutate(lines)) + '\n')
    with pytest.raises(UserError) as err:
        read_skeleton(path)
    msg = str(err.value)
    assert '\n' not in msg and str(path) in msg and f'line {line}:' in msg and expected in msg, msg


def test_file_without_any_body_is_an_error(tmp_path):
    path = write(tmp_path, 'S001C001P001R001A001', '2\n0\n0\n')
    with pytest.raises(UserError, match='no frame has a body'):
        read_skeleton(path)


# ------------------------------------------------------------------------------------ denoise
def body(body_id, n, start=0, seed=0, dx=0.0, flat=False):
    xyz = person(n, seed, dx)[..., :3].astype(np.float32)
    if flat:  # x-spread far larger than y-spread in every frame
        xyz[..., 1] = 0.2
        xyz[..., 0] = np.linspace(-1, 1, 25, dtype=np.float32)
    return Body(body_id, xyz, start)


def test_no_body_longer_than_eleven_frames_keeps_the_longest():
    logs = []
    ranked = denoise_bodies([body('a', 5), body('b', 9, 2), body('c', 9, 20)], logs.append, 'X')
    assert [b.id for b, _ in ranked] == ['b']
    assert len(logs) == 1 and 'keeping the longest (b, 9 frames)' in logs[0]


def test_short_and_flat_bodies_are_dropped():
    bodies = [body('a', 30), body('noise', 11, 3, seed=1), body('flat', 30, seed=2, flat=True)]
    ske = Skeleton('X', bodies, 30, 0)
    seq = denoised_sequence(ske)
    assert seq.shape == (30, 75)
    np.testing.assert_array_equal(seq, ske.bodies[0].joints.reshape(30, 75))


def test_two_actor_tracks_follow_upstream_overlap_rule():
    a1 = body('a1', 20, 0, seed=1)  # largest motion: actor 1, frames 0-19
    later = body('later', 12, 19, seed=2)  # shares only frame 19 with actor 1: joins actor 1
    overlap = body('overlap', 15, 5, seed=3)  # overlaps actor 1: actor 2 (its span starts [0, 0])
    ranked = [(a1, 3.0), (later, 2.0), (overlap, 1.0)]
    out = two_actors(ranked, 31)
    np.testing.assert_array_equal(out[19:31, :75], later.joints.reshape(12, 75))
    np.testing.assert_array_equal(out[5:20, 75:], overlap.joints.reshape(15, 75))
    assert not out[:5, 75:].any() and not out[20:, 75:].any()


def test_multi_body_samples_lose_their_empty_frames_single_body_ones_do_not():
    single = Skeleton('X', [body('a', 20, 3)], 25, 0)
    assert denoised_sequence(single).shape == (25, 75)
    multi = Skeleton('X', [body('a', 20, 3), body('b', 4, 0, seed=1)], 25, 0)
    assert denoised_sequence(multi).shape == (20, 75)


# ------------------------------------------------------------------------------- translate/split
def test_translate_centres_on_spine_middle_and_rezeroes_absent_actor():
    seq = np.zeros((4, 150), dtype=np.float32)
    seq[1:, :75] = np.arange(75, dtype=np.float32) + 1  # actor 1 absent in frame 0
    seq[:2, 75:] = 5.0  # actor 2 present in frames 0-1
    out = translate(seq)
    origin = seq[1, 3:6]
    np.testing.assert_array_equal(out[1, :75], seq[1, :75] - np.tile(origin, 25))
    assert not out[0, :75].any() and not out[2:, 75:].any()
    np.testing.assert_array_equal(out[0, 75:], 5.0 - np.tile(origin, 25))


def test_single_actor_padding_zeros_for_ntu60_copy_for_ntu120():
    seq = np.ones((3, 75), dtype=np.float32)
    assert not to_150(seq, repeat_single=False)[:, 75:].any()
    np.testing.assert_array_equal(to_150(seq, repeat_single=True)[:, 75:], seq)


def test_split_order_follows_the_id_list_then_names():
    names = ['S001C001P003R001A001', 'S001C002P001R001A002', 'S001C003P002R001A003', 'S002C001P001R001A004']
    cs, cv = DATASETS['ntu60'].benchmarks
    train, test = split_indices(names, cs)  # train ids 1, 2, ...; performer 3 is a test id
    assert train.tolist() == [1, 3, 2] and test.tolist() == [0]
    train, test = split_indices(names, cv)  # cameras 2, 3 train; 1 test
    assert train.tolist() == [1, 2] and test.tolist() == [0, 3]
    y = one_hot(np.array([0, 59]), 60)
    assert y.dtype == np.float64 and y.sum() == 2 and y[1, 59] == 1


def test_streamed_npz_is_byte_identical_to_np_savez(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 4, 150)).astype(np.float32)
    y = one_hot(np.array([1, 2, 0]), 5)
    np.savez(tmp_path / 'ref.npz', x_train=x, y_train=y)
    w = NpzStreamWriter(tmp_path / 'ours.npz')
    w.add_rows('x_train', x.shape, np.float32, iter(x))
    w.add('y_train', y)
    w.close()
    assert (tmp_path / 'ours.npz').read_bytes() == (tmp_path / 'ref.npz').read_bytes()


# -------------------------------------------------------------------- listing, CLI, bad inputs
def small_raw(root, names):
    for k, name in enumerate(names):
        write(root / 'nturgb+d_skeletons', name, text_of([(7, 0, person(20, k))], 20))


def test_missing_list_subtracts_and_counts_are_logged(tmp_path):
    # S001C002P005R002A008 is on the NTU60 missing-skeleton list
    small_raw(tmp_path, ['S001C001P001R001A001', 'S001C002P005R002A008', 'S018C001P001R001A001'])
    logs = []
    samples = pipeline.find_samples(tmp_path, DATASETS['ntu60'], logs.append)
    assert [n for n, _ in samples] == ['S001C001P001R001A001']
    assert 'found 2 .skeleton files' in logs[0] and '56,578 usable' in logs[0]
    assert '1 on the missing' in logs[0]
    assert any('ignored 1 files' in m for m in logs)  # setup 18 is not NTU60


def test_missing_raw_folder_says_where_and_where_from(tmp_path):
    with pytest.raises(UserError) as err:
        pipeline.prepare(tmp_path / 'nope', tmp_path / 'out', 'ntu120', workers=1, log=[].append)
    msg = str(err.value)
    assert str(tmp_path / 'nope' / 'nturgb+d_skeletons120') in msg and 'ROSE Lab' in msg


def test_bad_file_stops_script_in_one_line_or_is_skipped(tmp_path):
    names = ['S001C001P001R001A001', 'S001C001P002R001A002', 'S001C001P003R001A003']
    small_raw(tmp_path / 'raw', names)
    bad = tmp_path / 'raw' / 'nturgb+d_skeletons' / f'{names[1]}.skeleton'
    bad.write_text('\n'.join(bad.read_text().splitlines()[:100]) + '\n')
    cmd = [sys.executable, str(REPO / 'data' / 'prepare_ntu.py'), '--raw-root', str(tmp_path / 'raw'),
           '--out-dir', str(tmp_path / 'out'), '--workers', '2']
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode != 0 and 'Traceback' not in run.stderr
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and names[1] in err[0] and 'line 101' in err[0]
    assert not list((tmp_path / 'out').rglob('*.part'))  # no half-written store left behind
    run = subprocess.run(cmd + ['--skip-bad'], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 'skipped bad file' in run.stdout
    assert names[1] in (tmp_path / 'out' / 'bad_skeletons.txt').read_text()
    with np.load(tmp_path / 'out' / 'NTU60_CS.npz') as z:
        assert len(z['x_train']) + len(z['x_test']) == 2


def test_script_reports_missing_raw_folder_without_traceback(tmp_path):
    run = subprocess.run([sys.executable, 'get_raw_skes_data.py', '--raw-root', str(tmp_path),
                          '--out-dir', str(tmp_path / 'out')],
                         cwd=REPO / 'data' / 'ntu', capture_output=True, text=True)
    assert run.returncode != 0 and 'Traceback' not in run.stderr
    assert run.stderr.startswith('error: raw skeleton folder not found: ') and 'ROSE Lab' in run.stderr
