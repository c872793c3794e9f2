"""data/render.py: skeleton sequences as PNG strips and GIFs, from .skeleton, NW-UCLA .json and
prepared NTU .npz inputs; --compare; one-line errors without partial output files."""
import json
import math
import os
import runpy
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from data import render
from data.skeleton_io import read_skeleton
from text.label_set import LabelSet

FRAMES = 14  # > 11, so the denoising keeps both bodies
TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)  # bodies 1 and 2


def stick_body(t, shift):
    """(25, 3) joints of a standing body (1.6 m tall, 0.5 m wide) waving its right forearm."""
    rng = np.random.default_rng(int(shift * 10))
    joints = np.column_stack((rng.uniform(-0.25, 0.25, 25), np.linspace(-0.8, 0.8, 25),
                              np.full(25, 3.0)))
    joints[[10, 11, 23, 24], 1] += 0.3 * math.sin(t / 2)
    joints[:, 0] += shift
    return joints


def write_skeleton(path, frames=FRAMES, bodies=2, empty_first=0):
    """A raw NTU .skeleton text file in the Kinect layout: per frame a body count, per body an
    info line (10 values, id first), 25, and 25 joint lines of 12 values (x y z first)."""
    lines = [str(frames + empty_first)] + ['0'] * empty_first
    for t in range(frames):
        lines.append(str(bodies))
        for b in range(bodies):
            lines.append(f'7205759403794{b:04d} 0 1 1 1 1 0 0.01 -0.25 2')
            lines.append('25')
            for x, y, z in stick_body(t, 1.2 * b):
                lines.append(f'{x:.7f} {y:.7f} {z:.7f} 300.1 200.2 1000.3 500.4 0 0 0 0 2')
    path.write_text('\n'.join(lines) + '\n')
    return path


def write_ucla(path, frames=10):
    seq = [[[0.1 * j + 0.01 * t, 0.05 * j, 3.0] for j in range(20)] for t in range(frames)]
    path.write_text(json.dumps({'file_name': path.stem, 'skeletons': seq}))
    return path


def write_npz(path, lengths=(9, 12), padded=20):
    """Prepared-NTU layout: x (N, T, 150) float32 zero-padded, y (N, 60) one-hot."""
    def split(seed):
        x = np.zeros((len(lengths), padded, 150), np.float32)
        for i, n in enumerate(lengths):
            for t in range(n):
                x[i, t, :75] = stick_body(t + seed, 0).ravel()
                if i == 1:
                    x[i, t, 75:] = stick_body(t + seed, 1.0).ravel()
        return x, np.eye(60, dtype=np.float32)[[3, 7][:len(lengths)]]

    (x_train, y_train), (x_test, y_test) = split(0), split(5)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def run_ok(*argv):
    render.run([str(a) for a in argv])


