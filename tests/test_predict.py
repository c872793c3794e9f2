"""--phase predict: raw clips to class names, equal to the test phase on the same checkpoint.

NTU: synthetic raw .skeleton files (data/synthetic.py) go through the prep into an npz for the
test phase, and straight into predict; NW-UCLA: the shipped checkpoint on real val clips. The
fusion of two streams is checked against ensemble.py's numbers, and every bad input is one line
that writes nothing.
"""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import NTU_SAMPLES, REFERENCE, REPO, UCLA_ALL_SQE, need

from data import convert_ntu_pyskl, pipeline
from data.synthetic import generate
from data.splits import parse_name
from torchlight.importing import build

SHIPPED = REPO / 'checkpoints' / 'nw-ucla' / 'lst_joint.pt'
quiet = [].append


def cli(script, *args, cwd=REPO):
    """Run an entry script; (returncode, stdout, stderr)."""
    done = subprocess.run([sys.executable, script, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'})
    return done.returncode, done.stdout, done.stderr


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------ NTU, synthetic

@pytest.fixture(scope='module')
def ntu(tmp_path_factory):
    """Raw files, their npz, the test split's file order, and two streams' run folders
    (joint: GAP, bone: plain CTR-GCN) holding a seeded untrained checkpoint and config.yaml."""
    root = tmp_path_factory.mktemp('ntu')
    generate(root / 'raw', seed=5, per_class=3)
    pipeline.prepare(root / 'raw', root / 'npz', 'ntu60', workers=1, log=quiet)
    assert convert_ntu_pyskl.main(['--dataset', 'ntu60', '--raw-root', str(root / 'raw'),
                                   '--out', str(root / 'order.pkl'), '--workers', '1']) == 0
    with open(root / 'order.pkl', 'rb') as f:
        test_names = pickle.load(f)['split']['xsub_val']  # the npz's test rows, in order
    npz = root / 'npz' / 'NTU60_CS.npz'
    streams = {}
    for modality, model in (('joint', 'model.ctrgcn.Model_lst_4part'), ('bone', 'model.ctrgcn.Model')):
        config = {
            'feeder': 'feeders.feeder_ntu.Feeder',
            'train_feeder_args': {'data_path': str(npz), 'split': 'train', 'window_size': 64,
                                  'p_interval': [0.5, 1], 'modality': modality},
            'test_feeder_args': {'data_path': str(npz), 'split': 'test', 'window_size': 64,
                                 'p_interval': [0.95], 'modality': modality},
            'model': model, 'model_args': {'num_class': 60, 'num_person': 2, 'graph': 'graph.ntu_rgb_d.Graph'},
            'text_dir': 'ntu', 'loss_alpha': 0.8, 'test_batch_size': 8, 'num_worker': 0, 'device': ['cpu'],
        }
        if model.endswith('lst_4part'):
            config['model_args']['head'] = ['all-MiniLM-L6-v2']
        run = root / modality
        run.mkdir()
        (run / 'config.yaml').write_text(yaml.safe_dump(config))
        torch.manual_seed({'joint': 1, 'bone': 2}[modality])
        net = build(model, dict(config['model_args']), 'model_args')
        with torch.no_grad():  # BatchNorm statistics away from (0, 1), so the test runs them
            for name, buffer in net.named_buffers():
                if name.endswith('running_mean'):
                    buffer.uniform_(-0.1, 0.1)
        torch.save(net.state_dict(), run / 'runs-1-1.pt')
        streams[modality] = run
    files = [root / 'raw' / 'nturgb+d_skeletons' / f'{n}.skeleton' for n in test_names]
    return {'root': root, 'npz': npz, 'files': files, 'names': test_names, 'streams': streams, 'tested': {}}


def run_test_phase(ntu, modality):
    """The test phase of a stream's checkpoint (once per module): (scores (N, 60) in npz order,
    Top1, its work dir)."""
    if modality in ntu['tested']:
        return ntu['tested'][modality]
    run = ntu['streams'][modality]
    work = ntu['root'] / f'test_{modality}'
    code, out, err = cli('main_multipart_ntu.py', '--phase', 'test', '--config', run / 'config.yaml',
                         '--weights', run / 'runs-1-1.pt', '--work-dir', work, '--save-score', 'True')
    assert code == 0, err
    with open(work / 'epoch1_test_score.pkl', 'rb') as f:
        scores = pickle.load(f)
    record = json.loads((work / 'epoch1_test_score.json').read_text())
    ntu['tested'][modality] = np.stack([scores[f'test_{i}'] for i in range(len(scores))]), record['accuracy'], work
    return ntu['tested'][modality]


def softmax(x):
    x = np.asarray(x, np.float64) - np.max(x, axis=1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)


@pytest.mark.parametrize('modality', ['joint', 'bone'])
def test_ntu_predict_equals_the_test_phase(ntu, modality, tmp_path):
    scores, top1, _ = run_test_phase(ntu, modality)
    out = tmp_path / 'p.jsonl'
    code, stdout, err = cli('main_multipart_ntu.py', '--phase', 'predict', '--weights',
                            ntu['streams'][modality] / 'runs-1-1.pt', '--input', *ntu['files'], '--output', out)
    assert code == 0, err
    recs = records(out)
    assert [r['input'] for r in recs] == [f.name for f in ntu['files']]
    assert len(stdout.splitlines()) == len(recs)
    expected = softmax(scores)
    for r, row, probs in zip(recs, scores, expected):
        assert r['top1'] == int(row.argmax())
        for index, _, p in r['classes']:
            assert abs(p - probs[index]) < 2e-6
    labels = [parse_name(n)['action'] - 1 for n in ntu['names']]
    assert np.mean([r['top1'] == y for r, y in zip(recs, labels)]) == pytest.approx(top1, abs=1e-12)


def test_two_streams_fuse_as_the_ensemble(ntu, tmp_path):
    joint, _, joint_dir = run_test_phase(ntu, 'joint')
    bone, _, bone_dir = run_test_phase(ntu, 'bone')
    code, stdout, err = cli('ensemble.py', '--label-file', ntu['npz'], '--joint-dir', joint_dir, '--bone-dir', bone_dir)
    assert code == 0, err
    ensemble_top1 = float(stdout.split('Top1 Acc:')[1].split('%')[0])
    out = tmp_path / 'fused.jsonl'
    code, _, err = cli('main_multipart_ntu.py', '--phase', 'predict', '--weights',
                       ntu['streams']['bone'] / 'runs-1-1.pt', ntu['streams']['joint'] / 'runs-1-1.pt',
                       '--input', *ntu['files'], '--output', out)
    assert code == 0, err
    recs = records(out)
    fused = joint.astype(np.float64) + bone  # two streams: joint + 1.0 x bone, in either order given
    assert [r['top1'] for r in recs] == list(fused.argmax(1))
    labels = [parse_name(n)['action'] - 1 for n in ntu['names']]
    accuracy = 100 * np.mean([r['top1'] == y for r, y in zip(recs, labels)])
    assert accuracy == pytest.approx(ensemble_top1, abs=1e-4)


def test_record_format_and_pickle_clip_names(ntu, tmp_path):
    pkl = ntu['root'] / 'order.pkl'
    out = tmp_path / 'r.jsonl'
    code, stdout, err = cli('main_multipart_ntu.py', '--phase', 'predict', '--weights',
                            ntu['streams']['joint'] / 'runs-1-1.pt', '--input', pkl, '--split', 'xsub_val',
                            '--output', out)
    assert code == 0, err
    recs = records(out)
    assert [r['input'] for r in recs] == [f'order.pkl:{n}' for n in ntu['names']]
    names = (REPO / 'text' / 'ntu' / 'label_names.txt').read_text().splitlines()
    for r in recs:
        assert set(r) == {'input', 'top1', 'classes'} and len(r['classes']) == 5
        assert r['classes'][0][0] == r['top1']
        assert all(name == names[i].strip() for i, name, _ in r['classes'])
        probs = [p for _, _, p in r['classes']]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    line = stdout.splitlines()[0]
    assert line.startswith(f'order.pkl:{ntu["names"][0]}: {recs[0]["classes"][0][1]} ')
    # the pickle's clips (denoised, untranslated) predict as the raw files do
    code, _, err = cli('main_multipart_ntu.py', '--phase', 'predict', '--weights',
                       ntu['streams']['joint'] / 'runs-1-1.pt', '--input', *ntu['files'], '--output', tmp_path / 'raw.jsonl')
    assert code == 0, err
    assert [r['classes'] for r in records(tmp_path / 'raw.jsonl')] == [r['classes'] for r in recs]


# ---------------------------------------------------------------------------- NW-UCLA, real

def test_ucla_predict_equals_the_test_phase_with_the_shipped_checkpoint(tmp_path):
    root = need(UCLA_ALL_SQE)
    val = json.loads((REPO / 'data' / 'NW-UCLA' / 'split.json').read_text())['val'][:100]  # debug: first 100
    work = tmp_path / 'test'
    code, _, err = cli('main_multipart_ucla.py', '--phase', 'test', '--config', 'config/ucla/cpu_30/lst_joint_minilm.yaml',
                       '--weights', SHIPPED, '--work-dir', work, '--save-score', 'True', '--num-worker', '0',
                       '--test-feeder-args', f"debug=True,data_root='{root}'")
    assert code == 0, err
    with open(work / 'epoch1_test_score.pkl', 'rb') as f:
        scores = pickle.load(f)
    top1 = json.loads((work / 'epoch1_test_score.json').read_text())['accuracy']
    out = tmp_path / 'p.jsonl'
    code, stdout, err = cli('main_multipart_ucla.py', '--phase', 'predict', '--weights', SHIPPED,
                            '--input', *[root / f'{e["file_name"]}.json' for e in val], '--output', out)
    assert code == 0, err
    recs = records(out)
    expected = softmax(np.stack([scores[i] for i in range(len(val))]))
    assert [r['top1'] for r in recs] == list(expected.argmax(1))
    assert all(abs(p - expected[n][i]) < 2e-6 for n, r in enumerate(recs) for i, _, p in r['classes'])
    assert np.mean([r['top1'] == e['label'] - 1 for r, e in zip(recs, val)]) == pytest.approx(top1, abs=1e-12)
    # the same clip as a .npy (M, T, V, C) and in a pyskl pickle: the same prediction
    seq = np.array(json.loads((root / f'{val[0]["file_name"]}.json').read_text())['skeletons'])
    np.save(tmp_path / 'clip.npy', seq[None])
    with open(tmp_path / 'clips.pkl', 'wb') as f:
        pickle.dump({'split': {'val': ['c']}, 'annotations': [
            {'frame_dir': 'c', 'label': 0, 'total_frames': len(seq), 'keypoint': seq[None]}]}, f)
    code, stdout, err = cli('main_multipart_ucla.py', '--phase', 'predict', '--weights', SHIPPED,
                            '--input', tmp_path / 'clip.npy', tmp_path / 'clips.pkl')
    assert code == 0, err
    first = recs[0]['classes'][0][1]
    assert [line.split(': ')[0] for line in stdout.splitlines()] == ['clip.npy', 'clips.pkl:c']
    assert all(line.split(': ')[1].startswith(first + ' ') for line in stdout.splitlines())


def test_the_readme_command_names_the_action():
    root = need(UCLA_ALL_SQE)
    code, stdout, err = cli('main_multipart_ucla.py', '--phase', 'predict', '--weights', SHIPPED,
                            '--input', root / 'a01_s01_e00_v01.json')
    assert code == 0, err
    assert stdout.startswith('a01_s01_e00_v01.json: pick up with one hand ')  # a01 is that class


# ------------------------------------------------------------------------------- bad input

def bad(tmp_path, *args, script='main_multipart_ucla.py'):
    out = tmp_path / 'never.jsonl'
    code, stdout, err = cli(script, '--phase', 'predict', *args, '--output', out)
    assert code == 2 and not out.exists() and stdout == ''
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    return lines[0]


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, ntu):
    clip = tmp_path / 'clip.npy'
    (tmp_path / 'notes.txt').write_text('hi')
    assert 'unknown kind of input' in bad(tmp_path, '--weights', SHIPPED, '--input', tmp_path / 'notes.txt')
    np.save(clip, np.ones((1, 30, 25, 3), np.float32))
    assert "25 joints x 3 coordinates but the checkpoint's layout nw-ucla takes 20 joints" in \
        bad(tmp_path, '--weights', SHIPPED, '--input', clip)
    np.save(clip, np.ones((1, 0, 20, 3), np.float32))
    assert 'empty clip' in bad(tmp_path, '--weights', SHIPPED, '--input', clip)
    np.save(clip, np.zeros((1, 30, 20, 3), np.float32))
    assert 'every coordinate is 0' in bad(tmp_path, '--weights', SHIPPED, '--input', clip)
    np.save(clip, np.ones((1, 30, 20, 3), np.float32))
    # a truncated checkpoint, a foreign one, weights without a config, no class names
    cut = tmp_path / 'cut.pt'
    cut.write_bytes(SHIPPED.read_bytes()[:100_000])
    assert 'cannot read checkpoint' in bad(tmp_path, '--weights', cut, '--input', clip)
    torch.save({'backbone.conv.weight': torch.zeros(3)}, tmp_path / 'foreign.pt')
    assert 'foreign.pt: its weights do not fit' in bad(tmp_path, '--weights', tmp_path / 'foreign.pt', '--config',
                                                       'config/ucla/cpu_30/lst_joint_minilm.yaml', '--input', clip)
    torch.save({'epoch': 3, 'note': 'no tensors'}, tmp_path / 'notes.pt')
    assert 'notes.pt holds no model weights' in bad(tmp_path, '--weights', tmp_path / 'notes.pt', '--input', clip)
    entry = torch.load(SHIPPED, weights_only=True)
    torch.save(entry['model'], tmp_path / 'bare.pt')
    assert 'holds weights only' in bad(tmp_path, '--weights', tmp_path / 'bare.pt', '--input', clip)
    torch.save({**entry, 'class_names': None, 'criterion_args': {}, 'model_class': 'model.ctrgcn.Model',
                'model_args': {'num_class': 10, 'num_person': 1, 'graph': 'graph.ucla.Graph'},
                'model': build('model.ctrgcn.Model', {'num_class': 10, 'num_person': 1, 'graph': 'graph.ucla.Graph'},
                               'model_args').state_dict()}, tmp_path / 'nameless.pt')
    assert 'no class names' in bad(tmp_path, '--weights', tmp_path / 'nameless.pt', '--input', clip)
    # streams of two datasets
    assert 'streams of different datasets cannot be fused' in bad(
        tmp_path, '--weights', SHIPPED, ntu['streams']['bone'] / 'runs-1-1.pt', '--input', clip,
        script='main_multipart_ntu.py')
    # the upstream way: weights only, with --config naming the run's settings
    code, stdout, err = cli('main_multipart_ucla.py', '--phase', 'predict', '--weights', tmp_path / 'bare.pt',
                            '--config', 'config/ucla/cpu_30/lst_joint_minilm.yaml', '--input', clip)
    assert code == 0 and stdout.startswith('clip.npy: '), err


def test_an_upstream_checkpoint_predicts_with_its_config():
    """Upstream's weights-only file (`module.` keys) with upstream's config: names from the entry
    script's label set (NTU), raw .skeleton files in."""
    weights = need(REFERENCE / 'upstream_Model_lst_4part_ntu60.pt')
    files = sorted(need(NTU_SAMPLES).glob('*.skeleton'))
    code, stdout, err = cli('main_multipart_ntu.py', '--phase', 'predict', '--weights', weights,
                            '--config', 'config/nturgbd-cross-subject/lst_joint.yaml', '--input', *files)
    assert code == 0, err
    names = set((REPO / 'text' / 'ntu' / 'label_names.txt').read_text().splitlines()[:60])
    lines = stdout.splitlines()
    assert [line.split(': ')[0] for line in lines] == [f.name for f in files]
    for line in lines:
        classes = [c.rsplit(' ', 1) for c in line.split(': ', 1)[1].split(', ')]
        assert len(classes) == 5 and all(name in names for name, _ in classes)


@pytest.mark.parametrize('layout, joints, dims', [('coco', 17, 2), ('ntu', 25, 3), ('nw-ucla', 20, 3)])
def test_clip_views_equal_the_pyskl_feeders_test_items(tmp_path, monkeypatch, layout, joints, dims):
    """A pickle's clips through feeder_pyskl's clip_view are its test items (2D: normalised by
    the annotation's img_shape or the default, low scores zeroed; 3D: centred or NW-UCLA's view)."""
    from feeders.clips import read_clips
    from feeders.feeder_pyskl import Feeder
    from graph.layouts import load_layout
    monkeypatch.setenv('GAP_CACHE_DIR', str(tmp_path / 'cache'))
    rng = np.random.default_rng(3)
    annotations = []
    for n in range(4):
        M, T = (1 + n % 2, 30 + 7 * n)
        a = {'frame_dir': f's{n}', 'label': n % 3, 'total_frames': T,
             'keypoint': (rng.normal(0, 1, (M, T, joints, dims)) * (300 if dims == 2 else 0.3)
                          + (500 if dims == 2 else 2.5)).astype(np.float32)}
        if dims == 2:
            a['keypoint_score'] = rng.uniform(0, 1, (M, T, joints)).astype(np.float32)
            a['keypoint_score'][0, :3, :4] = 0.005  # under the threshold: zeroed
            if n % 2:
                a['img_shape'] = (720, 1280)
        annotations.append(a)
    path = tmp_path / 'toy.pkl'
    with open(path, 'wb') as f:
        pickle.dump({'split': {'val': [a['frame_dir'] for a in annotations]}, 'annotations': annotations}, f)
    args = {'data_path': str(path), 'split': 'val', 'layout': layout, 'window_size': 40, 'p_interval': [0.95]}
    for modality in ('joint', 'bone_motion'):
        feeder = Feeder(**args, modality=modality)
        view = Feeder.clip_view({**args, 'modality': modality}, 3)
        clips = read_clips(path, load_layout(layout), split='val')
        assert [c.name for c in clips] == [f'toy.pkl:s{n}' for n in range(4)]
        for i, clip in enumerate(clips):
            np.testing.assert_array_equal(view(clip), feeder[i][0], err_msg=f'{layout} {modality} {i}')


def test_ntu_one_actor_padding_follows_the_class_count():
    """NTU120's prep copies a lone actor into the second body, NTU60's leaves zeros: predict pads
    as the npz the checkpoint was trained on (120 classes: NTU120)."""
    from feeders.clips import Clip
    from feeders.feeder_ntu import Feeder
    body = np.random.default_rng(0).normal(0, 0.3, (1, 50, 25, 3)).astype(np.float32) + 2
    args = {'window_size': 64, 'p_interval': [0.95]}
    ntu60, ntu120 = Feeder.clip_view(args, 60)(Clip('a', body)), Feeder.clip_view(args, 120)(Clip('a', body))
    np.testing.assert_array_equal(ntu60[..., 0], ntu120[..., 0])
    assert not ntu60[..., 1].any()
    np.testing.assert_array_equal(ntu120[..., 1], ntu120[..., 0])