def run_error(capsys, *argv):
    """main() exits 2 and prints exactly one `error: ...` line on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        render.main([str(a) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and 'Traceback' not in err, err
    return err


def has_color(path, rgb, tol=40):
    pixels = np.asarray(Image.open(path).convert('RGB')).reshape(-1, 3).astype(int)
    return bool(np.any(np.abs(pixels - rgb).sum(1) < tol))


def gif_frames(path):
    with Image.open(path) as im:
        assert im.format == 'GIF'
        return im.n_frames


# --------------------------------------------------------------------------------- outputs
def test_skeleton_png_strip_draws_both_bodies(tmp_path):
    src = write_skeleton(tmp_path / 'S001C001P001R001A058.skeleton')
    out = tmp_path / 'strip.png'
    run_ok(src, '-o', out, '--frames', 4)
    with Image.open(out) as im:
        assert im.format == 'PNG' and im.width > im.height > 100
    assert has_color(out, TAB_BLUE) and has_color(out, TAB_ORANGE)  # a colour per body


def test_skeleton_gif_frame_count(tmp_path):
    src = write_skeleton(tmp_path / 'a.skeleton')
    run_ok(src, '-o', tmp_path / 'all.gif', '--fps', 20)
    assert gif_frames(tmp_path / 'all.gif') == FRAMES
    with Image.open(tmp_path / 'all.gif') as im:
        assert im.info['duration'] == 50 and im.info.get('loop') == 0
    run_ok(src, '-o', tmp_path / 'step.gif', '--step', 5)
    assert gif_frames(tmp_path / 'step.gif') == math.ceil(FRAMES / 5)


def test_skeleton_compare(tmp_path):
    src = write_skeleton(tmp_path / 'S001C001P001R001A058.skeleton', empty_first=2)
    title, tracks = render.ntu_raw_tracks(src, True, 'ntu60', 64, 0.95)
    assert 'A058' in title and len(tracks) == 3
    raw, prepared, feeder = tracks
    assert raw.joints.shape == (FRAMES, 2, 25, 3) and 'empty frames dropped' in raw.title
    assert prepared.joints.shape == (FRAMES, 2, 25, 3) and feeder.joints.shape == (64, 2, 25, 3)
    # prepared: centred on joint 2 (index 1) of actor 1 in its first frame, as data/translate.py
    np.testing.assert_allclose(prepared.joints[0, 0, 1], 0, atol=1e-6)
    run_ok(src, '-o', tmp_path / 'c.png', '--compare', '--frames', 2)
    run_ok(src, '-o', tmp_path / 'c.gif', '--compare', '--window', 20, '--step', 5)
    assert gif_frames(tmp_path / 'c.gif') == 4  # the longest view (feeder, 20 frames) sets it
    with Image.open(tmp_path / 'c.png') as im:
        assert im.height > im.width / 3  # three rows


def test_ucla_png_gif_and_compare(tmp_path):
    src = write_ucla(tmp_path / 'a01_s01_e00_v01.json', frames=10)
    run_ok(src, '-o', tmp_path / 'u.png', '--frames', 3)
    run_ok(src, '-o', tmp_path / 'u.gif', '--step', 4)
    assert gif_frames(tmp_path / 'u.gif') == 3
    run_ok(src, '-o', tmp_path / 'uc.gif', '--compare', '--window', 12, '--step', 4)
    assert gif_frames(tmp_path / 'uc.gif') == 3  # the 12 val frames set the length, every 4th
    _, (raw, val) = render.ucla_tracks(src, True, 52)
    assert raw.joints.shape == (10, 1, 20, 3) and val.joints.shape == (52, 1, 20, 3)
    assert val.joints.min() == -1 and val.joints.max() == 1  # min-max per axis


def test_npz_sample(tmp_path):
    src = write_npz(tmp_path / 'NTU60_CS.npz')
    run_ok(src, '--sample', 1, '--split', 'train', '-o', tmp_path / 'n.png', '--frames', 3)
    run_ok(src, '--sample', 1, '-o', tmp_path / 'n.gif', '--step', 4)
    assert gif_frames(tmp_path / 'n.gif') == 3  # 12 frames once the padding is trimmed
    run_ok(src, '-o', tmp_path / 'nc.png', '--compare', '--frames', 2)
    title, tracks = render.ntu_npz_tracks(src, 0, 'test', True, 64, 0.95)
    assert 'test sample 0' in title and 'A004' in title
    assert tracks[0].joints.shape == (9, 2, 25, 3) and 'actor 2 all zeros' in tracks[0].title


def test_the_title_names_the_class_from_the_label_set(tmp_path, monkeypatch, capsys):
    src = write_npz(tmp_path / 'NTU60_CS.npz')
    names = LabelSet.open('ntu').names
    assert render.ntu_npz_tracks(src, 0, 'test', False, 64, 0.95, names)[0].endswith(f'A004 {names[3]}')
    labels = tmp_path / 'labels'
    labels.mkdir()
    (labels / 'label_names.txt').write_text(''.join(f'action {i}\n' for i in range(60)))
    titles = []
    monkeypatch.setattr(render, 'render_strip', lambda title, *args: titles.append(title) or b'')
    monkeypatch.setattr(render, 'write_output', lambda *args, **kwargs: None)
    run_ok(src, '-o', tmp_path / 'n.png', '--text-dir', labels)
    run_ok(src, '-o', tmp_path / 'n.png')
    assert titles[0].endswith('A004 action 3') and titles[1].endswith(f'A004 {names[3]}')
    assert "label set 'nope': no such folder" in run_error(capsys, src, '-o', tmp_path / 'n.png', '--text-dir', 'nope')


def test_feeder_view_matches_the_feeder(tmp_path):
    from feeders.feeder_ntu import Feeder
    src = write_npz(tmp_path / 'NTU60_CS.npz')
    feeder = Feeder(str(src), split='test', window_size=16, p_interval=[0.9])
    expected = feeder[1][0].transpose(1, 3, 2, 0)  # (C, T, V, M) -> (T, M, V, C)
    frames = np.load(src)['x_test'][1]
    np.testing.assert_array_equal(render.ntu_feeder_view(frames, 16, 0.9), expected)


def test_prepared_matches_the_pipeline(tmp_path):
    from data.denoise import denoised_sequence
    from data.translate import translate
    ske = read_skeleton(write_skeleton(tmp_path / 'a.skeleton'))
    np.testing.assert_array_equal(render.ntu_prepared(ske), translate(denoised_sequence(ske)))


# ---------------------------------------------------------------------------------- errors
def assert_nothing_written(folder, keep):
    assert sorted(os.listdir(folder)) == sorted(keep)


def test_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    skel = write_skeleton(tmp_path / 'ok.skeleton')
    npz = write_npz(tmp_path / 'ok.npz')
    bad_skel = tmp_path / 'bad.skeleton'
    bad_skel.write_text('3\n1\nnot an info line\n')
    ragged = tmp_path / 'ragged.json'
    ragged.write_text('{"skeletons": [[[1, 2, 3]], [[1, 2]]]}')
    wrong = tmp_path / 'wrong.json'
    wrong.write_text('{"frames": []}')
    other = tmp_path / 'notes.txt'
    other.write_text('hi')
    inputs = ['ok.skeleton', 'ok.npz', 'bad.skeleton', 'ragged.json', 'wrong.json', 'notes.txt']
    out = tmp_path / 'out.png'
    cases = [
        ((tmp_path / 'missing.skeleton', '-o', out), 'no such file'),
        ((bad_skel, '-o', out), 'line 3'),
        ((ragged, '-o', out), 'skeletons'),
        ((wrong, '-o', out), 'skeletons'),
        ((other, '-o', out), 'unknown input type'),
        ((npz, '--sample', 2, '-o', out), 'out of range'),
        ((npz, '--sample', -1, '-o', out), 'out of range'),
        ((skel, '-o', tmp_path / 'out.jpg'), 'unknown type'),
        ((skel, '--sample', 0, '-o', out), '.npz input only'),
        ((skel, '--frames', 0, '-o', out), '--frames'),
    ]
    for argv, message in cases:
        assert message in run_error(capsys, *argv)
        assert_nothing_written(tmp_path, inputs)
    (tmp_path / 'taken.gif').mkdir()  # the output path is a folder: nothing half-written beside it
    assert 'cannot write' in run_error(capsys, skel, '-o', tmp_path / 'taken.gif')
    assert_nothing_written(tmp_path, inputs + ['taken.gif'])


def test_help_shows_the_defaults():
    help_text = render.parser().format_help()
    for default in ('(default 8)', '(default 1', '(default 15.0)', '(default 0)',
                    '(default test)', '(default 0.95)', '(default 64 for NTU, 52 for NW-UCLA)'):
        assert default in ' '.join(help_text.split()), default


def test_script_entry_point(tmp_path, monkeypatch, capsys):
    """`python data/render.py ...` (run as __main__, in this process): one line, exit 2, no file."""
    script = str(REPO / 'data' / 'render.py')
    monkeypatch.setattr(sys, 'path', list(sys.path))  # the script puts the repo root on it
    monkeypatch.setattr(sys, 'argv', [script, str(tmp_path / 'x.json'), '-o', str(tmp_path / 'x.png')])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(script, run_name='__main__')
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith('error: ') and err.count('\n') == 1
    assert os.listdir(tmp_path) == []
